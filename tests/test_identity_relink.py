"""`cdp identity relink`: the history again with another model, as merges and splits of
stable customers through the change log; and reviewers' decisions as training labels."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from omnicdp.cli.main import main
from omnicdp.services.identity.linkage.model import LinkageModel
from omnicdp.services.identity.linkage.table import features_frame, silver_groups
from omnicdp.services.identity.matching import Matcher
from omnicdp.services.identity.model import IdentityRecord
from omnicdp.services.identity.relink import relink
from omnicdp.services.identity.resolver import Resolver
from omnicdp.services.identity.store.duckdb import DuckDBIdentityStore

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
HOME = dict(address_line="ул. Садовая, д. 17, кв. 4", postcode="190000",
            city="Санкт-Петербург")


def _record(ref: str, minutes: int, identifiers: dict[str, str], **traits: str) -> IdentityRecord:
    return IdentityRecord(ref, identifiers, T0 + timedelta(minutes=minutes), "crm", traits)


def _with_threshold(threshold: float) -> LinkageModel:
    document = copy.deepcopy(LinkageModel.load_default().document)
    document["threshold"] = threshold
    return LinkageModel(document, version=f"t{threshold}")


def _customer_of(store: DuckDBIdentityStore, resolver: Resolver, record: IdentityRecord) -> str:
    [resolution] = resolver.resolve([record])
    return store.resolve_redirects(resolution.customer_id)


def test_relink_merges_what_the_model_links_and_keeps_the_older_id(tmp_path: Path) -> None:
    with DuckDBIdentityStore(tmp_path / "identity.duckdb") as store:
        rules_only = Resolver(store)
        viktor = _customer_of(store, rules_only, _record(
            "v1", 0, {"email": "v.smirnov79@mail.ru"}, first_name="Виктор",
            last_name="Смирнов", date_of_birth="1979-05-14", **HOME))
        web = _customer_of(store, rules_only, _record(
            "v2", 1, {"anonymous_id": "a-v2"}, first_name="Viktor", last_name="Smirnov",
            date_of_birth="1979-05-14", **HOME))
        son = _customer_of(store, rules_only, _record(
            "s1", 2, {"anonymous_id": "a-s1"}, first_name="Денис", last_name="Смирнов",
            date_of_birth="2004-02-20", **HOME))
        assert len({viktor, web, son}) == 3  # the rules alone do not link them
        before = store.last_change_seq()
    # Through the command, as an operator runs it (the service stopped).
    code = main(["identity", "relink", "--data-dir", str(tmp_path), "--model", "default",
                 "--json"])
    assert code == 0
    with DuckDBIdentityStore(tmp_path / "identity.duckdb") as store:
        assert store.resolve_redirects(web) == viktor  # the older id survives
        assert store.resolve_redirects(son) == son
        merges = [c for c in store.changes(before, 100) if c.kind == "merged"]
        assert [(c.customer_id, c.other_customer_id) for c in merges] == [(viktor, web)]
        [link] = [link for link in store.links_of([r.record_id for r in
                                                   store.records_of(viktor)])
                  if link.rule.startswith("model:")]
        assert link.rule == "model:default" and link.probability >= 0.9 and link.weights
        # A second relink with the same model changes nothing.
        again = relink(store, LinkageModel.load_default())
        assert (again.merged, again.split, again.links_added) == (0, 0, 0)


def test_relink_splits_what_the_model_no_longer_links_keeping_ids_stable(capsys) -> None:
    anna = dict(first_name="Анна", last_name="Орлова", city="Москва")
    with DuckDBIdentityStore() as store:
        # A permissive model (threshold 0.3) linked two namesakes in one city.
        lax = Resolver(store, matcher=Matcher(_with_threshold(0.3)))
        first = _customer_of(store, lax, _record("a1", 0, {"anonymous_id": "an-1"},
                                                 postcode="101000", **anna))
        _customer_of(store, lax, _record("a3", 1, {"anonymous_id": "an-1"}, **anna))
        second = _customer_of(store, lax, _record("a2", 2, {"anonymous_id": "an-2"},
                                                  postcode="109000", **anna))
        assert first == second
        [model_link] = [link for link in store.links_of(
            [r.record_id for r in store.records_of(first)]) if link.rule.startswith("model:")]

        result = relink(store, LinkageModel.load_default())  # threshold 0.9
        assert (result.merged, result.split, result.links_revoked) == (0, 1, 1)
        kept = store.records_of(first)
        assert len(kept) == 2  # the larger part keeps the id
        split_off = [c for c in store.changes(0, 100) if c.kind == "split"]
        assert len(split_off) == 1 and split_off[0].other_customer_id == first
        moved = split_off[0].customer_id
        assert [r.record_id for r in store.records_of(moved)] == [model_link.record_a]
        revoked = [link for link in store.links_of([model_link.record_a])
                   if link.rule.startswith("model:")]
        assert revoked[0].revoked_by == "cdp identity relink"
        assert revoked[0].revoke_reason == "relink with model default"


def test_reviewers_decisions_correct_the_silver_labels() -> None:
    table = pd.DataFrame([
        {"record_id": "r1", "email": "anna@example.ru", "first_name": "Анна"},
        {"record_id": "r2", "email": "anna@example.ru", "first_name": "Анна"},
        {"record_id": "r3", "user_id": "u3", "first_name": "Анна"},
        {"record_id": "r4", "user_id": "u4", "first_name": "Пётр"},
    ]).fillna("")
    frame, _ = features_frame(table, 6)
    plain = silver_groups(frame)
    assert plain[0] == plain[1] and plain[2] is None and plain[3] is None
    reviewed = silver_groups(frame, [("r3", "r1", True), ("r1", "r2", False)])
    assert reviewed[0] == reviewed[2] != reviewed[1]


def test_train_from_store_uses_reviewers_decisions(tmp_path: Path, capsys) -> None:
    from omnicdp.services.identity.linkage.table import read_person_table
    from omnicdp.synth import generate_retailer

    generate_retailer(300, 21, tmp_path / "retailer")
    table = read_person_table(tmp_path / "retailer" / "persons.csv")
    with DuckDBIdentityStore(tmp_path / "identity.duckdb") as store:
        resolver = Resolver(store, matcher=Matcher(LinkageModel.load_default()))
        records = [IdentityRecord(
            r["record_id"], {k: r[k] for k in ("email", "phone", "user_id", "loyalty_id",
                                               "crm_id") if r.get(k)}, T0, r["source"],
            {k: r[k] for k in ("first_name", "last_name", "date_of_birth", "address_line",
                               "city", "postcode", "country") if r.get(k)})
            for r in table.to_dict("records")]
        resolutions = [r for r in resolver.resolve(records) if r.customer_id]
        # Two records of different customers, neither holding a one-per-person identifier.
        free = [r for r in resolutions
                if not {"user_id", "loyalty_id"} & set(store.customer_identifiers(r.customer_id))]
        a = free[0]
        b = next(r for r in free if store.resolve_redirects(r.customer_id)
                 != store.resolve_redirects(a.customer_id))
        store.review(a.identity_record_id, b.identity_record_id, True, "reviewer", "one person")
    code = main(["identity", "train", "--from-store", "--data-dir", str(tmp_path), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out)
    assert result["version"] == "1" and result["records"] == len({
        r.identity_record_id for r in resolutions})
    from omnicdp.services.identity.linkage import registry

    client = registry._client(registry.tracking_uri(tmp_path))
    run = client.get_run(client.get_model_version(registry.MODEL_NAME, "1").run_id)
    assert run.data.params["reviews"] == "1"

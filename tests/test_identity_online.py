"""Online resolution with the linkage model, over real gRPC: one person across scripts and
keyboard layouts joins one customer while the household stays apart, a shared placeholder
merges no strangers, links explain themselves, a promoted model is reloaded under load
without a failed call, and reviewers' decisions are applied and kept as labels."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omnicdp.core import settings as config
from omnicdp.core.server import ServiceHost
from omnicdp.services.identity.client import IdentityClient, IdentityRecord
from omnicdp.services.identity.linkage import registry
from omnicdp.services.identity.linkage.model import LinkageModel
from omnicdp.services.identity.linkage.train import TrainingResult
from omnicdp.services.identity.server import build
from omnicdp.services.identity.settings import Settings
from omnicdp.services.identity.store.duckdb import DuckDBIdentityStore
from tests.pg import temporary_database

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)
HOME = dict(address_line="ул. Садовая, д. 17, кв. 4", postcode="190000",
            city="Санкт-Петербург")


def _serve(tmp_path: Path, database_url: str = "", **overrides: str) -> ServiceHost:
    host = build(config.load(Settings, environ={}, address="127.0.0.1:0", data_dir=tmp_path,
                             database_url=database_url, **overrides))
    host.start()
    return host


@pytest.fixture(params=["duckdb", "postgres"])
def identity(request, tmp_path: Path) -> Iterator[IdentityClient]:
    with ExitStack() as cleanup:
        url = cleanup.enter_context(temporary_database()) if request.param == "postgres" else ""
        host = _serve(tmp_path, url)
        cleanup.callback(host.stop, 1)
        client = IdentityClient(f"127.0.0.1:{host.port}")
        cleanup.callback(client.close)
        yield client


def _record(ref: str, minutes: int, source: str, identifiers: dict[str, str],
            **traits: str) -> IdentityRecord:
    return IdentityRecord(ref, identifiers, T0 + timedelta(minutes=minutes), source, traits)


def _resolve_one(client: IdentityClient, record: IdentityRecord) -> tuple[str, str]:
    """(customer id, identity record id) of a record resolved in a batch of its own."""
    [resolution] = client.resolve([record])
    assert resolution.customer_id, resolution.violations
    return resolution.customer_id, resolution.identity_record_id


def test_one_person_links_across_scripts_and_layouts_the_household_stays_apart(
        identity: IdentityClient) -> None:
    # Виктор at the CRM (Cyrillic), on the web (Latin, a new mobile) and at a till (the
    # keyboard left in the Latin layout); his wife shares the family e-mail, the home phone
    # and the address; their son shares the address.
    v1 = _resolve_one(identity, _record(
        "v1", 0, "crm", {"email": "v.smirnov79@mail.ru", "phone": "+7 812 555-01-02"},
        first_name="Виктор", last_name="Смирнов", date_of_birth="1979-05-14", **HOME))
    v2 = _resolve_one(identity, _record(
        "v2", 1, "web", {"anonymous_id": "a-v2", "phone": "+7 921 444-55-66"},
        first_name="Viktor", last_name="Smirnov", date_of_birth="1979-05-14", **HOME))
    v3 = _resolve_one(identity, _record(
        "v3", 2, "pos", {"phone": "8 921 444-55-66"}, first_name="Dbrnjh",
        last_name="Cvbhyjd", city="Санкт-Петербург"))
    w1 = _resolve_one(identity, _record(
        "w1", 3, "crm", {"email": "v.smirnov79@mail.ru", "phone": "+7 812 555-01-02"},
        first_name="Ольга", last_name="Смирнова", date_of_birth="1981-09-02", **HOME))
    w2 = _resolve_one(identity, _record(
        "w2", 4, "loyalty", {"loyalty_id": "7001234"}, first_name="Olga",
        last_name="Smirnova", date_of_birth="1981-09-02", **HOME))
    s1 = _resolve_one(identity, _record(
        "s1", 5, "crm", {"anonymous_id": "a-s1"}, first_name="Денис", last_name="Смирнов",
        date_of_birth="2004-02-20", **HOME))

    viktor = identity.get_customer(v1[0]).customer_id
    assert identity.get_customer(v2[0]).customer_id == viktor
    assert identity.get_customer(v3[0]).customer_id == viktor
    olga = identity.get_customer(w1[0]).customer_id
    assert identity.get_customer(w2[0]).customer_id == olga
    assert len({viktor, olga, identity.get_customer(s1[0]).customer_id}) == 3

    # The model's link says which model made it, how sure it was, and why.
    links = identity.explain(viktor).links
    [model_link] = [link for link in links if {link.record_a, link.record_b} == {v1[1], v2[1]}]
    assert model_link.rule == "model:default"
    assert model_link.created_by == "model/cdp-identity:default"
    assert model_link.probability >= 0.9 and model_link.weights
    waterfall = identity.explain_link(v2[1], v1[1])
    assert waterfall.same_customer and waterfall.model_version == "default"
    assert waterfall.match_weight == pytest.approx(
        waterfall.prior_weight + sum(w for _, _, w in waterfall.weights), abs=1e-9)
    assert waterfall.match_probability == pytest.approx(model_link.probability, abs=1e-9)
    assert dict((c, w) for c, _, w in waterfall.weights) == pytest.approx(
        dict((c, w) for c, _, w in model_link.weights), abs=1e-5)
    assert [link.rule for link in waterfall.links] == ["model:default"]
    # The wife's record shares his e-mail, phone and address, yet scores below the threshold
    # (first name and birth date disagree).
    wife = identity.explain_link(w1[1], v1[1])
    assert not wife.same_customer and wife.match_probability < wife.threshold
    assert dict((c, level) for c, level, _ in wife.weights)["first_name"] == "else"


def test_a_shared_placeholder_merges_no_strangers(identity: IdentityClient) -> None:
    firsts = ["Анна", "Игорь", "Светлана", "Павел", "Дарья", "Олег", "Нина", "Кирилл"]
    lasts = ["Орлова", "Белов", "Зайцева", "Гусев", "Комарова", "Титов", "Фомина", "Юдин"]
    customers = {
        _resolve_one(identity, _record(
            f"s{i}", i, "pos", {"email": "nety@mail.ru", "phone": "+7 495 600-00-01"},
            first_name=first, last_name=last, city="Москва"))[0]
        for i, (first, last) in enumerate(zip(firsts, lasts, strict=True))}
    assert len({identity.get_customer(c).customer_id for c in customers}) == len(firsts)


def _champion(tmp_path: Path, threshold: float) -> str:
    """Register the packaged model with another threshold and make it the champion."""
    uri = registry.tracking_uri(tmp_path)
    document = copy.deepcopy(LinkageModel.load_default().document)
    document["threshold"] = threshold
    version = registry.log_training(TrainingResult(LinkageModel(document), {}, {}, False, 0.0),
                                    uri)
    registry._client(uri).set_registered_model_alias(registry.MODEL_NAME, registry.CHAMPION,
                                                     version)
    return version


def test_a_promoted_model_is_reloaded_under_load_without_a_failed_call(
        tmp_path: Path) -> None:
    host = _serve(tmp_path)
    client = IdentityClient(f"127.0.0.1:{host.port}")
    failures: list[BaseException] = []
    resolved = [0]
    stop = threading.Event()

    def load(worker: int) -> None:
        own = IdentityClient(f"127.0.0.1:{host.port}")
        number = 0
        while not stop.is_set():
            number += 1
            try:
                own.resolve([_record(f"{worker}-{number}", number, "web",
                                     {"anonymous_id": f"anon-{worker}-{number}"},
                                     first_name="Анна", last_name="Орлова", city="Москва")])
                resolved[0] += 1
            except BaseException as error:  # reported below
                failures.append(error)
        own.close()

    workers = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    try:
        for worker in workers:
            worker.start()
        version = _champion(tmp_path, threshold=0.95)
        before = resolved[0]
        assert client.reload_model() == (version, "default")
        stop.wait(0.5)
        assert resolved[0] > before  # calls went on through the reload
        stop.set()
        for worker in workers:
            worker.join(30)
        assert failures == []
        # Resolutions after the reload link with the promoted version.
        first = _resolve_one(client, _record("x1", 900, "crm", {"anonymous_id": "x1"},
                                             first_name="Пётр", last_name="Кузнецов",
                                             date_of_birth="1970-01-31", **HOME))
        second = _resolve_one(client, _record("x2", 901, "pos", {"anonymous_id": "x2"},
                                              first_name="Petr", last_name="Kuznetsov",
                                              date_of_birth="1970-01-31", **HOME))
        assert first[0] == second[0]
        rules = {link.rule for link in client.explain(first[0]).links}
        assert rules == {f"model:{version}"}
    finally:
        stop.set()
        client.close()
        host.stop(1)


def test_rules_only_service_refuses_to_reload(tmp_path: Path) -> None:
    from omnicdp.core.errors import FailedPrecondition

    host = _serve(tmp_path, linking="rules")
    client = IdentityClient(f"127.0.0.1:{host.port}")
    try:
        with pytest.raises(FailedPrecondition, match="rules only"):
            client.reload_model()
    finally:
        client.close()
        host.stop(1)


def test_review_decisions_are_applied_and_kept_as_labels(tmp_path: Path) -> None:
    host = _serve(tmp_path, review_band="0.1,0.9999")
    anna = dict(first_name="Анна", last_name="Орлова", city="Москва")
    client = IdentityClient(f"127.0.0.1:{host.port}")
    try:
        a = _resolve_one(client, _record("a", 0, "crm", {"anonymous_id": "an-a"},
                                         postcode="101000", **anna))
        b = _resolve_one(client, _record(
            "b", 1, "crm", {"anonymous_id": "an-b"}, postcode="101000",
            address_line="ул. Ленина, д. 5, кв. 12", **anna))
        c = _resolve_one(client, _record("c", 2, "web", {"anonymous_id": "an-c"}, **anna))
        assert a[0] == b[0] != c[0]  # a and b by the model, c a near miss

        items, token = client.review_items()
        assert token == ""
        kinds = {(i.kind, frozenset((i.record_a, i.record_b))) for i in items}
        assert ("link", frozenset((a[1], b[1]))) in kinds
        assert any(kind == "near_miss" and c[1] in pair for kind, pair in kinds)
        assert all(0.1 <= i.probability < 0.9999 for i in items)
        page, token = client.review_items(page_size=1)
        assert len(page) == 1 and token == "1"

        # "Two people": the customer splits between them and stays split.
        rejected = client.review(b[1], a[1], accept=False, actor="reviewer@shop",
                                 reason="different flats")
        assert rejected.customer_a != rejected.customer_b
        [apart] = client.explain(rejected.customer_a).kept_apart
        assert (apart.other_customer_id, apart.created_by, apart.reason) == (
            rejected.customer_b, "reviewer@shop", "different flats")
        again = _resolve_one(client, _record(
            "b", 1, "crm", {"anonymous_id": "an-b"}, postcode="101000",
            address_line="ул. Ленина, д. 5, кв. 12", **anna))
        assert client.get_customer(again[0]).customer_id == rejected.customer_a
        # "One person": the near miss's customers merge.
        accepted = client.review(c[1], a[1], accept=True, actor="reviewer@shop",
                                 reason="same phone on the receipt")
        assert accepted.customer_a == accepted.customer_b
        assert client.get_customer(c[0]).customer_id == accepted.customer_a
        decided = {frozenset((i.record_a, i.record_b)) for i in client.review_items()[0]}
        assert frozenset((a[1], b[1])) not in decided
        assert frozenset((a[1], c[1])) not in decided
    finally:
        client.close()
        host.stop(1)
    with DuckDBIdentityStore(tmp_path / "identity.duckdb") as store:
        assert sorted(store.review_labels()) == sorted([
            (*sorted((a[1], b[1])), False), (*sorted((a[1], c[1])), True)])


def test_every_replica_follows_a_promotion_without_a_reload_call(tmp_path: Path) -> None:
    host = _serve(tmp_path, model_poll_seconds="0.2")
    client = IdentityClient(f"127.0.0.1:{host.port}")
    try:
        version = _champion(tmp_path, threshold=0.95)
        explained = None
        for _ in range(100):  # the poller checks the registry every 0.2 s
            first = _resolve_one(client, _record("p1", 0, "web", {"anonymous_id": "p1"}, **HOME,
                                                 first_name="Пётр", last_name="Кузнецов",
                                                 date_of_birth="1970-01-31"))
            explained = client.explain_link(first[1], first[1])
            if explained.model_version == version:
                break
            threading.Event().wait(0.1)
        assert explained is not None and explained.model_version == version
        assert explained.threshold == 0.95
    finally:
        client.close()
        host.stop(1)

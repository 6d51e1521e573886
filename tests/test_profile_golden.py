"""The golden record, kept at write time, on both backends: trait strategies and cleaning,
counters, identifiers with sources, merges combined incrementally, splits folded again,
and stores from before golden records upgraded."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from omnicdp.services.profile.golden import GoldenRecord, TraitPolicy, clean_trait
from omnicdp.services.profile.model import Consent, CustomerScores, Score, StoredEvent
from omnicdp.services.profile.store import open_store
from tests import test_profile_store as contract
from tests.pg import temporary_database
from tests.test_profile_store import Log

# The storage contract's fixtures: each backend, a store on it, a change log written by hand.
store_url, store, log = contract.store_url, contract.store, contract.log

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def ev(message_id: str, record: str, at: datetime = T0, *, source: str = "web",
       channel: str = "web", name: str = "Page Viewed", revenue: float | None = None,
       **traits) -> StoredEvent:
    properties = {} if revenue is None else {"revenue": revenue, "order_id": message_id}
    return StoredEvent(message_id=message_id, customer_id=f"c-{record}", type="track",
                       channel=channel, event=name, source=source, timestamp=at,
                       received_at=T0, identifiers={}, traits=traits, properties=properties,
                       record_id=record)


def test_names_and_codes_are_cleaned() -> None:
    assert clean_trait("first_name", "  АННА ") == "Анна"
    assert clean_trait("last_name", "rimsky-korsakova") == "Rimsky-Korsakova"
    assert clean_trait("last_name", "McDonald") == "McDonald"  # mixed case: as typed
    assert clean_trait("city", "нижний   новгород") == "Нижний Новгород"
    assert clean_trait("country", "ru") == "RU"
    assert clean_trait("date_of_birth", "1990-02-30") is None
    assert clean_trait("first_name", "   ") is None


def test_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        TraitPolicy.parse("first_name=loudest")
    with pytest.raises(ValueError, match="trusted"):
        TraitPolicy.parse("city=trusted_source")
    with pytest.raises(ValueError, match="trait=strategy"):
        TraitPolicy.parse("first_name")
    policy = TraitPolicy.parse("*=oldest,city=most_recent", "crm,pos")
    assert policy.strategy("first_name") == "oldest" and policy.strategy("city") == "most_recent"


def test_profile_settings_refuse_an_unknown_strategy_at_start() -> None:
    from omnicdp.core import settings as config
    from omnicdp.services.profile.settings import Settings

    with pytest.raises(SystemExit, match="strategy one of"):
        config.load(Settings, environ={"CDP_TRAIT_STRATEGIES": "first_name=loudest"})
    with pytest.raises(SystemExit, match="CDP_TRUSTED_SOURCES"):
        config.load(Settings, environ={"CDP_TRAIT_STRATEGIES": "city=trusted_source"})


def test_each_trait_strategy_chooses_its_value(store_url: str, tmp_path: Path) -> None:
    policy = TraitPolicy.parse("last_name=most_frequent,first_name=oldest,"
                               "city=trusted_source", "crm,pos")
    store = open_store(store_url, tmp_path, policy)
    try:
        store.apply_changes([Log().created("c1", "r1")])
        store.append([
            ev("m1", "r1", T0, source="crm", first_name="anna", last_name="IVANOVA",
               city="Kazan"),
            ev("m2", "r1", T0 + DAY, source="web", first_name="Anya", last_name="Ivanova",
               city="Moscow"),
            ev("m3", "r1", T0 + 2 * DAY, source="pos", last_name="Petrova", city="Samara",
               postcode="420 111"),
            ev("m4", "r1", T0 + 3 * DAY, source="web", last_name="Petrova",
               date_of_birth="1990-05-04"),
            ev("m5", "r1", T0 + 4 * DAY, source="web", last_name="Ivanova", city=""),
        ], [])
        traits = store.get_profile("c1").traits
    finally:
        store.close()
    assert traits == {
        "first_name": "Anna",          # oldest, cleaned
        "last_name": "Ivanova",        # most frequent (IVANOVA cleaned counts with Ivanova)
        "city": "Kazan",               # crm is trusted most; the empty value is no value
        "postcode": "420 111",         # default: most recent
        "date_of_birth": "1990-05-04",
    }


def test_counters_identifiers_and_seen_times(store, log) -> None:
    store.apply_changes([log.created("c1", "r-web"), log.linked("c1", "r-pos")])
    store.append([
        ev("w1", "r-web", T0, source="shop"),
        ev("w2", "r-web", T0 + DAY, source="shop", name="Order Completed", revenue=100.5),
        ev("p1", "r-pos", T0 + 2 * DAY, source="pos-1", channel="store",
           name="Order Completed", revenue=900),
    ], [("r-web", "email", "anna@example.ru", T0), ("r-pos", "email", "anna@example.ru", T0),
        ("r-pos", "loyalty_id", "lc42", T0)])
    profile = store.get_profile("c1")
    assert profile.event_count == 3
    assert profile.counters.events_by_channel == {"store": 1, "web": 2}
    assert (profile.counters.orders_online, profile.counters.orders_store) == (1, 1)
    assert profile.counters.revenue == pytest.approx(1000.5)
    assert (profile.first_seen, profile.last_seen) == (T0, T0 + 2 * DAY)
    details = {(d.id_type, d.value): d for d in profile.identifier_details}
    email = details[("email", "anna@example.ru")]
    assert email.sources == ("pos-1", "shop")
    assert (email.first_seen, email.last_seen) == (T0, T0 + 2 * DAY)
    assert details[("loyalty_id", "lc42")].sources == ("pos-1",)
    # A retried batch adds nothing.
    store.append([ev("p1", "r-pos", T0 + 2 * DAY, channel="store", name="Order Completed",
                     revenue=900)], [])
    assert store.get_profile("c1").counters.revenue == pytest.approx(1000.5)


def _history() -> list[StoredEvent]:
    return [ev("a1", "rA", T0, source="crm", first_name="Viktor", city="Kazan"),
            ev("a2", "rA", T0 + DAY, name="Order Completed", revenue=10),
            ev("b1", "rB", T0 + 2 * DAY, source="pos", channel="store", first_name="VIKTOR",
               city="Moscow", name="Order Completed", revenue=90),
            ev("b2", "rB2", T0 - DAY, source="app", channel="app", last_name="Ivanov")]


def _ids() -> list[tuple]:
    return [("rA", "email", "v@example.ru", T0), ("rB", "phone", "+79160000001", T0),
            ("rB2", "phone", "+79160000001", T0 - DAY)]


def _comparable(profile) -> tuple:
    return (profile.customer_id, profile.event_count, profile.traits, profile.first_seen,
            profile.last_seen, profile.counters, profile.identifier_details)


def test_a_merge_combines_golden_records_as_one_history_would(store_url: str,
                                                               tmp_path: Path) -> None:
    log = Log()
    merged = open_store(store_url, tmp_path)
    try:
        merged.apply_changes([log.created("cA", "rA"), log.created("cB", "rB"),
                              log.linked("cB", "rB2")])
        merged.append(_history(), _ids())
        assert merged.get_profile("cB").event_count == 2
        merged.apply_changes([log.merged("cA", "cB")])
        after_merge = merged.get_profile("cB")  # a merged-away id answers the survivor
    finally:
        merged.close()
    one = Log()
    with _other_store(store_url, tmp_path) as single:
        single.apply_changes([one.created("cA", "rA"), one.linked("cA", "rB"),
                              one.linked("cA", "rB2")])
        single.append(_history(), _ids())
        as_one = single.get_profile("cA")
    assert after_merge.customer_id == "cA" and after_merge.merged_customer_ids == ["cB"]
    assert _comparable(after_merge) == _comparable(as_one)
    assert after_merge.traits == {"first_name": "Viktor", "city": "Moscow",
                                  "last_name": "Ivanov"}
    assert after_merge.counters.revenue == 100 and after_merge.counters.orders_store == 1


def test_a_split_folds_each_part_from_its_own_events(store, log) -> None:
    store.apply_changes([log.created("cA", "rA"), log.linked("cA", "rB"),
                         log.linked("cA", "rB2")])
    store.append(_history(), _ids())
    assert store.get_profile("cA").event_count == 4
    store.apply_changes([log.split("cN", "cA", "rB"), log.split("cN", "cA", "rB2")])
    kept, new = store.get_profile("cA"), store.get_profile("cN")
    assert (kept.event_count, new.event_count) == (2, 2)
    assert kept.traits == {"first_name": "Viktor", "city": "Kazan"}
    assert new.traits == {"first_name": "Viktor", "city": "Moscow", "last_name": "Ivanov"}
    assert kept.identifiers == [("email", "v@example.ru")]
    assert new.identifiers == [("phone", "+79160000001")]
    assert (kept.counters.revenue, new.counters.revenue) == (10, 90)
    assert (new.first_seen, new.last_seen) == (T0 - DAY, T0 + 2 * DAY)


def test_a_split_takes_the_consents_its_events_carried(store, log) -> None:
    """Each part keeps the decisions its own records' consent events carried; one made
    through the API stays with the id it was made for."""
    def consent(message_id: str, record: str, purpose: str, at: datetime) -> StoredEvent:
        event = ev(message_id, record, at, source="app", name="Consent Updated")
        event.properties.update({"purpose": purpose, "status": "granted",
                                 "proof_reference": f"proof-{message_id}"})
        return event

    store.apply_changes([log.created("cA", "rA"), log.linked("cA", "rB")])
    store.append([consent("m1", "rA", "marketing_email", T0),
                  consent("m2", "rB", "sms", T0 + DAY),
                  ev("m3", "rB", T0 + DAY)], [])
    store.record_consents("cA", [Consent("push", "", "denied", T0 + 2 * DAY,
                                         "call_center", "consent", "call-7")])
    before = {c.purpose for c in store.get_profile("cA").consents}
    assert before == {"marketing_email", "sms", "push"}
    store.apply_changes([log.split("cN", "cA", "rB")])
    kept, new = store.get_profile("cA"), store.get_profile("cN")
    assert {c.purpose for c in kept.consents} == {"marketing_email", "push"}
    assert [(c.purpose, c.proof_reference) for c in new.consents] == [
        ("sms", "proof-m2")]
    assert [c.purpose for c in store.consent_history("cN", 0, 10)] == ["sms"]
    assert len(store.consent_history("cA", 0, 10)) == 2


def test_merging_into_a_split_part_in_one_run(store, log) -> None:
    store.apply_changes([log.created("cA", "rA"), log.linked("cA", "rB"),
                         log.created("cC", "rB2")])
    store.append(_history(), _ids())
    store.apply_changes([log.split("cN", "cA", "rB"), log.merged("cN", "cC")])
    assert store.get_profile("cC").customer_id == "cN"
    new = store.get_profile("cN")  # rB split off, then cC (rB2) merged in
    assert (new.event_count, new.traits["last_name"], new.counters.revenue) == (2, "Ivanov", 90)
    assert store.get_profile("cA").event_count == 2


def test_ingest_racing_merges_loses_and_doubles_nothing(store, log) -> None:
    """Appends of events to customers that merges fold into one another, from threads at
    once: the survivor's golden record counts every acknowledged event once."""
    customers = [f"c{i}" for i in range(8)]
    store.apply_changes([log.created(c, f"r{c}") for c in customers])
    merges = [log.merged("c0", c) for c in customers[1:]]
    acknowledged: list[set[str]] = []

    def ingest(worker: int) -> None:
        for n in range(15):
            batch = [ev(f"w{worker}-{n}-{c}", f"r{c}", T0 + timedelta(minutes=n),
                        name="Order Completed", revenue=1) for c in customers]
            acknowledged.append(store.append(batch, []))

    def merge() -> None:
        for change in merges:
            store.apply_changes([change])

    threads = [threading.Thread(target=ingest, args=(w,)) for w in range(3)] + [
        threading.Thread(target=merge)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = set().union(*acknowledged)
    assert len(stored) == 3 * 15 * 8
    profile = store.get_profile("c5")
    assert profile.customer_id == "c0"
    assert profile.event_count == len(stored)
    assert profile.counters.orders_online == len(stored)
    assert profile.counters.revenue == len(stored)
    for loser in customers[1:]:
        assert store.get_profile(loser).customer_id == "c0"


def test_erasure_removes_the_golden_record(store, log) -> None:
    store.apply_changes([log.created("cA", "rA")])
    store.append(_history()[:2], _ids()[:1])
    store.apply_changes([log.erased("cA")])
    assert store.get_profile("cA") is None


def test_a_store_from_before_golden_records_is_upgraded(tmp_path: Path) -> None:
    """A DuckDB file at schema version 2 (events, no golden records) gains them at start,
    folded from its events."""
    path = tmp_path / "old.duckdb"
    old = open_store(f"duckdb:///{path}", tmp_path)
    log = Log()
    try:
        old.apply_changes([log.created("cA", "rA"), log.linked("cA", "rB")])
        old.append(_history()[:3], _ids()[:2])
    finally:
        old.close()
    connection = duckdb.connect(str(path))  # as before migration 3 (and 7, 8)
    connection.execute("DROP TABLE profiles")
    _undo_lookup_keys(connection)
    connection.execute("DELETE FROM schema_migrations WHERE version = 3")
    connection.close()
    upgraded = open_store(f"duckdb:///{path}", tmp_path)
    try:
        profile = upgraded.get_profile("cA")
        assert profile.event_count == 3 and profile.counters.revenue == 100
        assert profile.traits["first_name"] == "Viktor"
    finally:
        upgraded.close()


def _undo_lookup_keys(connection) -> None:
    """Back to record identifiers without lookup keys (before migration 7; DuckDB drops no
    column of a table with an index, so migration 101's goes and comes back)."""
    connection.execute("DROP INDEX record_identifiers_by_key")
    connection.execute("DROP INDEX record_identifiers_by_record")
    connection.execute("ALTER TABLE record_identifiers DROP COLUMN lookup_key")
    connection.execute("DELETE FROM schema_migrations WHERE version IN (7, 8, 101)")


def test_a_store_from_before_whole_profile_rows_is_upgraded(tmp_path: Path) -> None:
    """A DuckDB file at schema version 6 (merged ids, scores and consents in their own
    tables only, identifiers without lookup keys) reads the same profiles after migrations 7
    and 8,
    and finds them by identifier."""
    path = tmp_path / "v6.duckdb"
    old = open_store(f"duckdb:///{path}", tmp_path)
    log = Log()
    try:
        old.apply_changes([log.created("cA", "rA"), log.created("cB", "rB"),
                           log.linked("cB", "rB2")])
        old.append(_history(), _ids())
        old.apply_changes([log.merged("cA", "cB")])
        old.record_consents("cA", [Consent("marketing_email", "email", "granted", T0,
                                           "web", "consent", "form-1")])
        old.set_scores([CustomerScores("cB", (Score("ltv", 12.5, "cdp-ltv", "3", T0),))])
        before = old.get_profile("cB")
    finally:
        old.close()
    connection = duckdb.connect(str(path))
    _undo_lookup_keys(connection)
    for column in ("merged_ids", "scores", "consents"):
        connection.execute(f"ALTER TABLE profiles DROP COLUMN {column}")
    connection.close()
    upgraded = open_store(f"duckdb:///{path}", tmp_path)
    try:
        after = upgraded.get_profile("cB")
        assert after == before
        assert after.customer_id == "cA" and after.merged_customer_ids == ["cB"]
        assert after.scores["ltv"].value == 12.5 and after.consents[0].status == "granted"
        assert upgraded.lookup_profile("phone", "+79160000001") == before
        assert upgraded.lookup_profile("email", "v@example.ru") == before
    finally:
        upgraded.close()


def test_lookup_finds_the_customer_holding_an_identifier(store) -> None:
    """By any identifier of any of the customer's records, after merges and splits; a value
    two customers hold (a household's phone) finds the one seen last."""
    log = Log()
    store.apply_changes([log.created("cA", "rA"), log.created("cB", "rB"),
                         log.linked("cB", "rB2")])
    store.append(_history(), _ids())
    assert store.lookup_profile("email", "v@example.ru").customer_id == "cA"
    assert store.lookup_profile("phone", "+79160000001").customer_id == "cB"
    assert store.lookup_profile("email", "nobody@example.ru") is None
    assert store.lookup_profile("phone", "v@example.ru") is None  # the type is part of it
    store.apply_changes([log.merged("cA", "cB")])
    merged = store.lookup_profile("phone", "+79160000001")
    assert merged.customer_id == "cA" and merged.merged_customer_ids == ["cB"]
    assert merged == store.get_profile("cB") == store.get_profile("cA")
    store.apply_changes([log.split("cC", "cA", "rB2")])
    household = store.lookup_profile("phone", "+79160000001")  # rB (cA) was seen later
    assert household.customer_id == "cA"
    store.append([ev("c9", "rB2", T0 + 9 * DAY)], [("rB2", "phone", "+79160000001", T0)])
    assert store.lookup_profile("phone", "+79160000001").customer_id == "cC"
    store.apply_changes([log.erased("cC")])
    assert store.lookup_profile("phone", "+79160000001").customer_id == "cA"


def test_reads_racing_writes_never_go_back(store) -> None:
    """Lookups and reads by id racing appends and merges (the embedded store caches what it
    read): what a reader sees never goes back, and once the writer is done every read sees
    its last commit."""
    log = Log()
    store.apply_changes([log.created("cA", "rA"), log.created("cB", "rB")])
    store.append(_history()[:1], _ids()[:1])
    done = threading.Event()
    seen: list[int] = []

    def read() -> None:
        while not done.is_set():
            profile = store.lookup_profile("email", "v@example.ru")
            seen.append(profile.event_count)
            assert store.get_profile(profile.customer_id).event_count >= profile.event_count

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(30):
            store.append([ev(f"w{i}", "rA", T0 + i * DAY)], [])
        store.append([ev("b-only", "rB", T0)], [("rB", "email", "v@example.ru", T0)])
        store.apply_changes([log.merged("cB", "cA")])
    finally:
        done.set()
        reader.join()
    assert seen == sorted(seen) and seen[-1] >= 1
    final = store.lookup_profile("email", "v@example.ru")
    assert final.customer_id == "cB" and final.event_count == 32
    assert store.get_profile("cA") == final


class _other_store:  # noqa: N801 (a context manager named for what it gives)
    """A second, empty store on the same backend."""

    def __init__(self, store_url: str, tmp_path: Path) -> None:
        self._postgres = store_url.startswith("postgres")
        self._url = "" if self._postgres else f"duckdb:///{tmp_path / 'other.duckdb'}"
        self._tmp = tmp_path

    def __enter__(self):
        if self._postgres:
            self._database = temporary_database()
            self._url = self._database.__enter__()
        self._store = open_store(self._url, self._tmp)
        return self._store

    def __exit__(self, *exc) -> None:
        self._store.close()
        if self._postgres:
            self._database.__exit__(*exc)


def test_golden_record_round_trips_its_json() -> None:
    record = GoldenRecord("c1")
    record.add_event(channel="web", event="Order Completed", source="shop", at=T0,
                     traits={"first_name": "anna", "address": {"city": "Kazan"}},
                     properties={"revenue": 5}, identifiers=[("email", "a@example.ru")])
    again = GoldenRecord.from_json("c1", record.first_seen, record.last_seen,
                                   record.event_count, record.identifiers_json(),
                                   record.candidates_json(), record.counters_json())
    assert again == record


def test_storage_form_follows_every_change_as_a_whole_serialisation_would() -> None:
    """Only changed identifiers and traits are serialised again; the text stays exactly what
    serialising the whole record writes, through events, merges and a reload."""
    def whole(record: GoldenRecord) -> tuple[str, str]:
        identifiers = json.dumps(
            [[t, v, sorted(s.sources), s.first.isoformat(), s.last.isoformat()]
             for (t, v), s in sorted(record.identifiers.items())], ensure_ascii=False)
        candidates = json.dumps(
            {name: [[c.value, c.source, c.first.isoformat(), c.last.isoformat(), c.count]
                    for c in sorted(cands, key=lambda c: c.key)]
             for name, cands in sorted(record.candidates.items())},
            ensure_ascii=False, default=str)
        return identifiers, candidates

    record, other = GoldenRecord("c1"), GoldenRecord("c2")
    for i in range(12):
        target = record if i % 3 else other
        target.add_event(
            channel="web", event="Page Viewed", source=f"src{i % 2}",
            at=T0 + timedelta(hours=i), properties={},
            traits={"first_name": ["Анна", "anna", "Maria"][i % 3], "address": {"n": i % 2}},
            identifiers=[("anonymous_id", f"anon-{i}"), ("email", "a@example.ru")])
        assert (record.identifiers_json(), record.candidates_json()) == whole(record)
    record.combine(other)
    assert (record.identifiers_json(), record.candidates_json()) == whole(record)
    again = GoldenRecord.from_json("c1", record.first_seen, record.last_seen,
                                   record.event_count, record.identifiers_json(),
                                   record.candidates_json(), record.counters_json())
    again.add_event(channel="store", event="Order Completed", source="pos",
                    at=T0 + timedelta(days=2), traits={"first_name": "Anna"},
                    properties={"revenue": 3}, identifiers=[("email", "a@example.ru")])
    assert (again.identifiers_json(), again.candidates_json()) == whole(again)
    assert json.loads(again.identifiers_json())[-1][0] == "email"

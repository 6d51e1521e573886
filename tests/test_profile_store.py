"""The storage contract, held by every backend: DuckDB (embedded) and PostgreSQL.

Events are keyed by identity record; which customer a record belongs to comes from the
identity change log (``apply_changes``), here written out by hand."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omnicdp.services.identity.client import Change
from omnicdp.services.profile.model import StoredEvent
from omnicdp.services.profile.store import open_store
from tests.pg import temporary_database

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["duckdb", "postgres"])
def store_url(request, tmp_path: Path):
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'profile.duckdb'}"
    else:
        with temporary_database() as url:
            yield url


@pytest.fixture
def store(store_url: str, tmp_path: Path):
    opened = open_store(store_url, tmp_path)
    yield opened
    opened.close()


def stored(message_id: str, customer_id: str, at: datetime = T0, record: str = "",
           **traits) -> StoredEvent:
    """An event of the record ``rec-<customer>`` unless another record is named."""
    return StoredEvent(message_id=message_id, customer_id=customer_id, type="track",
                       channel="web", event="Page Viewed", source="test", timestamp=at,
                       received_at=T0, identifiers={"email": "x@example.ru"},
                       traits=traits, properties={"path": "/sofa", "revenue": 10.5},
                       record_id=record or f"rec-{customer_id}")


class Log:
    """Identity's change log as the profile receives it, numbered in order."""

    def __init__(self) -> None:
        self.seq = 0

    def created(self, customer_id: str, record: str = "") -> Change:
        return self._next("created", customer_id, record=record or f"rec-{customer_id}")

    def linked(self, customer_id: str, record: str) -> Change:
        return self._next("linked", customer_id, record=record)

    def merged(self, survivor: str, loser: str) -> Change:
        return self._next("merged", survivor, other=loser)

    def split(self, new_customer: str, old_customer: str, record: str) -> Change:
        return self._next("split", new_customer, other=old_customer, record=record)

    def erased(self, customer_id: str) -> Change:
        return self._next("erased", customer_id)

    def _next(self, kind: str, customer_id: str, other: str | None = None,
              record: str | None = None) -> Change:
        self.seq += 1
        return Change(self.seq, kind, customer_id, other, record, T0)


@pytest.fixture
def log(store) -> Log:
    return Log()


def test_append_stores_new_events_once(store, log) -> None:
    store.apply_changes([log.created("c1")])
    assert store.append([stored("m1", "c1"), stored("m2", "c1")], []) == {"m1", "m2"}
    assert store.append([stored("m1", "c1"), stored("m3", "c1")], []) == {"m3"}
    assert store.known_message_ids(["m1", "m3", "zz"]) == {"m1": "c1", "m3": "c1"}
    assert store.get_profile("c1").event_count == 3


def test_events_round_trip_with_their_json(store) -> None:
    store.append([stored("m1", "c1", first_name="Анна")], [])
    [event] = store.list_events(0, 10)
    assert event.message_id == "m1" and event.customer_id == "c1"
    assert event.record_id == "rec-c1"
    assert event.timestamp == T0
    assert event.properties == {"path": "/sofa", "revenue": 10.5}
    assert event.traits == {"first_name": "Анна"}


def test_profile_takes_the_latest_trait_values(store, log) -> None:
    store.apply_changes([log.created("c1")])
    store.append([stored("m1", "c1", T0, city="Kazan", first_name="Anna"),
                  stored("m2", "c1", T0 + timedelta(days=1), city="Moscow", first_name="")],
                 [("rec-c1", "email", "anna@example.ru", T0)])
    profile = store.get_profile("c1")
    assert profile.traits == {"city": "Moscow", "first_name": "Anna"}
    assert profile.identifiers == [("email", "anna@example.ru")]
    assert (profile.first_seen, profile.last_seen) == (T0, T0 + timedelta(days=1))


def test_merges_follow_the_change_log_and_never_rewrite_events(store, log) -> None:
    store.apply_changes([log.created("cA"), log.created("cB"), log.created("cC")])
    store.append([stored("a1", "cA")], [("rec-cA", "email", "a@example.ru", T0)])
    store.append([stored("b1", "cB")], [("rec-cB", "phone", "+79160000001", T0)])
    store.append([stored("c1", "cC")], [])
    store.apply_changes([log.merged("cB", "cC")])
    store.apply_changes([log.merged("cA", "cB"), log.linked("cA", "rec-new")])
    store.append([stored("a2", "cA", record="rec-new")], [])
    for alias in ("cA", "cB", "cC"):
        assert store.canonical_customer_id(alias) == "cA"
    profile = store.get_profile("cC")
    assert profile.customer_id == "cA"
    assert profile.event_count == 4
    assert sorted(profile.merged_customer_ids) == ["cB", "cC"]
    assert sorted(profile.identifiers) == [("email", "a@example.ru"), ("phone", "+79160000001")]
    assert store.known_message_ids(["c1"]) == {"c1": "cA"}
    # Stored as they came: each event keeps its record.
    assert {e.message_id: e.record_id for e in store.list_events(0, 10)} == {
        "a1": "rec-cA", "b1": "rec-cB", "c1": "rec-cC", "a2": "rec-new"}


def test_an_event_stored_after_its_customer_was_merged_reads_under_the_survivor(
        store, log) -> None:
    """The race that lost events: a batch resolved to cB is stored after the merge of cB
    into cA was applied. Keyed by record, it still reads under cA."""
    store.apply_changes([log.created("cA"), log.created("cB"), log.merged("cA", "cB")])
    store.append([stored("late", "cB")], [])
    assert store.get_profile("cA").event_count == 1
    assert store.known_message_ids(["late"]) == {"late": "cA"}
    [event] = store.list_customer_events("cB", None, 10)
    assert (event.message_id, event.customer_id) == ("late", "cA")


def test_applying_the_log_twice_changes_nothing(store, log) -> None:
    changes = [log.created("cA"), log.created("cB"), log.merged("cA", "cB")]
    assert store.apply_changes(changes) == 3
    assert store.apply_changes(changes[:2]) == 3  # old entries are skipped
    store.append([stored("b1", "cB")], [])
    assert store.get_profile("cB").customer_id == "cA"
    assert store.change_cursor() == 3


def test_concurrent_appliers_apply_each_change_once(store, log) -> None:
    created = [log.created(f"c{i}") for i in range(40)]
    merges = [log.merged("c0", f"c{i}") for i in range(1, 40)]
    changes = created + merges
    store.append([stored(f"m{i}", f"c{i}") for i in range(40)], [])
    threads = [threading.Thread(target=store.apply_changes, args=(changes[: 20 * k],))
               for k in range(1, 5)] + [threading.Thread(target=store.apply_changes,
                                                         args=(changes,))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.change_cursor() == len(changes)
    profile = store.get_profile("c39")
    assert (profile.customer_id, profile.event_count) == ("c0", 40)


def test_journey_and_full_scan_page_in_order(store, log) -> None:
    store.apply_changes([log.created("c1")])
    times = [T0 + timedelta(hours=h) for h in (3, 1, 2, 1)]
    store.append([stored(f"m{i}", "c1", t) for i, t in enumerate(times)], [])
    journey, cursor = [], None
    while page := store.list_customer_events("c1", cursor, 2):
        journey += page
        cursor = (page[-1].timestamp, page[-1].seq)
    assert [e.timestamp for e in journey] == sorted(times)
    assert len({e.message_id for e in journey}) == 4
    scan, after = [], 0
    while page := store.list_events(after, 3):
        scan += page
        after = page[-1].seq
    assert sorted(e.message_id for e in scan) == ["m0", "m1", "m2", "m3"]


def test_unknown_customer_has_no_profile(store) -> None:
    assert store.get_profile("nobody") is None


def test_concurrent_retries_of_one_batch_store_it_once(store, log) -> None:
    store.apply_changes([log.created("c1")])
    batch = [stored(f"m{i}", "c1") for i in range(50)]
    results: list[set[str]] = []
    threads = [threading.Thread(target=lambda: results.append(store.append(batch, [])))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(r) for r in results) == [0, 0, 0, 50]
    assert store.get_profile("c1").event_count == 50


def test_data_survives_reopening(store_url: str, tmp_path: Path) -> None:
    first = open_store(store_url, tmp_path)
    first.apply_changes([Log().created("c1")])
    first.append([stored("m1", "c1")], [("rec-c1", "email", "a@example.ru", T0)])
    first.close()
    again = open_store(store_url, tmp_path)
    try:
        assert again.get_profile("c1").event_count == 1
        assert again.change_cursor() == 1
    finally:
        again.close()



def test_a_run_of_changes_applied_at_once_ends_as_applied_one_by_one(
        store_url: str, tmp_path: Path) -> None:
    """Merges chain, a split moves a record out and re-points an alias merged earlier in the
    same run, an erasure cuts the run: folding them must end where one at a time does."""
    log = Log()
    known = [log.created(c) for c in ("cA", "cB", "cC", "cD", "cE")] + [
        log.linked("cC", "rec-cC2")]
    changes = [
        log.merged("cB", "cC"),            # cC -> cB
        log.linked("cB", "rec-c2"),
        log.merged("cA", "cB"),            # cB (and cC) -> cA
        log.split("cF", "cA", "rec-cC"),   # rec-cC leaves cA for a new cF...
        log.merged("cF", "cC"),            # ...and the alias cC follows it
        log.merged("cD", "cE"),
        log.erased("cD"),                  # cD and cE's records go
        log.created("cG"),
        log.merged("cG", "cF"),
        log.linked("cA", "rec-late"),      # a record new to the run, split off at once
        log.split("cH", "cA", "rec-late"),
    ]
    events = [stored(f"m-{r}", "cA", record=r) for r in
              ("rec-cA", "rec-cB", "rec-cC", "rec-cC2", "rec-c2", "rec-cD", "rec-cE", "rec-cG",
               "rec-late")]

    def outcome(path: Path, steps: list[list[Change]]) -> tuple:
        url = store_url if store_url.startswith("postgres") else f"duckdb:///{path}"
        opened = open_store(url, tmp_path)
        try:
            opened.append(events, [])
            for step in steps:
                opened.apply_changes(step)
            aliases = {c: opened.canonical_customer_id(c)
                       for c in ("cA", "cB", "cC", "cD", "cE", "cF", "cG", "cH")}
            journeys = {c: [e.record_id for e in opened.list_customer_events(c, None, 50)]
                        for c in set(aliases.values())}
            return aliases, journeys
        finally:
            opened.close()

    at_once = outcome(tmp_path / "a.duckdb", [known, changes])
    if store_url.startswith("postgres"):
        with temporary_database() as other:
            store_url = other
            one_by_one = outcome(tmp_path / "b.duckdb", [[c] for c in known + changes])
    else:
        one_by_one = outcome(tmp_path / "b.duckdb", [[c] for c in known + changes])
    assert at_once == one_by_one
    aliases, journeys = at_once
    assert aliases["cC"] == aliases["cF"] == "cG" and aliases["cB"] == "cA"
    assert sorted(journeys["cA"]) == ["rec-c2", "rec-cA", "rec-cB", "rec-cC2"]
    assert sorted(journeys["cG"]) == ["rec-cC", "rec-cG"]
    assert journeys["cH"] == ["rec-late"]
    assert "rec-cD" not in str(journeys) and "rec-cE" not in str(journeys)


def test_a_read_on_a_lost_connection_is_unavailable_and_the_next_one_reconnects(
        tmp_path: Path) -> None:
    """PostgreSQL: the server ends the store's sessions (a restart, a failover). The read
    that was using one fails as UNAVAILABLE (retryable), not as an internal error, and the
    next read gets a fresh connection."""
    import psycopg

    from omnicdp.core.errors import Unavailable

    with temporary_database() as url:
        store = open_store(url, tmp_path)
        try:
            store.append([stored("m1", "c1")], [])
            assert store.get_profile("c1").event_count == 1
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            with pytest.raises(Unavailable):
                store.get_profile("c1")
            assert store.get_profile("c1").event_count == 1
        finally:
            store.close()

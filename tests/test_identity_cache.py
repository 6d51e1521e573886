"""The embedded store's cache of the graph: whatever it holds or forgets, resolution, unmerge
and erasure end exactly as without it, and a repeated stream is answered from memory."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from omnicdp.services.identity.model import IdentityRecord
from omnicdp.services.identity.resolver import Resolver
from omnicdp.services.identity.store import duckdb as duckdb_store
from omnicdp.services.identity.store.duckdb import DuckDBIdentityStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def tangled_stream(seed: int, count: int = 300) -> list[IdentityRecord]:
    """Records drawing identifiers from small pools, so that they chain, merge and repeat."""
    rng = random.Random(seed)
    pools = {
        "email": [f"p{i}@mail.ru" for i in range(30)],
        "phone": [f"+7916{i:07d}" for i in range(25)],
        "device_id": [f"dev-{i}" for i in range(40)],
        "anonymous_id": [f"anon-{i}" for i in range(75)],
        "user_id": [f"u{i}" for i in range(20)],
    }
    records = []
    for n in range(count):
        kinds = rng.sample(sorted(pools), rng.choice((1, 1, 2, 2, 3)))
        identifiers = {kind: rng.choice(pools[kind]) for kind in kinds}
        traits = {"first_name": rng.choice(("Anna", "Oleg", "Irina", "Pavel"))}
        records.append(IdentityRecord(f"e{n}", identifiers, T0 + timedelta(minutes=n),
                                      source="web", traits=traits))
    return records


def partition(store: DuckDBIdentityStore) -> set[frozenset[str]]:
    """The stored records grouped by customer (customer ids themselves are random)."""
    groups: dict[str, set[str]] = {}
    for record_id, customer_id in store._run(
            lambda s: s.fetch("SELECT record_id, customer_id FROM records")):
        groups.setdefault(customer_id, set()).add(record_id)
    return {frozenset(group) for group in groups.values()}


def holders(store: DuckDBIdentityStore, records: list[IdentityRecord]) -> list[int]:
    """For every identifier of the stream, how many records its live customer holds."""
    sizes = {}
    for customer_id, count in store._run(lambda s: s.fetch(
            "SELECT customer_id, count(*) FROM records GROUP BY customer_id")):
        sizes[customer_id] = count
    answer = []
    for record in records:
        for id_type, value in sorted(record.identifiers.items()):
            customer_id = store.lookup(id_type, value)
            answer.append(sizes.get(customer_id, 0) if customer_id else -1)
    return answer


def run(store: DuckDBIdentityStore, records: list[IdentityRecord]) -> None:
    """Resolve in batches; at two points unmerge a record from its customer and erase one
    (writes that the cache does not follow: they empty it)."""
    resolver = Resolver(store)
    for start in range(0, len(records), 25):
        resolutions = resolver.resolve(records[start:start + 25])
        if start // 25 in (20, 30):
            first, last = resolutions[0], resolutions[-1]
            customer_id = store.resolve_redirects(first.customer_id)
            own = [r.record_id for r in store.records_of(customer_id)]
            if len(own) > 1:
                store.unmerge(customer_id, [first.identity_record_id], "test", "cache check")
            store.erase(last.customer_id, "test", "cache check")


def test_any_cache_size_ends_exactly_as_no_cache() -> None:
    records = tangled_stream(seed=11)
    # Three times through: later passes repeat records, as a live stream does.
    stream = records + records[::-1] + records
    outcomes = []
    for size in (0, 3, 50_000):
        with DuckDBIdentityStore(":memory:", cache_customers=size) as store:
            run(store, stream)
            outcomes.append((partition(store), holders(store, records),
                             store.count_customers(), store.count_customers(True)))
    uncached, tiny, large = outcomes
    assert len(uncached[0]) > 20  # the stream made many customers, merged and split some
    assert tiny == uncached
    assert large == uncached


def test_a_repeated_stream_is_answered_from_memory() -> None:
    records = tangled_stream(seed=5, count=200)
    with DuckDBIdentityStore(":memory:") as store:
        resolver = Resolver(store)
        first = resolver.resolve(records)
        misses = store.cache.misses
        again = resolver.resolve(records)
        assert store.cache.misses == misses  # nothing loaded from the database
        assert store.cache.hits > 0
        assert [r.customer_id for r in again] == [
            store.resolve_redirects(r.customer_id) for r in first]


@pytest.mark.parametrize("size", [0, 50_000])
def test_an_identifier_of_a_merged_customer_outside_the_batch_follows_the_merge(
        size: int) -> None:
    """The merge moves the loser's device to the survivor although the batch never named the
    device; the cached holders of the device must follow."""
    with DuckDBIdentityStore(":memory:", cache_customers=size) as store:
        resolver = Resolver(store)

        def resolve(n: int, **identifiers: str) -> str:
            record = IdentityRecord(f"r{n}", identifiers, T0 + timedelta(minutes=n))
            return resolver.resolve([record])[0].customer_id

        oldest = resolve(1, email="anna@mail.ru")
        other = resolve(2, phone="+79160000001", device_id="dev-1")
        assert resolve(3, email="anna@mail.ru", phone="+79160000001") == oldest
        assert store.resolve_redirects(other) == oldest
        assert resolve(4, device_id="dev-1") == oldest


def seen_times(store) -> tuple[set, set]:
    """Every identifier's first and last sighting in its customer, and every record's last
    sighting, as the store answers them."""
    customers = {c for (c,) in store._run(lambda s: s.fetch(
        "SELECT DISTINCT customer_id FROM records"))}
    identifiers = {(row.id_type, row.value, row.first_seen, row.last_seen)
                   for c in customers for row in store.identifier_rows(c)}
    records = {(r.record_id, r.first_seen, r.last_seen)
               for c in customers for r in store.records_of(c)}
    return identifiers, records


def test_sightings_read_the_same_folded_or_not_and_after_a_restart(tmp_path, monkeypatch) -> None:
    records = tangled_stream(seed=3, count=200)
    stream = records + records[::-1] + records  # later passes are sightings of known records
    answers = []
    for fold_rows in (1, 10**9):
        monkeypatch.setattr(duckdb_store, "FOLD_ROWS", fold_rows)
        path = tmp_path / f"fold-{fold_rows}.duckdb"
        with DuckDBIdentityStore(path) as store:
            resolver = Resolver(store)
            for start in range(0, len(stream), 40):
                resolver.resolve(stream[start:start + 40])
            unfolded = store._run(lambda s: s.fetch("SELECT count(*) FROM record_sightings"))
            answers.append((partition(store), seen_times(store)))
        with DuckDBIdentityStore(path) as reopened:  # unfolded sightings are read back
            assert (partition(reopened), seen_times(reopened)) == answers[-1]
        if fold_rows == 1:
            assert unfolded == [(0,)]
        else:
            assert unfolded[0][0] > 100
    assert answers[0] == answers[1]
    identifiers, _ = answers[0][1]
    assert any(first != last for _, _, first, last in identifiers)


def test_concurrent_batches_see_the_cache_and_the_file_agree(monkeypatch) -> None:
    """Four threads resolve at once while each commit's write-through is slowed down: a
    batch must never load from a cache that lags the file (it would take a held identifier
    for a new one, and store a record twice)."""
    records = tangled_stream(seed=21, count=400)
    with DuckDBIdentityStore(":memory:") as store:
        committed = store._graph_committed

        def slow_write_through(graph) -> None:
            time.sleep(0.003)
            committed(graph)
        monkeypatch.setattr(store, "_graph_committed", slow_write_through)
        resolver = Resolver(store)
        batches = [records[i:i + 10] for i in range(0, len(records), 10)]
        errors: list[BaseException] = []

        def work(k: int) -> None:
            try:
                for batch in batches[k::4] + batches[k::4]:
                    resolver.resolve(batch)
            except BaseException as error:  # reported below
                errors.append(error)
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        # Every identifier of every record is held by the record's customer, and the cache
        # answers who holds an identifier as the file does.
        assert store._run(lambda s: s.fetch(
            "SELECT count(*) FROM records r JOIN record_identifiers ri USING (record_id) "
            "LEFT JOIN identifiers i ON i.id_type = ri.id_type AND i.value = ri.value "
            "AND i.customer_id = r.customer_id WHERE i.customer_id IS NULL")) == [(0,)]
        for id_type, value in sorted({k for r in records for k in r.identifiers.items()}):
            stored = {c for (c,) in store._run(lambda s, t=id_type, v=value: s.fetch(
                "SELECT customer_id FROM identifiers WHERE id_type = %s AND value = %s",
                [t, v]))}
            assert set(store.find_customers(id_type, value)) == stored

"""A bounded cache of the identity graph for a store with one writer (embedded DuckDB).

DuckDB answers a point lookup in tens of microseconds, so a batch of 500 records that looked
everything up afresh would spend most of its time in index probes; yet a retailer's stream
repeats itself (the same cookie on every page view, the same card at every till). With one
writer, what a transaction read stays true until this process changes it, so the loads of a
working set (``graph.GraphSource``) can be answered from memory:

- **Filled on load.** What a transaction loads from the database is committed state (loads
  happen before a transaction writes, and transactions run one at a time), so it is kept,
  including the *absence* of holders for a key or of a record: a new identifier costs one
  probe, not one per event.
- **Written through on commit.** After a transaction commits, what it changed is applied to
  the entries (``GraphCache.committed``), mirroring the SQL writes; nothing is applied for a
  transaction that failed.
- **Cleared** by any other write (unmerge, a placeholder split, erasure, a failed commit):
  those are rare and change rows the cache cannot follow cheaply.
- **Bounded**: least recently used entries go first, so memory does not grow with the number
  of customers. An evicted entry is simply loaded again.

A cached record or alias may point at a customer that was merged again later; following the
cached ``merged_into`` redirects still ends at the live customer, and where a hop is no longer
cached the record is loaded afresh.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from typing import Generic, TypeVar

from omnicdp.services.identity.store.graph import (
    CustomerRow,
    GraphSource,
    GraphTransaction,
    Key,
    Seen,
    StoredCandidate,
)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: (row, identifiers as (id_type, value, seen)) of a customer, complete.
CustomerEntry = tuple[CustomerRow, tuple[tuple[str, str, Seen], ...]]


class _Lru(Generic[K, V]):
    """A dictionary that forgets its least recently used entries past ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self._capacity = max(capacity, 0)
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        try:
            value = self._entries[key]
        except KeyError:
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def peek(self, key: K) -> tuple[bool, V | None]:
        """Like ``get``, without making the entry recent."""
        if key in self._entries:
            return True, self._entries[key]
        return False, None

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class GraphCache:
    """Holders of identifiers, customers, records and names, as committed (module docs)."""

    def __init__(self, customers: int = 50_000) -> None:
        # Sized from the customer count: about three identifiers and records per customer.
        self.customers: _Lru[str, CustomerEntry] = _Lru(customers)
        self.holders: _Lru[Key, frozenset[str]] = _Lru(3 * customers)
        self.records: _Lru[str, str | None] = _Lru(4 * customers)
        # names seen with a watched identifier, (kind, name digest), and whether it is a
        # placeholder
        self.names: _Lru[Key, tuple[frozenset[tuple[str, str]], bool]] = _Lru(3 * customers)
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        for part in (self.customers, self.holders, self.records, self.names):
            part.clear()

    def live_customer(self, customer_id: str) -> str | None:
        """Where a cached customer ended up, following cached redirects; ``None`` when a
        hop is not cached. (The store redirects a record's customer on every merge, the
        records cached here only on the merges that loaded them.)"""
        for _ in range(64):
            found, entry = self.customers.peek(customer_id)
            if not found:
                return None
            if entry[0].merged_into is None:
                return customer_id
            customer_id = entry[0].merged_into
        return None

    def source(self, inner: GraphSource) -> GraphSource:
        """A source that answers from this cache and loads the rest from ``inner``."""
        return _CachedSource(self, inner)

    def committed(self, graph: GraphTransaction) -> None:
        """Apply what a committed transaction wrote (``sql.SqlIdentityStore._write``)."""
        delta = graph.delta
        losers = {loser for _, loser in delta.merges}
        touched_keys: dict[Key, set[str]] = {}
        touched_customers = set(delta.new_customers) | losers | {s for s, _ in delta.merges}
        for id_type, value, customer_id in delta.identifiers:
            touched_keys.setdefault((id_type, value), set()).add(customer_id)
            touched_customers.add(customer_id)
        touched_customers.update(customer_id for _, _, customer_id in delta.sightings)
        for customer_id in touched_customers:
            self.customers.put(customer_id, graph.cache_entry(customer_id))
        for customer_id, other in delta.separations:
            found, entry = self.customers.peek(customer_id)
            if found and customer_id not in touched_customers:
                row, held = entry
                self.customers.put(customer_id, (row._replace(apart=row.apart | {other}), held))
        for key, holders in touched_keys.items():
            if graph.knows_all_holders(key):
                self.holders.put(key, frozenset(graph.holders_of(key)))
                continue
            found, cached = self.holders.peek(key)
            if found:
                self.holders.put(key, frozenset((cached - losers) | holders))
        for record_id, record in delta.new_records.items():
            self.records.put(record_id, graph.final_customer(record.customer_id))
        added: dict[Key, set[tuple[str, str]]] = {}
        for id_type, value, kind, name in delta.names:
            added.setdefault((id_type, value), set()).add((kind, name))
        for key in added.keys() | delta.placeholders.keys():
            found, cached = self.names.peek(key)
            if found:
                names, placeholder = cached
                self.names.put(key, (names | added.get(key, set()),
                                     placeholder or key in delta.placeholders))


class _CachedSource:
    """``GraphSource`` over a cache, loading misses from the database and keeping them."""

    def __init__(self, cache: GraphCache, inner: GraphSource) -> None:
        self._cache = cache
        self._inner = inner

    def _split(self, part: _Lru, wanted: Iterable) -> tuple[dict, list]:
        hits, misses = {}, []
        for item in wanted:
            found, value = part.get(item)
            if found:
                hits[item] = value
            else:
                misses.append(item)
        self._cache.hits += len(hits)
        self._cache.misses += len(misses)
        return hits, misses

    def holders(self, keys: Sequence[Key]) -> list[tuple[str, str, str]]:
        hits, misses = self._split(self._cache.holders, keys)
        rows = [(t, v, c) for (t, v), holders in hits.items() for c in holders]
        if misses:
            loaded = self._inner.holders(misses)
            found: dict[Key, set[str]] = {key: set() for key in misses}
            for id_type, value, customer_id in loaded:
                found[(id_type, value)].add(customer_id)
            for key, holders in found.items():
                self._cache.holders.put(key, frozenset(holders))
            rows.extend(loaded)
        return rows

    def customers(self, customer_ids: Sequence[str]
                  ) -> tuple[dict[str, CustomerRow], list[tuple[str, str, str, Seen]]]:
        hits, misses = self._split(self._cache.customers, customer_ids)
        rows = {c: row for c, (row, _) in hits.items()}
        identifiers = [(t, v, c, seen) for c, (_, held) in hits.items() for t, v, seen in held]
        if misses:
            loaded_rows, loaded = self._inner.customers(misses)
            held: dict[str, list[tuple[str, str, Seen]]] = {}
            for id_type, value, customer_id, seen in loaded:
                held.setdefault(customer_id, []).append((id_type, value, seen))
            for customer_id, row in loaded_rows.items():
                self._cache.customers.put(customer_id,
                                          (row, tuple(held.get(customer_id, ()))))
            rows.update(loaded_rows)
            identifiers.extend(loaded)
        return rows, identifiers

    def records(self, record_ids: Sequence[str]) -> dict[str, str]:
        hits, misses = self._split(self._cache.records, record_ids)
        found = {}
        for record_id, customer_id in hits.items():
            if customer_id is None:
                continue
            live = self._cache.live_customer(customer_id)
            if live is None:
                misses.append(record_id)  # its customer's redirect is no longer cached
            else:
                found[record_id] = live
        if misses:
            loaded = self._inner.records(misses)
            for record_id in misses:
                self._cache.records.put(record_id, loaded.get(record_id))
            found.update(loaded)
        return found

    def candidates(self, keys: Sequence[int], per_key: int) -> dict[int, list[StoredCandidate]]:
        return self._inner.candidates(keys, per_key)  # features are not cached

    def erased_among(self, keys: Sequence[Key]) -> set[Key]:
        return self._inner.erased_among(keys)

    def names(self, keys: Sequence[Key]) -> tuple[list[tuple[str, str, str, str]], set[Key]]:
        hits, misses = self._split(self._cache.names, keys)
        names = [(t, v, kind, name) for (t, v), (seen, _) in hits.items() for kind, name in seen]
        placeholders = {key for key, (_, placeholder) in hits.items() if placeholder}
        if misses:
            loaded, found_placeholders = self._inner.names(misses)
            seen: dict[Key, set[tuple[str, str]]] = {key: set() for key in misses}
            for id_type, value, kind, name in loaded:
                seen[(id_type, value)].add((kind, name))
            for key, pairs in seen.items():
                self._cache.names.put(key, (frozenset(pairs), key in found_placeholders))
            names.extend(loaded)
            placeholders |= found_placeholders
        return names, placeholders

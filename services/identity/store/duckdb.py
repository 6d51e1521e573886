"""The identity graph on embedded DuckDB (the interface is ``base.py``, the SQL ``sql.py``).

DuckDB allows one read-write process per file, so transactions run one at a time in this
process (``omnicdp.core.sql.DuckDBDatabase``). Each batch loads what it needs through
indexed lookups and writes its delta in bulk. Two things keep a batch's cost from growing
with the stored history, both possible because this process is the only writer:

- **A bounded cache** of what batches loaded (``cache.py``), written through on commit:
  DuckDB answers a point lookup in tens of microseconds, and a retailer's stream repeats.
- **Sightings are appended, then folded.** Most records of a stream were seen before; seeing
  one again only advances when it and its identifiers were last seen. Updating those rows
  in place costs DuckDB an index probe each (about 15-35 ms for a batch), so the advances are
  appended to ``identifier_sightings`` and ``record_sightings`` in the batch's transaction
  (durable like the rest of it), kept in memory, and added to every read of those times;
  every ``FOLD_ROWS`` of them, and before any write that rebuilds or erases rows, they are
  folded into ``identifiers`` and ``records`` in a few bulk statements.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import ClassVar, TypeVar

from omnicdp.core.sql import DuckDBDatabase, Migration, Session, migrate, naive_utc
from omnicdp.services.identity.store.cache import GraphCache
from omnicdp.services.identity.store.graph import (
    CustomerRow,
    GraphSource,
    GraphTransaction,
    Key,
    Seen,
)
from omnicdp.services.identity.store.sql import SqlGraphSource, SqlIdentityStore, migrations

T = TypeVar("T")
Row = tuple[str, str, str]  # (id_type, value, customer_id)

#: Sightings kept unfolded at most (about 250 bytes of memory each).
FOLD_ROWS = 50_000

#: DuckDB's SQL for ``omnicdp.core.digests.sha256_hex`` of a text (its UTF-8 bytes, hex
#: in lower case).
SHA256_HEX = "sha256({})"

# The embedded backend's own tables, numbered apart from the shared migrations.
EMBEDDED_MIGRATIONS: tuple[Migration, ...] = (
    (101, "embedded: sightings of known identifiers and records, folded in bulk", (
        """CREATE TABLE identifier_sightings (
            id_type VARCHAR NOT NULL,
            value VARCHAR NOT NULL,
            customer_id VARCHAR NOT NULL,
            first_seen TIMESTAMP NOT NULL,
            last_seen TIMESTAMP NOT NULL,
            record_id VARCHAR NOT NULL
        )""",
        """CREATE TABLE record_sightings (
            record_id VARCHAR NOT NULL,
            last_seen TIMESTAMP NOT NULL
        )""",
    )),
)


def later(a: Seen, b: Seen) -> Seen:
    """Two sightings of one identifier in one customer, as one."""
    latest = b.record_id if b.last > a.last else a.record_id
    return Seen(min(a.first, b.first), max(a.last, b.last), latest)


class _Sightings:
    """The unfolded sightings, as the tables hold them."""

    def __init__(self) -> None:
        self.identifiers: dict[Row, Seen] = {}
        self.records: dict[str, datetime] = {}

    def add(self, identifiers: Mapping[Row, Seen], records: Mapping[str, datetime]) -> None:
        for row, seen in identifiers.items():
            old = self.identifiers.get(row)
            self.identifiers[row] = seen if old is None else later(old, seen)
        for record_id, last in records.items():
            self.records[record_id] = max(last, self.records.get(record_id, last))

    def __len__(self) -> int:
        return len(self.identifiers) + len(self.records)

    @classmethod
    def load(cls, session: Session) -> _Sightings:
        sightings = cls()
        sightings.add(
            {(t, v, c): Seen(naive_utc(f), naive_utc(la), r) for t, v, c, f, la, r in session.fetch(
                "SELECT id_type, value, customer_id, min(first_seen), max(last_seen), "
                "arg_max(record_id, last_seen) FROM identifier_sightings "
                "GROUP BY id_type, value, customer_id")},
            {r: naive_utc(la) for r, la in session.fetch(
                "SELECT record_id, max(last_seen) FROM record_sightings GROUP BY record_id")})
        return sightings


class DuckDBIdentityStore(SqlIdentityStore):
    """Records, links, customers and the change log in one DuckDB file (or memory)."""

    # One writer, and a batch adds only names its working set did not find among every name
    # stored for the identifier (``GraphTransaction.observe_names`` loads them first), so
    # nothing conflicts. DuckDB's check of this four-column key costs in proportion to the
    # table: 2.6 ms for two rows at 4k stored, 33 ms at 400k (a throwaway script).
    NAMES_CONFLICT: ClassVar[str] = ""

    def __init__(self, path: str | os.PathLike[str] = ":memory:",
                 cache_customers: int = 50_000,
                 memory_limit: str = DuckDBDatabase.MEMORY_LIMIT) -> None:
        self.cache = GraphCache(cache_customers)
        # The unfolded sightings, read from their tables when first needed (at most
        # FOLD_ROWS after a restart); None: read them again.
        self._sightings: _Sightings | None = None
        self._staged: tuple[dict[Row, Seen], dict[str, datetime]] | None = None
        self._seq: int | None = None  # the change log's last number
        # Whether any customer was ever erased (None: ask the database). Most stores hold
        # no tombstone, and a batch then need not look its identifiers' hashes up.
        self._tombstones: bool | None = None
        self._db = DuckDBDatabase(path, "identity", memory_limit)
        # A rolled-back transaction may have been written through already (a batch inside
        # an enclosing transaction that failed later).
        self._db.on_rollback.append(self._forget)
        try:
            with self._db.session() as session:
                self._migrate(session)
        except BaseException:
            self._db.close()
            raise

    def _migrate(self, session: Session) -> None:
        migrate(session, migrations(SHA256_HEX) + EMBEDDED_MIGRATIONS, "identity")

    def _forget(self) -> None:
        self._seq = None
        self._tombstones = None
        self.cache.clear()
        self._sightings = None
        self._staged = None

    def _unfolded(self, session: Session) -> _Sightings:
        if self._sightings is None:
            self._sightings = _Sightings.load(session)
        return self._sightings

    # -- sightings: appended, overlaid on reads, folded in bulk ---------------------------

    def _write_sightings(self, session: Session, identifiers: Mapping[Row, Seen],
                         records: Mapping[str, datetime]) -> None:
        session.insert("identifier_sightings", ("id_type", "value", "customer_id", "first_seen",
                                                "last_seen", "record_id"),
                       [(t, v, c, x.first, x.last, x.record_id)
                        for (t, v, c), x in identifiers.items()])
        session.insert("record_sightings", ("record_id", "last_seen"), list(records.items()))
        self._staged = (dict(identifiers), dict(records))

    def _fold(self, session: Session) -> None:
        """Write the sightings into ``identifiers`` and ``records`` and empty their tables."""
        if not self._unfolded(session):
            return
        session.execute(
            "UPDATE identifiers SET first_seen = least(identifiers.first_seen, p.first_seen), "
            "last_seen = greatest(identifiers.last_seen, p.last_seen), "
            "record_id = CASE WHEN p.last_seen > identifiers.last_seen THEN p.record_id "
            "ELSE identifiers.record_id END "
            "FROM (SELECT id_type, value, customer_id, min(first_seen) AS first_seen, "
            "max(last_seen) AS last_seen, arg_max(record_id, last_seen) AS record_id "
            "FROM identifier_sightings GROUP BY id_type, value, customer_id) p "
            "WHERE identifiers.id_type = p.id_type AND identifiers.value = p.value "
            "AND identifiers.customer_id = p.customer_id")
        session.execute(
            "UPDATE records SET last_seen = greatest(records.last_seen, p.last_seen) "
            "FROM (SELECT record_id, max(last_seen) AS last_seen FROM record_sightings "
            "GROUP BY record_id) p WHERE records.record_id = p.record_id")
        session.execute("DELETE FROM identifier_sightings")
        session.execute("DELETE FROM record_sightings")
        self._sightings = _Sightings()

    def _identifier_seen(self, id_type: str, value: str, customer_id: str, stored: Seen) -> Seen:
        unfolded = self._run(self._unfolded).identifiers.get((id_type, value, customer_id))
        return stored if unfolded is None else later(stored, unfolded)

    def _record_last_seen(self, record_id: str, stored: datetime) -> datetime:
        return max(stored, self._run(self._unfolded).records.get(record_id, stored))

    @property
    def _conn(self):  # noqa: ANN202 (the DuckDB connection; tests make its COMMIT fail)
        return self._db.connection

    @_conn.setter
    def _conn(self, connection) -> None:  # noqa: ANN001
        self._db.connection = connection

    def _session(self, write: bool) -> AbstractContextManager[Session]:
        return self._db.session()

    def _run(self, work: Callable[[Session], T], write: bool = False) -> T:
        # A write the cache cannot follow (unmerge, a split, erasure) empties it, and finds
        # every sighting in place (it rebuilds identifiers from records, or erases them).
        if not write:
            return super()._run(work)

        def folded_first(session: Session) -> T:
            self._fold(session)
            return work(session)
        with self._db.lock:
            try:
                return super()._run(folded_first, write)
            finally:
                self.cache.clear()
                self._tombstones = None  # an erasure is such a write

    # The cache and the sightings change with the commit, under the database's lock: a
    # concurrent batch must see both the file and the memory before or after it.
    def run_transaction(self, work: Callable[[GraphTransaction], T]) -> tuple[T, int]:
        with self._db.lock:
            return super().run_transaction(work)

    @contextmanager
    def transaction(self) -> Iterator[GraphTransaction]:
        with self._db.lock, super().transaction() as graph:
            yield graph

    def _run_graph(self, attempt: Callable[[Session], T]) -> T:
        return super()._run(attempt, write=True)  # written through, not emptied

    def _graph_source(self, session: Session) -> GraphSource:
        if self._tombstones is None:
            self._tombstones = bool(session.fetch(
                "SELECT 1 FROM erased_identifiers LIMIT 1"))
        return self.cache.source(_SightedSource(session, self._unfolded(session),
                                                self._tombstones))

    def _graph_committed(self, graph: GraphTransaction) -> None:
        if self._staged is not None and self._sightings is not None:
            self._sightings.add(*self._staged)
        self._staged = None
        self.cache.committed(graph)
        if self._sightings is not None and len(self._sightings) >= FOLD_ROWS:
            with self._db.session() as session:
                self._fold(session)

    def _last_seq(self, session: Session) -> int:
        if self._seq is None:
            self._seq = super()._last_seq(session)
        return self._seq

    def _next_seqs(self, session: Session, count: int) -> list[int]:
        # One transaction at a time, so the next numbers follow the committed maximum (kept
        # in memory; a rollback forgets it).
        last = self._last_seq(session)
        self._seq = last + count
        return list(range(last + 1, last + 1 + count))

    def close(self) -> None:
        self._db.close()


class _SightedSource(SqlGraphSource):
    """The working set's loads, with the sightings not folded yet."""

    def __init__(self, session: Session, sightings: _Sightings, tombstones: bool) -> None:
        super().__init__(session)
        self._sightings = sightings
        self._tombstones = tombstones

    def erased_among(self, keys: Sequence[Key]) -> set[Key]:
        return super().erased_among(keys) if self._tombstones else set()

    def customers(self, customer_ids: Sequence[str]
                  ) -> tuple[dict[str, CustomerRow], list[tuple[str, str, str, Seen]]]:
        rows, identifiers = super().customers(customer_ids)
        unfolded = self._sightings.identifiers
        if unfolded:
            identifiers = [(t, v, c, later(seen, unfolded[(t, v, c)])
                            if (t, v, c) in unfolded else seen)
                           for t, v, c, seen in identifiers]
        return rows, identifiers

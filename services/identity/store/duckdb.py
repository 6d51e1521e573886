"""The identity graph on embedded DuckDB (the interface is ``base.py``).

Two tables in one DuckDB database (a file, or ``":memory:"`` for tests):

- ``customers(customer_id, created_at, merged_into)``: every customer id ever issued. A
  merged customer keeps its row with ``merged_into`` pointing at the survivor, so an id
  handed out once resolves forever.
- ``identifiers(id_type, value, customer_id, first_seen, last_seen)``: normalised
  identifiers of live customers. One value may belong to several customers (a household
  phone); a merge moves the loser's identifiers to the survivor.

The database is the durable copy; the store also keeps the whole graph in memory, loaded
when it opens, and answers every read from there: resolving a record needs a handful of
lookups, and a DuckDB statement costs far more than a dict. Writes change memory at once
and remember what they touched; :meth:`DuckDBIdentityStore.transaction` writes the touched rows
to DuckDB in one database transaction with bulk statements when its block ends, and returns
only once that transaction is committed. When the block raises, or writing or committing
fails, the database rolls back and the in-memory changes are undone from a journal, so
memory and disk always hold the same graph. A write outside ``transaction()`` is its own
transaction.

DuckDB allows one read-write connection per file per process, so the store owns one
connection and serialises every operation with a lock: the gRPC server calls it from a
thread pool. ``transaction()`` holds the lock for a whole unit of work (the resolver's
batch), so its reads and writes are atomic with respect to other threads, and no thread
sees changes that are not yet committed. Timestamps are stored as naive UTC and returned
as aware UTC datetimes.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import duckdb
import pyarrow as pa

from omnicdp.core.errors import NotFound
from omnicdp.core.vocabulary import PRIORITY
from omnicdp.services.identity.store.base import (
    Customer,
    IdentifierMatch,
    IdentifierRow,
    IdentityStore,
    new_customer_id,
)

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS customers (
        customer_id VARCHAR PRIMARY KEY,
        created_at TIMESTAMP NOT NULL,
        merged_into VARCHAR
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS identifiers (
        id_type VARCHAR NOT NULL,
        value VARCHAR NOT NULL,
        customer_id VARCHAR NOT NULL,
        first_seen TIMESTAMP NOT NULL,
        last_seen TIMESTAMP NOT NULL,
        PRIMARY KEY (id_type, value, customer_id)
    )
    """,
    # The store reads from memory, not through these; they serve ad-hoc SQL on the file
    # (DuckDB uses a single-column ART index for ``value IN (...)`` but not the composite
    # primary key for ``id_type = ? AND value = ?``) and cost little on bulk writes.
    "CREATE INDEX IF NOT EXISTS identifiers_by_customer ON identifiers (customer_id)",
    "CREATE INDEX IF NOT EXISTS identifiers_by_value ON identifiers (value)",
)

# Rows written at the end of a transaction travel as Arrow tables: one statement per table
# instead of one per row (executemany) or a statement with thousands of parameters.
_CUSTOMERS_ARROW = pa.schema(
    [
        ("customer_id", pa.string()),
        ("created_at", pa.timestamp("us")),
        ("merged_into", pa.string()),
    ]
)
_IDENTIFIERS_ARROW = pa.schema(
    [
        ("id_type", pa.string()),
        ("value", pa.string()),
        ("customer_id", pa.string()),
        ("first_seen", pa.timestamp("us")),
        ("last_seen", pa.timestamp("us")),
    ]
)
_IDENTIFIER_KEYS_ARROW = pa.schema(
    [("id_type", pa.string()), ("value", pa.string()), ("customer_id", pa.string())]
)
_UPSERT_CUSTOMERS = """
    INSERT INTO customers BY NAME SELECT * FROM _identity_customers
    ON CONFLICT (customer_id) DO UPDATE SET merged_into = excluded.merged_into
"""
_UPSERT_IDENTIFIERS = """
    INSERT INTO identifiers BY NAME SELECT * FROM _identity_identifiers
    ON CONFLICT (id_type, value, customer_id) DO UPDATE SET
        first_seen = excluded.first_seen,
        last_seen = excluded.last_seen
"""
_DELETE_IDENTIFIERS = """
    DELETE FROM identifiers USING _identity_gone AS gone
    WHERE identifiers.id_type = gone.id_type
        AND identifiers.value = gone.value
        AND identifiers.customer_id = gone.customer_id
"""

# A redirect chain longer than this means corrupted data (a cycle), not a long history.
_MAX_REDIRECTS = 10_000

# (id_type, value) of a normalised identifier.
_Key = tuple[str, str]


class _Seen(NamedTuple):
    """When a customer was first and last seen with an identifier (naive UTC)."""

    first: datetime
    last: datetime


class _CustomerRow(NamedTuple):
    created_at: datetime  # naive UTC
    merged_into: str | None


class DuckDBIdentityStore(IdentityStore):
    """Customers and identifiers in memory and in DuckDB; safe to share between threads."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        database = os.fspath(path)
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        self._conn = duckdb.connect(database)
        # Re-entrant so that store methods can run inside transaction().
        self._lock = threading.RLock()
        self._depth = 0
        self._closed = False
        # The graph, as in the database.
        self._customers: dict[str, _CustomerRow] = {}
        self._redirected_from: dict[str, set[str]] = {}  # survivor -> ids merged into it
        self._holders: dict[_Key, dict[str, _Seen]] = {}  # identifier -> customer -> seen
        self._keys_of: dict[str, set[_Key]] = {}  # customer -> identifiers
        # The open transaction: how to undo it, and the rows it touched.
        self._undo: list[tuple] = []
        self._dirty_customers: set[str] = set()
        self._dirty_identifiers: set[tuple[str, str, str]] = set()
        try:
            self._conn.execute("BEGIN TRANSACTION")
            for statement in _SCHEMA:
                self._conn.execute(statement)
            self._conn.execute("COMMIT")
            self._load()
        except BaseException:
            self._conn.close()
            raise

    def _load(self) -> None:
        customers = self._conn.execute(
            "SELECT customer_id, created_at, merged_into FROM customers"
        ).fetchall()
        for customer_id, created_at, merged_into in customers:
            self._customers[customer_id] = _CustomerRow(created_at, merged_into)
            if merged_into is not None:
                self._redirected_from.setdefault(merged_into, set()).add(customer_id)
        identifiers = self._conn.execute(
            "SELECT id_type, value, customer_id, first_seen, last_seen FROM identifiers"
        ).fetchall()
        for id_type, value, customer_id, first_seen, last_seen in identifiers:
            key = (sys.intern(id_type), value)
            self._holders.setdefault(key, {})[customer_id] = _Seen(first_seen, last_seen)
            self._keys_of.setdefault(customer_id, set()).add(key)

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()
            self._customers.clear()
            self._redirected_from.clear()
            self._holders.clear()
            self._keys_of.clear()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock for a unit of work and commit it to DuckDB as one transaction.

        Reads inside the block see its own writes. When the block ends the touched rows are
        written and committed before this returns; if the block raises, or the commit
        fails, nothing of it is kept, in memory or on disk. Nested calls join the outer
        transaction.
        """
        with self._write():
            yield

    @contextmanager
    def _write(self) -> Iterator[None]:
        with self._lock:
            self._check_open()
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._depth = 1
            try:
                yield
                self._flush()
            except BaseException:
                self._rollback_memory()
                raise
            finally:
                self._depth = 0
                self._undo.clear()
                self._dirty_customers.clear()
                self._dirty_identifiers.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise duckdb.ConnectionException("identity store is closed")

    # -- journal -------------------------------------------------------------------------

    def _set_customer(self, customer_id: str, row: _CustomerRow | None, log: bool = True) -> None:
        """The one place a customer changes in memory (``None`` removes an uncommitted one)."""
        old = self._customers.get(customer_id)
        if log:
            self._undo.append((customer_id, old))
            self._dirty_customers.add(customer_id)
        if old is not None and old.merged_into is not None:
            redirected = self._redirected_from[old.merged_into]
            redirected.discard(customer_id)
            if not redirected:
                del self._redirected_from[old.merged_into]
        if row is None:
            self._customers.pop(customer_id, None)
            return
        self._customers[customer_id] = row
        if row.merged_into is not None:
            self._redirected_from.setdefault(row.merged_into, set()).add(customer_id)

    def _set_identifier(
        self, key: _Key, customer_id: str, seen: _Seen | None, log: bool = True
    ) -> None:
        """The one place an identifier row changes in memory (``None`` removes it)."""
        holders = self._holders.get(key)
        old = holders.get(customer_id) if holders is not None else None
        if log:
            self._undo.append((key, customer_id, old))
            self._dirty_identifiers.add((key[0], key[1], customer_id))
        if seen is not None:
            if holders is None:
                holders = self._holders[key] = {}
            holders[customer_id] = seen
            self._keys_of.setdefault(customer_id, set()).add(key)
            return
        if old is None:
            return
        del holders[customer_id]  # type: ignore[index]  # old is set, so holders is too
        if not holders:
            del self._holders[key]
        keys = self._keys_of[customer_id]
        keys.discard(key)
        if not keys:
            del self._keys_of[customer_id]

    def _rollback_memory(self) -> None:
        for entry in reversed(self._undo):
            if len(entry) == 2:
                self._set_customer(entry[0], entry[1], log=False)
            else:
                self._set_identifier(entry[0], entry[1], entry[2], log=False)

    def _flush(self) -> None:
        """Write the rows the transaction touched, as they are now, in one DB transaction."""
        if not self._dirty_customers and not self._dirty_identifiers:
            return
        customers = []
        for customer_id in sorted(self._dirty_customers):
            row = self._customers.get(customer_id)
            if row is not None:
                customers.append((customer_id, row.created_at, row.merged_into))
        present = []
        gone = []
        for id_type, value, customer_id in sorted(self._dirty_identifiers):
            holders = self._holders.get((id_type, value))
            seen = holders.get(customer_id) if holders is not None else None
            if seen is None:
                gone.append((id_type, value, customer_id))
            else:
                present.append((id_type, value, customer_id, seen.first, seen.last))

        conn = self._conn
        conn.execute("BEGIN TRANSACTION")
        try:
            if customers:
                self._run_with(
                    _UPSERT_CUSTOMERS, "_identity_customers", customers, _CUSTOMERS_ARROW
                )
            if gone:
                self._run_with(_DELETE_IDENTIFIERS, "_identity_gone", gone, _IDENTIFIER_KEYS_ARROW)
            if present:
                self._run_with(
                    _UPSERT_IDENTIFIERS, "_identity_identifiers", present, _IDENTIFIERS_ARROW
                )
            conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT may already have ended the transaction.
            with suppress(duckdb.Error):
                conn.execute("ROLLBACK")
            raise

    def _run_with(self, sql: str, name: str, rows: list[tuple], schema: pa.Schema) -> None:
        """Run ``sql`` with ``rows`` visible to it as the table ``name``."""
        columns = list(zip(*rows, strict=True))
        arrays = [
            pa.array(column, type=field.type) for column, field in zip(columns, schema, strict=True)
        ]
        table = pa.Table.from_arrays(arrays, schema=schema)
        self._conn.register(name, table)
        try:
            self._conn.execute(sql)
        finally:
            self._conn.unregister(name)

    # -- customers -----------------------------------------------------------------------

    def create_customer(self, created_at: datetime) -> str:
        """Issue a new customer id; ``created_at`` decides who survives a later merge."""
        with self._write():
            customer_id = new_customer_id()
            while customer_id in self._customers:
                customer_id = new_customer_id()
            self._set_customer(customer_id, _CustomerRow(_to_db(created_at), None))
        return customer_id

    def get_customer(self, customer_id: str) -> Customer | None:
        """The customer row as stored (a merged customer has ``merged_into`` set)."""
        with self._lock:
            self._check_open()
            row = self._customers.get(customer_id)
        if row is None:
            return None
        return Customer(customer_id, _from_db(row.created_at), row.merged_into)

    def resolve_redirects(self, customer_id: str) -> str | None:
        """The live customer an id stands for today, following merges; ``None`` if unknown."""
        with self._lock:
            self._check_open()
            current = customer_id
            for _ in range(_MAX_REDIRECTS):
                row = self._customers.get(current)
                if row is None:
                    return None
                if row.merged_into is None:
                    return current
                current = row.merged_into
        raise RuntimeError(f"merge redirects of {customer_id} form a cycle")

    def merged_customer_ids(self, customer_id: str) -> list[str]:
        """Ids that redirect to this customer, oldest first."""
        with self._lock:
            self._check_open()
            ids = list(self._redirected_from.get(customer_id, ()))
            ids.sort(key=lambda merged_id: (self._customers[merged_id].created_at, merged_id))
        return ids

    def count_customers(self, include_merged: bool = False) -> int:
        with self._lock:
            self._check_open()
            if include_merged:
                return len(self._customers)
            return sum(1 for row in self._customers.values() if row.merged_into is None)

    def merge(self, survivor_id: str, loser_id: str) -> None:
        """Fold ``loser_id`` into ``survivor_id``: redirect it and move its identifiers.

        Customers merged into the loser earlier are redirected straight to the survivor.
        """
        if survivor_id == loser_id:
            raise ValueError("cannot merge a customer into itself")
        with self._write():
            for customer_id in (survivor_id, loser_id):
                row = self._customers.get(customer_id)
                if row is None:
                    raise NotFound(
                        f"customer {customer_id} does not exist",
                        metadata={"customer_id": customer_id},
                    )
                if row.merged_into is not None:
                    raise ValueError(
                        f"customer {customer_id} was already merged into {row.merged_into}"
                    )
            for customer_id in [loser_id, *self._redirected_from.get(loser_id, ())]:
                row = self._customers[customer_id]
                self._set_customer(customer_id, _CustomerRow(row.created_at, survivor_id))
            # The survivor may already hold a value of the loser, whose seen-range then widens.
            for key in list(self._keys_of.get(loser_id, ())):
                holders = self._holders[key]
                moved = holders[loser_id]
                kept = holders.get(survivor_id)
                if kept is not None:
                    moved = _Seen(min(kept.first, moved.first), max(kept.last, moved.last))
                if moved != kept:
                    self._set_identifier(key, survivor_id, moved)
                self._set_identifier(key, loser_id, None)

    # -- identifiers ---------------------------------------------------------------------

    def attach_identifiers(
        self, customer_id: str, identifiers: Mapping[str, str], seen_at: datetime
    ) -> None:
        """Record that the customer was seen with these normalised identifiers at ``seen_at``.

        Re-attaching a known identifier only widens its first/last-seen range.
        """
        if not identifiers:
            return
        seen = _to_db(seen_at)
        with self._write():
            for key in identifiers.items():
                holders = self._holders.get(key)
                old = holders.get(customer_id) if holders is not None else None
                if old is None:
                    self._set_identifier(key, customer_id, _Seen(seen, seen))
                elif seen < old.first or seen > old.last:
                    self._set_identifier(
                        key, customer_id, _Seen(min(old.first, seen), max(old.last, seen))
                    )

    def find_matches(self, identifiers: Mapping[str, str]) -> list[IdentifierMatch]:
        """Live customers holding any of the normalised identifiers.

        Ordered by identifier priority, then most recently seen with the value, then
        oldest customer.
        """
        matches = []
        with self._lock:
            self._check_open()
            customers = self._customers
            for key in identifiers.items():
                holders = self._holders.get(key)
                if not holders:
                    continue
                for customer_id, seen in holders.items():
                    row = customers.get(customer_id)
                    if row is None or row.merged_into is not None:
                        continue
                    matches.append(
                        IdentifierMatch(
                            key[0],
                            key[1],
                            customer_id,
                            _from_db(seen.last),
                            _from_db(row.created_at),
                        )
                    )
        matches.sort(
            key=lambda m: (
                PRIORITY.get(m.id_type, len(PRIORITY)),
                -m.last_seen.timestamp(),
                m.customer_created_at,
                m.customer_id,
            )
        )
        return matches

    def identifiers_of(self, customer_ids: Iterable[str]) -> dict[str, dict[str, set[str]]]:
        """Identifiers stored for exactly these customer ids (no redirects), by id and type."""
        result: dict[str, dict[str, set[str]]] = {}
        with self._lock:
            self._check_open()
            for customer_id in sorted(set(customer_ids)):
                sets: dict[str, set[str]] = {}
                for id_type, value in self._keys_of.get(customer_id, ()):
                    sets.setdefault(id_type, set()).add(value)
                result[customer_id] = sets
        return result

    def identifier_rows(self, customer_id: str) -> list[IdentifierRow]:
        """Identifiers stored for exactly this customer id (no redirects), by priority."""
        with self._lock:
            self._check_open()
            result = [
                IdentifierRow(
                    id_type,
                    value,
                    customer_id,
                    _from_db(seen.first),
                    _from_db(seen.last),
                )
                for id_type, value in self._keys_of.get(customer_id, ())
                for seen in (self._holders[(id_type, value)][customer_id],)
            ]
        result.sort(key=lambda row: (PRIORITY.get(row.id_type, len(PRIORITY)), row.value))
        return result

    def customer_identifiers(self, customer_id: str) -> dict[str, list[str]]:
        """Identifiers of the customer an id stands for (following merges), by priority.

        Raises :class:`NotFound` for an id that was never issued.
        """
        with self._lock:
            live_id = self.resolve_redirects(customer_id)
            if live_id is None:
                raise NotFound(
                    f"customer {customer_id} does not exist",
                    metadata={"customer_id": customer_id},
                )
            rows = self.identifier_rows(live_id)
        identifiers: dict[str, list[str]] = {}
        for row in rows:
            identifiers.setdefault(row.id_type, []).append(row.value)
        return identifiers


def _to_db(moment: datetime) -> datetime:
    """Naive UTC, as stored; a naive input is taken to be UTC already."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _from_db(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)

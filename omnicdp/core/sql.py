"""What the services' SQL stores share, so each store writes its SQL once for two backends.

- A ``Session`` is one open database transaction: ``fetch``, ``execute`` and a bulk
  ``insert``, with ``%s`` placeholders and ``= ANY(%s)`` for lists on both backends.
- ``DuckDBDatabase``: one embedded file owned by this process (DuckDB allows one writer per
  file), one transaction at a time, reads inside a transaction joining it.
- ``PostgresDatabase``: a connection pool on one schema, for several replicas; write
  transactions may run SERIALIZABLE and are then retried from the start on a conflict.
- ``migrate``: versioned migrations applied in order at start, recorded in
  ``schema_migrations``.

Losing the database is :class:`~omnicdp.core.errors.Unavailable` (callers may retry), never
a driver exception crossing a service boundary.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from omnicdp.core.errors import Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
# (version, description, statements), in order.
Migration = tuple[int, str, tuple[str, ...]]


class Session(Protocol):
    """One open database transaction."""

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple],
               suffix: str = "") -> None:
        """Insert many rows in one statement; ``suffix`` (``ON CONFLICT ...``) as is."""


class SqlStore(ABC):
    """A store whose methods each run in a transaction of its backend."""

    @abstractmethod
    def _session(self, write: bool) -> AbstractContextManager[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""

    def _run(self, work: Callable[[Session], T], write: bool = False) -> T:
        """Run ``work`` in a transaction (backends that may abort one on a conflict with a
        concurrent transaction retry it here)."""
        with self._session(write) as session:
            return work(session)


#: Up to this many rows, DuckDB inserts them from VALUES; more, from an Arrow batch.
_SMALL_INSERT = 16


class DuckDBSession:
    def __init__(self, conn: Any, column_types: dict[str, dict[str, str]] | None = None) -> None:
        self._conn = conn
        # table -> column -> type, for inserts (the database's, kept while it is open)
        self._column_types = {} if column_types is None else column_types

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self._conn.execute(*duckdb_statement(sql, params)).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(*duckdb_statement(sql, params))

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple],
               suffix: str = "") -> None:
        if not rows:
            return
        if len(rows) <= _SMALL_INSERT:
            # A few rows (one online event): VALUES with bound parameters, about a third of
            # an Arrow batch's fixed cost.
            values = ", ".join(["(" + ", ".join(["?"] * len(columns)) + ")"] * len(rows))
            self._conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values} "
                               f"{suffix}", [value for row in rows for value in row])
            return
        # One statement over a list per column, each cast to the column's type: cheaper than
        # registering an Arrow batch as a view and unregistering it (identity resolution
        # spent 12% less CPU a record, benchmarks/identity_resolve.py).
        types = self._types_of(table, columns)
        selects = ", ".join(f"unnest(?::{types[name]}[])" for name in columns)
        self._conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {selects} "
                           f"{suffix}", [list(values) for values in zip(*rows, strict=True)])

    def _types_of(self, table: str, columns: Sequence[str]) -> dict[str, str]:
        types = self._column_types.get(table)
        if types is None or not all(name in types for name in columns):  # new, or migrated
            types = dict(self._conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = ? AND table_schema = current_schema()", [table]).fetchall())
            self._column_types[table] = types
        return types

_ANY = "= ANY(%s)"


def duckdb_statement(sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """A statement written for both backends (``%s``, ``= ANY(%s)``), as DuckDB runs it best.

    DuckDB probes an ART index for ``IN (constant, ...)`` about twice as fast as for
    ``= ANY(?)`` with a bound list, which it also caps at ``index_scan_max_count``; so a list
    of strings or integers is written into the statement as literals (strings quoted, with
    quotes doubled). Other parameters stay bound."""
    if _ANY not in sql:
        return sql.replace("%s", "?"), list(params)
    parts = sql.split("%s")
    text, bound = [parts[0]], []
    for value, part in zip(params, parts[1:], strict=True):
        if (text[-1].endswith("= ANY(") and isinstance(value, list | tuple)
                and all(isinstance(v, str | int) and not isinstance(v, bool) for v in value)):
            text[-1] = text[-1][:-len("= ANY(")] + "IN ("
            text.append((", ".join(_literal(v) for v in value) or "NULL") + part)
        else:
            bound.append(value)
            text.append("?" + part)
    return "".join(text), bound


def _literal(value: str | int) -> str:
    if isinstance(value, int):
        return str(value)
    if "\0" in value:
        raise ValueError("NUL in a SQL string literal")
    return "'" + value.replace("'", "''") + "'"


class PostgresSession:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self._conn.execute(sql, list(params)).fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql, list(params))

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple],
               suffix: str = "") -> None:
        if not rows:
            return
        placeholders = ", ".join(["%s"] * len(columns))
        with self._conn.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                               f"VALUES ({placeholders}) {suffix}", rows)


class DuckDBDatabase:
    # A batch looks up a few thousand keys at once; DuckDB's defaults (2048 rows, 0.1% of
    # the table) would answer such ``key = ANY(...)`` lookups with full scans. The buffer
    # pool is bounded (DuckDB's default is 80% of the machine's memory): a service's memory
    # must not grow with its data; what does not fit is read from the file. A service's
    # statements are point reads and small writes, one transaction at a time: one thread
    # runs each without scheduling tasks across workers (an indexed point read took 590 us
    # instead of 740 on 2 cores, SELECT 1 140 instead of 200), and leaves the other cores
    # to the service's own threads.
    SETTINGS = ("SET index_scan_max_count = 100000", "SET index_scan_percentage = 0.05",
                "SET threads = 1")
    MEMORY_LIMIT = "512MB"

    def __init__(self, path: str | os.PathLike[str], service: str,
                 memory_limit: str = MEMORY_LIMIT) -> None:
        import duckdb

        self._errors = duckdb.Error
        database = os.fspath(path)
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        self.connection = duckdb.connect(database)
        if database != ":memory:":
            os.chmod(database, 0o600)  # personal data: readable by the service's user only
        for setting in self.SETTINGS:
            self.connection.execute(setting)
        try:
            self.connection.execute("SET memory_limit = ?", [memory_limit])
        except duckdb.Error as error:
            self.connection.close()
            raise SystemExit(f"{service}: DuckDB memory limit {memory_limit!r}: {error}") from None
        self._service = service
        # Held by a transaction from BEGIN to COMMIT; a caller that keeps memory mirroring
        # the file holds it too while it applies what the transaction wrote.
        self.lock = threading.RLock()
        self._open: DuckDBSession | None = None
        self._column_types: dict[str, dict[str, str]] = {}
        self._closed = False
        # Called when a transaction rolls back (memory that mirrors the file forgets).
        self.on_rollback: list[Callable[[], None]] = []

    @contextmanager
    def session(self, write: bool = True) -> Iterator[DuckDBSession]:
        """A transaction; a read (``write=False``) runs its statements without one: every
        transaction holds the lock it holds, so nothing commits between them (and BEGIN
        and COMMIT cost a statement each)."""
        with self.lock:
            if self._closed:
                raise Unavailable(f"the {self._service} store is closed")
            if self._open is not None:  # a read inside a transaction joins it
                yield self._open
                return
            session = DuckDBSession(self.connection, self._column_types)
            if not write:
                yield session
                return
            self.connection.execute("BEGIN TRANSACTION")
            self._open = session
            try:
                yield session
                self.connection.execute("COMMIT")
            except BaseException:
                # A failed COMMIT may already have ended the transaction.
                with suppress(self._errors):
                    self.connection.execute("ROLLBACK")
                for forget in self.on_rollback:
                    forget()
                raise
            finally:
                self._open = None

    def close(self) -> None:
        with self.lock:
            if not self._closed:
                self._closed = True
                self.connection.close()


class PostgresDatabase:
    """A pool of connections whose ``search_path`` is the service's own schema."""

    MAX_ATTEMPTS = 12

    def __init__(self, url: str, schema: str, service: str, max_connections: int = 8) -> None:
        import psycopg
        from psycopg import IsolationLevel
        from psycopg import errors as pg_errors
        from psycopg_pool import ConnectionPool, PoolTimeout

        self._lost = (psycopg.OperationalError, PoolTimeout)
        self._retryable = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
        self._service = service
        self._levels = {level.name.replace("_", " "): level for level in IsolationLevel}
        self._local = threading.local()
        self._pool = ConnectionPool(
            url, min_size=1, max_size=max_connections, open=False,
            kwargs={"autocommit": False, "options": f"-c search_path={schema}"})
        try:
            self._pool.open(wait=True, timeout=30)
        except self._lost as error:
            self._pool.close()
            raise Unavailable(f"the {service} database is unavailable") from error

    @contextmanager
    def session(self, isolation: str = "READ COMMITTED") -> Iterator[PostgresSession]:
        """A transaction at ``isolation``: READ COMMITTED, REPEATABLE READ (reads that
        must agree with each other) or SERIALIZABLE (see ``run``)."""
        joined = getattr(self._local, "session", None)
        if joined is not None:  # a read inside a transaction joins it
            yield joined
            return
        try:
            with self._pool.connection() as conn:
                # Sent with the BEGIN: a SET TRANSACTION of its own cost a round trip and
                # made the block below a savepoint inside an implicit transaction.
                conn.isolation_level = self._levels[isolation]
                with conn.transaction():
                    session = PostgresSession(conn)
                    self._local.session = session
                    try:
                        yield session
                    finally:
                        self._local.session = None
        except self._lost as error:
            if isinstance(error, self._retryable):
                raise
            raise Unavailable(f"the {self._service} database is unavailable") from error

    @contextmanager
    def outside_transaction(self) -> Iterator[Any]:
        """A pooled connection on which each statement is its own transaction: for a
        statement no transaction block may hold (``VACUUM``), or a read that is one
        statement."""
        try:
            with self._pool.connection() as conn:
                conn.autocommit = True
                try:
                    yield conn
                finally:
                    if not conn.broken:  # (the pool discards a broken one)
                        conn.autocommit = False
        except self._lost as error:
            raise Unavailable(f"the {self._service} database is unavailable") from error

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """One statement's rows, outside any transaction block: a statement sees one
        snapshot by itself, so a read that is a single statement needs no BEGIN and COMMIT
        (two round trips of a point read's three). Inside a transaction, it joins it."""
        joined = getattr(self._local, "session", None)
        if joined is not None:
            return joined.fetch(sql, params)
        with self.outside_transaction() as conn:
            return conn.execute(sql, list(params)).fetchall()

    def run(self, work: Callable[[PostgresSession], T],
            isolation: str = "READ COMMITTED") -> T:
        """Run ``work`` in a transaction; one that lost a race with another replica
        (serialization failure, deadlock) is run again from the start after a short wait."""
        for attempt in range(1, self.MAX_ATTEMPTS + 1):
            try:
                with self.session(isolation) as session:
                    return work(session)
            except self._retryable as error:
                if getattr(self._local, "session", None):
                    raise  # the enclosing transaction is the one to run again
                if attempt == self.MAX_ATTEMPTS:
                    # Transient by nature: the caller may retry (gRPC UNAVAILABLE, HTTP 503).
                    raise Unavailable(
                        f"the {self._service} database kept aborting the transaction on "
                        f"conflicts with concurrent ones ({attempt} attempts); retry",
                        reason="WRITE_CONFLICT") from error
                time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))
        raise AssertionError("unreachable")

    def setup(self, schema: str, lock_id: int, migrations: Sequence[Migration],
              before: Sequence[str] = ()) -> None:
        """Create the schema and apply the migrations, one replica at a time."""
        with self.session() as session:
            session.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id])
            session.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for statement in before:
                session.execute(statement)
            migrate(session, migrations, self._service)

    def close(self) -> None:
        self._pool.close()


def update_mapped(session: Session, table: str, column: str, key: str,
                  mapping: dict[Any, Any]) -> None:
    """``UPDATE table SET column = mapping[key] WHERE key IN mapping`` in one statement that
    finds its rows through ``key``'s index (an update joined to a list would scan the table:
    a cost in proportion to the stored history)."""
    if not mapping:
        return
    cases = " ".join(["WHEN %s THEN %s"] * len(mapping))
    pairs = [value for item in mapping.items() for value in item]
    session.execute(f"UPDATE {table} SET {column} = CASE {key} {cases} END "
                    f"WHERE {key} = ANY(%s)", [*pairs, list(mapping)])


def migrate(session: Session, migrations: Sequence[Migration], service: str) -> None:
    """Apply the migrations not applied yet, in order, in the caller's transaction."""
    session.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, "
                    "applied_at TIMESTAMP NOT NULL)")
    applied = {row[0] for row in session.fetch("SELECT version FROM schema_migrations")}
    for version, description, statements in migrations:
        if version in applied:
            continue
        for statement in statements:
            session.execute(statement)
        session.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                        [version, description, utc_now()])
        log.info("%s schema migrated to version %d: %s", service, version, description)


def utc_now() -> datetime:
    """Now, as naive UTC: how the stores keep timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(moment: datetime) -> datetime:
    """Naive UTC, as stored; a naive input is taken to be UTC already."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def aware_utc(moment: datetime) -> datetime:
    """An aware UTC datetime from a stored (naive UTC) or driver (aware) one."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

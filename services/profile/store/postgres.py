"""PostgreSQL backend, for deployments with several profile replicas.

Each method borrows a pooled connection; each write is one transaction, committed before
the method returns. ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` tells exactly which
events this call stored, so concurrent retries of one batch across replicas store it once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from omnicdp.core.errors import Unavailable
from omnicdp.services.profile.model import Profile, StoredEvent
from omnicdp.services.profile.store.base import (
    EVENT_COLUMNS,
    IdentifierRow,
    JourneyCursor,
    ProfileStore,
    latest_traits,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq BIGSERIAL PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    type TEXT NOT NULL,
    event TEXT NOT NULL,
    channel TEXT NOT NULL,
    source TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    identifiers JSONB NOT NULL,
    traits JSONB NOT NULL,
    properties JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_customer ON events (customer_id, ts, seq);
CREATE TABLE IF NOT EXISTS profile_identifiers (
    id_type TEXT NOT NULL,
    value TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id_type, value, customer_id)
);
CREATE INDEX IF NOT EXISTS identifiers_by_customer ON profile_identifiers (customer_id);
CREATE TABLE IF NOT EXISTS customer_aliases (
    alias_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL
);
"""

def _event_from_row(row: tuple[Any, ...]) -> StoredEvent:
    (seq, message_id, customer_id, type_, event, channel, source, ts, received_at,
     identifiers, traits, properties) = row
    return StoredEvent(
        message_id=message_id, customer_id=customer_id, type=type_, channel=channel,
        event=event, source=source, timestamp=ts.astimezone(UTC),
        received_at=received_at.astimezone(UTC), identifiers=identifiers, traits=traits,
        properties=properties, seq=seq)


class PostgresProfileStore(ProfileStore):
    def __init__(self, url: str, max_connections: int = 8) -> None:
        self._pool = ConnectionPool(url, min_size=1, max_size=max_connections, open=True,
                                    kwargs={"autocommit": False})
        with self._connection() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(7142001)")  # one migrator at a time
            conn.execute(SCHEMA)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; losing the database is Unavailable (callers may retry),
        never a driver exception crossing the service boundary."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as error:
            raise Unavailable("the profile database is unavailable") from error

    def known_message_ids(self, message_ids: Sequence[str]) -> dict[str, str]:
        if not message_ids:
            return {}
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT e.message_id, coalesce(a.customer_id, e.customer_id) FROM events e "
                "LEFT JOIN customer_aliases a ON a.alias_id = e.customer_id "
                "WHERE e.message_id = ANY(%s)", [list(message_ids)]).fetchall()
        return dict(rows)

    def append(self, events: Sequence[StoredEvent], identifiers: Iterable[IdentifierRow],
               merges: Sequence[tuple[str, Sequence[str]]] = ()) -> set[str]:
        identifier_rows = list(identifiers)
        with self._connection() as conn, conn.transaction():
            for survivor, merged in merges:
                self._merge(conn, survivor, merged)
            stored: set[str] = set()
            if events:
                cursor = conn.execute(
                    "INSERT INTO events (message_id, customer_id, type, event, channel, source, "
                    "ts, received_at, identifiers, traits, properties) "
                    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], "
                    "%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[], "
                    "%s::jsonb[], %s::jsonb[], %s::jsonb[]) "
                    "ON CONFLICT (message_id) DO NOTHING RETURNING message_id",
                    [[e.message_id for e in events], [e.customer_id for e in events],
                     [e.type for e in events], [e.event for e in events],
                     [e.channel for e in events], [e.source for e in events],
                     [e.timestamp for e in events], [e.received_at for e in events],
                     [Jsonb(e.identifiers) for e in events], [Jsonb(e.traits) for e in events],
                     [Jsonb(e.properties) for e in events]])
                stored = {row[0] for row in cursor.fetchall()}
            if identifier_rows:
                conn.execute(
                    "INSERT INTO profile_identifiers (customer_id, id_type, value, first_seen) "
                    "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], "
                    "%s::timestamptz[]) ON CONFLICT DO NOTHING",
                    [list(column) for column in zip(*identifier_rows, strict=True)])
        return stored

    @staticmethod
    def _merge(conn, survivor: str, merged: Sequence[str]) -> None:
        applied = {r[0] for r in conn.execute(
            "SELECT alias_id FROM customer_aliases WHERE customer_id = %s AND alias_id = ANY(%s)",
            [survivor, list(merged)]).fetchall()}
        losers = [m for m in merged if m != survivor and m not in applied]
        if not losers:
            return
        conn.execute("UPDATE events SET customer_id = %s WHERE customer_id = ANY(%s)",
                     [survivor, losers])
        conn.execute(
            "INSERT INTO profile_identifiers SELECT id_type, value, %s, first_seen "
            "FROM profile_identifiers WHERE customer_id = ANY(%s) ON CONFLICT DO NOTHING",
            [survivor, losers])
        conn.execute("DELETE FROM profile_identifiers WHERE customer_id = ANY(%s)", [losers])
        conn.execute("UPDATE customer_aliases SET customer_id = %s WHERE customer_id = ANY(%s)",
                     [survivor, losers])
        conn.execute(
            "INSERT INTO customer_aliases SELECT unnest(%s::text[]), %s "
            "ON CONFLICT (alias_id) DO UPDATE SET customer_id = excluded.customer_id",
            [losers, survivor])

    def canonical_customer_id(self, customer_id: str) -> str:
        with self._connection() as conn:
            row = conn.execute("SELECT customer_id FROM customer_aliases WHERE alias_id = %s",
                               [customer_id]).fetchone()
        return row[0] if row else customer_id

    def get_profile(self, customer_id: str) -> Profile | None:
        customer_id = self.canonical_customer_id(customer_id)
        with self._connection() as conn, conn.transaction():
            first, last, count = conn.execute(
                "SELECT min(ts), max(ts), count(*) FROM events WHERE customer_id = %s",
                [customer_id]).fetchone()
            if not count:
                return None
            identifiers = conn.execute(
                "SELECT id_type, value FROM profile_identifiers WHERE customer_id = %s "
                "ORDER BY id_type, first_seen, value", [customer_id]).fetchall()
            trait_rows = conn.execute(
                "SELECT traits FROM events WHERE customer_id = %s AND traits <> '{}'::jsonb "
                "ORDER BY ts, seq", [customer_id]).fetchall()
            merged = [r[0] for r in conn.execute(
                "SELECT alias_id FROM customer_aliases WHERE customer_id = %s ORDER BY alias_id",
                [customer_id]).fetchall()]
        return Profile(customer_id=customer_id, identifiers=[tuple(r) for r in identifiers],
                       traits=latest_traits(values for (values,) in trait_rows),
                       first_seen=first.astimezone(UTC),
                       last_seen=last.astimezone(UTC), event_count=count,
                       merged_customer_ids=merged)

    def list_customer_events(self, customer_id: str, after: JourneyCursor | None,
                             limit: int) -> list[StoredEvent]:
        customer_id = self.canonical_customer_id(customer_id)
        ts, seq = after if after else (datetime(1, 1, 1, tzinfo=UTC), 0)
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE customer_id = %s "
                "AND (ts, seq) > (%s, %s) ORDER BY ts, seq LIMIT %s",
                [customer_id, ts, seq, limit]).fetchall()
        return [_event_from_row(r) for r in rows]

    def list_events(self, after_seq: int, limit: int) -> list[StoredEvent]:
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > %s ORDER BY seq LIMIT %s",
                [after_seq, limit]).fetchall()
        return [_event_from_row(r) for r in rows]

    def close(self) -> None:
        self._pool.close()

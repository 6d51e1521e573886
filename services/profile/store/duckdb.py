"""Embedded DuckDB backend: one read-write connection per process, serialised by a lock.

DuckDB allows one writer process per file (FACTS.md), which is why the profile service is a
single replica on this backend; deployments with several replicas use PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from omnicdp.services.profile.model import Profile, StoredEvent
from omnicdp.services.profile.store.base import (
    EVENT_COLUMNS,
    IdentifierRow,
    JourneyCursor,
    ProfileStore,
    latest_traits,
)

SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS event_seq;
CREATE TABLE IF NOT EXISTS events (
    seq BIGINT PRIMARY KEY DEFAULT nextval('event_seq'),
    message_id VARCHAR NOT NULL UNIQUE,
    customer_id VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    event VARCHAR NOT NULL,
    channel VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL,
    received_at TIMESTAMP NOT NULL,
    identifiers VARCHAR NOT NULL,
    traits VARCHAR NOT NULL,
    properties VARCHAR NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_customer ON events (customer_id);
CREATE TABLE IF NOT EXISTS profile_identifiers (
    id_type VARCHAR NOT NULL,
    value VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    PRIMARY KEY (id_type, value, customer_id)
);
CREATE INDEX IF NOT EXISTS identifiers_by_customer ON profile_identifiers (customer_id);
CREATE TABLE IF NOT EXISTS customer_aliases (
    alias_id VARCHAR PRIMARY KEY,
    customer_id VARCHAR NOT NULL
);
"""

def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None


def _event_from_row(row: tuple[Any, ...]) -> StoredEvent:
    (seq, message_id, customer_id, type_, event, channel, source, ts, received_at,
     identifiers, traits, properties) = row
    return StoredEvent(
        message_id=message_id, customer_id=customer_id, type=type_, channel=channel,
        event=event, source=source, timestamp=_aware(ts), received_at=_aware(received_at),
        identifiers=json.loads(identifiers), traits=json.loads(traits),
        properties=json.loads(properties), seq=seq,
    )


class DuckDBProfileStore(ProfileStore):
    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = duckdb.connect(str(path))
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute(SCHEMA)

    def known_message_ids(self, message_ids: Sequence[str]) -> dict[str, str]:
        if not message_ids:
            return {}
        with self._lock:
            rows = self._conn.execute(
                "SELECT e.message_id, coalesce(a.customer_id, e.customer_id) FROM events e "
                "LEFT JOIN customer_aliases a ON a.alias_id = e.customer_id "
                "WHERE e.message_id IN (SELECT unnest($ids))",
                {"ids": list(message_ids)},
            ).fetchall()
        return dict(rows)

    def append(self, events: Sequence[StoredEvent], identifiers: Iterable[IdentifierRow],
               merges: Sequence[tuple[str, Sequence[str]]] = ()) -> set[str]:
        identifier_rows = [(t, v, c, _naive_utc(s)) for c, t, v, s in identifiers]
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                for survivor, merged in merges:
                    self._merge(cur, survivor, merged)
                stored = self._insert_events(cur, events)
                if identifier_rows:
                    self._insert_identifiers(cur, identifier_rows)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            finally:
                cur.close()
        return stored

    @staticmethod
    def _insert_events(cur: duckdb.DuckDBPyConnection, events: Sequence[StoredEvent]) -> set[str]:
        if not events:
            return set()
        ids = [e.message_id for e in events]
        existing = {r[0] for r in cur.execute(
            "SELECT message_id FROM events WHERE message_id IN (SELECT unnest($ids))",
            {"ids": ids}).fetchall()}
        fresh = [e for e in events if e.message_id not in existing]
        if not fresh:
            return set()
        # One bulk statement over an Arrow batch: row-by-row executemany is ~100x slower.
        batch = pa.table({
            "message_id": [e.message_id for e in fresh],
            "customer_id": [e.customer_id for e in fresh],
            "type": [e.type for e in fresh],
            "event": [e.event for e in fresh],
            "channel": [e.channel for e in fresh],
            "source": [e.source for e in fresh],
            "ts": pa.array([_naive_utc(e.timestamp) for e in fresh], pa.timestamp("us")),
            "received_at": pa.array([_naive_utc(e.received_at) for e in fresh],
                                    pa.timestamp("us")),
            "identifiers": [json.dumps(e.identifiers, ensure_ascii=False) for e in fresh],
            "traits": [json.dumps(e.traits, ensure_ascii=False) for e in fresh],
            "properties": [json.dumps(e.properties, ensure_ascii=False) for e in fresh],
        })
        cur.register("incoming_events", batch)
        try:
            cur.execute(
                "INSERT INTO events (message_id, customer_id, type, event, channel, source, ts, "
                "received_at, identifiers, traits, properties) "
                "SELECT * FROM incoming_events ON CONFLICT DO NOTHING")
        finally:
            cur.unregister("incoming_events")
        return {e.message_id for e in fresh}

    @staticmethod
    def _insert_identifiers(cur: duckdb.DuckDBPyConnection,
                            rows: list[tuple[str, str, str, datetime]]) -> None:
        unique = {(t, v, c): s for t, v, c, s in sorted(rows, key=lambda r: r[3], reverse=True)}
        batch = pa.table({
            "id_type": [k[0] for k in unique], "value": [k[1] for k in unique],
            "customer_id": [k[2] for k in unique],
            "first_seen": pa.array(list(unique.values()), pa.timestamp("us"))})
        cur.register("incoming_identifiers", batch)
        try:
            cur.execute("INSERT INTO profile_identifiers SELECT * FROM incoming_identifiers "
                        "ON CONFLICT DO NOTHING")
        finally:
            cur.unregister("incoming_identifiers")

    @staticmethod
    def _merge(cur: duckdb.DuckDBPyConnection, survivor: str, merged: Sequence[str]) -> None:
        applied = {r[0] for r in cur.execute(
            "SELECT alias_id FROM customer_aliases WHERE customer_id = $s "
            "AND alias_id IN (SELECT unnest($l))", {"s": survivor, "l": list(merged)}).fetchall()}
        for loser in merged:
            if loser == survivor or loser in applied:
                continue
            cur.execute("UPDATE events SET customer_id = $s WHERE customer_id = $l",
                        {"s": survivor, "l": loser})
            cur.execute(
                "INSERT INTO profile_identifiers SELECT id_type, value, $s, first_seen "
                "FROM profile_identifiers WHERE customer_id = $l ON CONFLICT DO NOTHING",
                {"s": survivor, "l": loser})
            cur.execute("DELETE FROM profile_identifiers WHERE customer_id = $l", {"l": loser})
            cur.execute("UPDATE customer_aliases SET customer_id = $s WHERE customer_id = $l",
                        {"s": survivor, "l": loser})
            cur.execute("INSERT INTO customer_aliases VALUES ($l, $s) ON CONFLICT DO UPDATE "
                        "SET customer_id = excluded.customer_id", {"s": survivor, "l": loser})

    def canonical_customer_id(self, customer_id: str) -> str:
        with self._lock:
            row = self._conn.execute(
                "SELECT customer_id FROM customer_aliases WHERE alias_id = ?", [customer_id]
            ).fetchone()
        return row[0] if row else customer_id

    def get_profile(self, customer_id: str) -> Profile | None:
        customer_id = self.canonical_customer_id(customer_id)
        with self._lock:
            cur = self._conn.cursor()
            try:
                first, last, count = cur.execute(
                    "SELECT min(ts), max(ts), count(*) FROM events WHERE customer_id = ?",
                    [customer_id]).fetchone()
                if not count:
                    return None
                identifiers = cur.execute(
                    "SELECT id_type, value FROM profile_identifiers WHERE customer_id = ? "
                    "ORDER BY id_type, first_seen, value", [customer_id]).fetchall()
                trait_rows = cur.execute(
                    "SELECT traits FROM events WHERE customer_id = ? AND traits <> '{}' "
                    "ORDER BY ts, seq", [customer_id]).fetchall()
                merged = [r[0] for r in cur.execute(
                    "SELECT alias_id FROM customer_aliases WHERE customer_id = ? "
                    "ORDER BY alias_id", [customer_id]).fetchall()]
            finally:
                cur.close()
        return Profile(customer_id=customer_id, identifiers=[tuple(r) for r in identifiers],
                       traits=latest_traits(json.loads(raw) for (raw,) in trait_rows),
                       first_seen=_aware(first), last_seen=_aware(last),
                       event_count=count, merged_customer_ids=merged)

    def list_customer_events(self, customer_id: str, after: JourneyCursor | None,
                             limit: int) -> list[StoredEvent]:
        customer_id = self.canonical_customer_id(customer_id)
        ts, seq = after if after else (datetime(1, 1, 1), 0)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE customer_id = ? "
                "AND (ts > ? OR (ts = ? AND seq > ?)) ORDER BY ts, seq LIMIT ?",
                [customer_id, _naive_utc(ts), _naive_utc(ts), seq, limit]).fetchall()
        return [_event_from_row(r) for r in rows]

    def list_events(self, after_seq: int, limit: int) -> list[StoredEvent]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                [after_seq, limit]).fetchall()
        return [_event_from_row(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

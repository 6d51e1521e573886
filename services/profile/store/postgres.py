"""PostgreSQL backend, for deployments with several profile replicas. The queries are
``sql.py``'s; tables live in the schema ``profile``.

``INSERT ... ON CONFLICT (message_id) DO NOTHING RETURNING`` tells exactly which events this
call stored, so concurrent retries of one batch across replicas store it once. Replicas
applying the identity change log take the cursor row's lock, so each entry is applied once.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

from psycopg.types.json import Jsonb

from omnicdp.core.sql import Migration, PostgresDatabase, Session, naive_utc
from omnicdp.services.profile.golden import TraitPolicy
from omnicdp.services.profile.model import Profile, StoredEvent
from omnicdp.services.profile.store.sql import (
    CONSUMER,
    GOLDEN_MIGRATIONS,
    READ_COLUMNS,
    SqlProfileStore,
    lookup_key,
    profile_from_row,
)

SCHEMA = "profile"
_MIGRATION_LOCK = 7_142_001
_GOLDEN_LOCK = 7_142_002
MIGRATIONS: tuple[Migration, ...] = (
    (1, "events keyed by identity record; membership follows the identity change log", (
        """CREATE TABLE events (
            seq BIGSERIAL PRIMARY KEY,
            message_id TEXT NOT NULL UNIQUE,
            record_id TEXT NOT NULL,
            customer_id TEXT NOT NULL,
            type TEXT NOT NULL,
            event TEXT NOT NULL,
            channel TEXT NOT NULL,
            source TEXT NOT NULL,
            ts TIMESTAMP NOT NULL,
            received_at TIMESTAMP NOT NULL,
            identifiers JSONB NOT NULL,
            traits JSONB NOT NULL,
            properties JSONB NOT NULL
        )""",
        "CREATE INDEX events_by_record ON events (record_id, ts, seq)",
        """CREATE TABLE record_customers (
            record_id TEXT PRIMARY KEY,
            customer_id TEXT NOT NULL
        )""",
        "CREATE INDEX record_customers_by_customer ON record_customers (customer_id)",
        """CREATE TABLE record_identifiers (
            record_id TEXT NOT NULL,
            id_type TEXT NOT NULL,
            value TEXT NOT NULL,
            first_seen TIMESTAMP NOT NULL,
            PRIMARY KEY (record_id, id_type, value)
        )""",
        """CREATE TABLE customer_aliases (
            alias_id TEXT PRIMARY KEY,
            customer_id TEXT NOT NULL
        )""",
        "CREATE INDEX customer_aliases_by_customer ON customer_aliases (customer_id)",
        "CREATE TABLE change_cursor (consumer TEXT PRIMARY KEY, seq BIGINT NOT NULL)",
        f"INSERT INTO change_cursor VALUES ('{CONSUMER}', 0)",
    )),
    (2, "events record who sent them (the API key's name)", (
        "ALTER TABLE events ADD COLUMN sent_by TEXT NOT NULL DEFAULT ''",
    )),
    *GOLDEN_MIGRATIONS,
)


class PostgresProfileStore(SqlProfileStore):
    CURSOR_LOCK = " FOR UPDATE"  # replicas apply the identity change log one at a time
    SCAN_EVENTS = False  # a customer's events by index (AudienceStore)
    # Golden records change one transaction at a time across replicas (as identity's graph
    # does), so an ingest and a merge never fold into a record the other is rewriting.
    GOLDEN_LOCK = f"SELECT pg_advisory_xact_lock({_GOLDEN_LOCK})"

    def __init__(self, url: str, max_connections: int = 8,
                 policy: TraitPolicy | None = None) -> None:
        self.policy = policy or TraitPolicy()
        self._db = PostgresDatabase(url, SCHEMA, "profile", max_connections)
        try:
            self._db.setup(SCHEMA, _MIGRATION_LOCK, MIGRATIONS)
            with self._db.session() as session:
                self._lock_golden(session)
                self._upgrade(session)
        except BaseException:
            self._db.close()
            raise

    def _session(self, write: bool) -> AbstractContextManager[Session]:
        # Writes are ordered by unique keys and the cursor row's lock; a read sees one
        # snapshot, so a profile never mixes states from before and after a merge.
        return self._db.session("READ COMMITTED" if write else "REPEATABLE READ")

    def _insert_events(self, session: Session, events: Sequence[StoredEvent]) -> set[str]:
        if not events:
            return set()
        rows = session.fetch(
            "INSERT INTO events (message_id, record_id, customer_id, type, event, channel, "
            "source, ts, received_at, identifiers, traits, properties, sent_by) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::text[], %s::text[], %s::timestamp[], %s::timestamp[], %s::jsonb[], "
            "%s::jsonb[], %s::jsonb[], %s::text[]) "
            "ON CONFLICT (message_id) DO NOTHING RETURNING message_id",
            [[e.message_id for e in events], [e.record_id for e in events],
             [e.customer_id for e in events], [e.type for e in events],
             [e.event for e in events], [e.channel for e in events],
             [e.source for e in events], [naive_utc(e.timestamp) for e in events],
             [naive_utc(e.received_at) for e in events], [Jsonb(e.identifiers) for e in events],
             [Jsonb(e.traits) for e in events], [Jsonb(e.properties) for e in events],
             [e.sent_by for e in events]])
        return {row[0] for row in rows}

    # -- reads: one statement each, outside a transaction block (one snapshot by itself) --

    def get_profile(self, customer_id: str) -> Profile | None:
        # The id's own row, or the row of the customer it was merged into.
        rows = self._db.read(
            f"SELECT {READ_COLUMNS} FROM profiles WHERE customer_id = ANY(ARRAY[%s, "
            "(SELECT customer_id FROM customer_aliases WHERE alias_id = %s)])",
            [customer_id, customer_id])
        return profile_from_row(min(rows, key=lambda r: r[0] != customer_id)) if rows else None

    def lookup_profile(self, id_type: str, value: str) -> Profile | None:
        # The three indexed reads of ``sql.py`` as one statement (not two more round trips).
        # Each step is a lateral subquery behind OFFSET 0, which the planner may not merge
        # into a join: an ordinary join planned from missing or stale statistics (a store
        # just loaded, before ANALYZE) hashed a whole table, 23 ms instead of 0.3. Shared
        # (a household's phone): the customer seen most recently.
        rows = self._db.read(
            "SELECT p.* FROM record_identifiers i, "
            "LATERAL (SELECT customer_id FROM record_customers c "
            "WHERE c.record_id = i.record_id OFFSET 0) c, "
            f"LATERAL (SELECT {READ_COLUMNS} FROM profiles p "
            "WHERE p.customer_id = c.customer_id OFFSET 0) p "
            "WHERE i.lookup_key = %s ORDER BY p.last_seen DESC, p.customer_id DESC LIMIT 1",
            [lookup_key(id_type, value)])
        return profile_from_row(rows[0]) if rows else None

    def close(self) -> None:
        self._db.close()

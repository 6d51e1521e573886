"""Embedded DuckDB backend: one process owns the file (``omnicdp.core.sql.DuckDBDatabase``),
which is why the profile service is a single replica on this backend; deployments with
several replicas use PostgreSQL. The queries are ``sql.py``'s."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from omnicdp.core.sql import DuckDBDatabase, Migration, Session, migrate, naive_utc
from omnicdp.services.profile.golden import GoldenRecord, TraitPolicy
from omnicdp.services.profile.model import Profile, StoredEvent
from omnicdp.services.profile.store.audiences import Defined
from omnicdp.services.profile.store.sql import (
    CONSUMER,
    GOLDEN_MIGRATIONS,
    MembershipRun,
    SqlProfileStore,
    lookup_key,
)

MIGRATIONS: tuple[Migration, ...] = (
    (1, "events keyed by identity record; membership follows the identity change log", (
        "CREATE SEQUENCE event_seq",
        """CREATE TABLE events (
            seq BIGINT PRIMARY KEY DEFAULT nextval('event_seq'),
            message_id VARCHAR NOT NULL UNIQUE,
            record_id VARCHAR NOT NULL,
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
        )""",
        "CREATE INDEX events_by_record ON events (record_id)",
        """CREATE TABLE record_customers (
            record_id VARCHAR PRIMARY KEY,
            customer_id VARCHAR NOT NULL
        )""",
        "CREATE INDEX record_customers_by_customer ON record_customers (customer_id)",
        """CREATE TABLE record_identifiers (
            record_id VARCHAR NOT NULL,
            id_type VARCHAR NOT NULL,
            value VARCHAR NOT NULL,
            first_seen TIMESTAMP NOT NULL,
            PRIMARY KEY (record_id, id_type, value)
        )""",
        """CREATE TABLE customer_aliases (
            alias_id VARCHAR PRIMARY KEY,
            customer_id VARCHAR NOT NULL
        )""",
        "CREATE INDEX customer_aliases_by_customer ON customer_aliases (customer_id)",
        "CREATE TABLE change_cursor (consumer VARCHAR PRIMARY KEY, seq BIGINT NOT NULL)",
        f"INSERT INTO change_cursor VALUES ('{CONSUMER}', 0)",
    )),
    # DuckDB alters no table that an index depends on: the index is dropped and rebuilt.
    (2, "events record who sent them (the API key's name)", (
        "DROP INDEX events_by_record",
        "ALTER TABLE events ADD COLUMN sent_by VARCHAR NOT NULL DEFAULT ''",
        "CREATE INDEX events_by_record ON events (record_id)",
    )),
    *GOLDEN_MIGRATIONS,
    # The embedded backend's own, numbered apart from the shared ones.
    (101, "embedded: record identifiers by record (DuckDB probes no prefix of a composite key)",
     ("CREATE INDEX record_identifiers_by_record ON record_identifiers (record_id)",)),
)
#: Golden records kept in memory at most (a few KB each).
CACHE_CUSTOMERS = 20_000
#: Profiles as read, and the customer each looked-up identifier found, kept at most.
CACHE_VIEWS = 20_000
CACHE_HOLDERS = 200_000
EVENT_INSERT_COLUMNS = ("message_id", "record_id", "customer_id", "type", "event", "channel",
                        "source", "ts", "received_at", "identifiers", "traits", "properties",
                        "sent_by")


class DuckDBProfileStore(SqlProfileStore):
    """One writer process, which allows a bounded cache of golden records, written through
    in the transaction that writes them and emptied by a rollback: a batch folds into the
    records it finds there instead of reading them back (a DuckDB lookup of a batch's few
    hundred customers by key costs tens of milliseconds).

    Reads are cached too (a DuckDB statement costs about a millisecond, a lookup three):
    profiles as read, by id, and the customer a looked-up identifier found. An entry is
    added under the database's lock, in the transaction that read it, and dropped by every
    transaction that writes what it was read from (a profile row; for identifiers, the
    holders' identifiers and last seen, or any merge, split or erasure) before that
    transaction commits; a rollback empties both. So a cached read is never older than the
    last commit."""

    def __init__(self, path: str | Path, policy: TraitPolicy | None = None,
                 cache_customers: int = CACHE_CUSTOMERS) -> None:
        self.policy = policy or TraitPolicy()
        self._cache: OrderedDict[str, GoldenRecord] = OrderedDict()
        self._cache_size = cache_customers
        self._views: OrderedDict[str, Profile] = OrderedDict()
        self._holders: OrderedDict[str, str] = OrderedDict()  # lookup key -> customer
        # The audiences, read once: this process makes every change to them (and to their
        # change counters, kept in these objects as they are written).
        self._audiences: list[Defined] | None = None
        self._db = DuckDBDatabase(path, "profile")
        for cache in (self._cache, self._views, self._holders):
            self._db.on_rollback.append(cache.clear)
        self._db.on_rollback.append(self._definitions_changed)
        try:
            for migration in MIGRATIONS:  # each in its own transaction (see migration 8)
                with self._db.session() as session:
                    migrate(session, [migration], "profile")
            with self._db.session() as session:
                self._upgrade(session)
        except BaseException:
            self._db.close()
            raise

    def _session(self, write: bool) -> AbstractContextManager[Session]:
        return self._db.session(write)

    def _insert_events(self, session: Session, events: Sequence[StoredEvent]) -> set[str]:
        if not events:
            return set()
        existing = {row[0] for row in session.fetch(
            "SELECT message_id FROM events WHERE message_id = ANY(%s)",
            [[e.message_id for e in events]])}
        fresh = [e for e in events if e.message_id not in existing]
        # One writer, and existing ids filtered out: no conflict clause to check (naming
        # none costs a scan per row on a table with two unique keys).
        session.insert("events", EVENT_INSERT_COLUMNS, [
            (e.message_id, e.record_id, e.customer_id, e.type, e.event, e.channel, e.source,
             naive_utc(e.timestamp), naive_utc(e.received_at),
             json.dumps(e.identifiers, ensure_ascii=False),
             json.dumps(e.traits, ensure_ascii=False),
             json.dumps(e.properties, ensure_ascii=False), e.sent_by) for e in fresh])
        return {e.message_id for e in fresh}

    def _load_golden(self, session: Session, customer_ids: Iterable[str]
                     ) -> dict[str, GoldenRecord]:
        wanted = set(customer_ids)
        found = {c: self._cache[c] for c in wanted if c in self._cache}
        missing = wanted - found.keys()
        if missing:
            found.update(super()._load_golden(session, missing))
        return found

    def _save_golden(self, session: Session, records: Iterable[GoldenRecord]) -> None:
        records = [r for r in records if r.event_count]
        super()._save_golden(session, records)
        for record in records:
            _remember(self._cache, record.customer_id, record, self._cache_size)
            self._views.pop(record.customer_id, None)
            for id_type, value in record.identifiers:  # which holder is latest may change
                self._holders.pop(lookup_key(id_type, value), None)

    def _delete_golden(self, session: Session, customer_ids: Sequence[str]) -> None:
        super()._delete_golden(session, customer_ids)
        for customer_id in customer_ids:
            self._cache.pop(customer_id, None)
            self._views.pop(customer_id, None)
        if customer_ids:  # merged away, erased or split: identifiers found them
            self._holders.clear()

    def _refresh_extras(self, session: Session, customer_ids: Iterable[str],
                        new_rows: bool = False) -> None:
        ids = set(customer_ids)
        super()._refresh_extras(session, ids, new_rows)
        for customer_id in ids:
            self._views.pop(customer_id, None)

    def _write_run(self, session: Session, run: MembershipRun) -> None:
        if run.redirects or run.moved_members:
            self._holders.clear()
        super()._write_run(session, run)

    def get_profile(self, customer_id: str) -> Profile | None:
        cached = self._views.get(customer_id)
        if cached is not None:
            return cached
        with self._db.session(write=False):  # the read below joins it: nothing commits
            profile = super().get_profile(customer_id)
            if profile is not None and profile.customer_id == customer_id:
                _remember(self._views, customer_id, profile, CACHE_VIEWS)
        return profile

    def lookup_profile(self, id_type: str, value: str) -> Profile | None:
        key = lookup_key(id_type, value)
        customer_id = self._holders.get(key)
        if customer_id is not None:  # if merged away since, its survivor's profile
            return self.get_profile(customer_id)
        with self._db.session(write=False):
            profile = super().lookup_profile(id_type, value)
            if profile is not None:
                _remember(self._holders, key, profile.customer_id, CACHE_HOLDERS)
                _remember(self._views, profile.customer_id, profile, CACHE_VIEWS)
        return profile

    def _defined(self, session: Session) -> list[Defined]:
        if self._audiences is None:
            self._audiences = super()._defined(session)
        return self._audiences

    def _definitions_changed(self) -> None:
        self._audiences = None

    def close(self) -> None:
        self._db.close()


def _remember(cache: OrderedDict, key: str, value: object, limit: int) -> None:
    """Keep ``value`` as the newest entry of a cache bounded to ``limit`` entries."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)

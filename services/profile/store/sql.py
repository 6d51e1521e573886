"""What the profile's DuckDB and PostgreSQL backends share: the queries, written once
(``omnicdp.core.sql``). A backend supplies sessions, its schema and the events insert."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from omnicdp.core.sql import Session, SqlStore, aware_utc, naive_utc, update_mapped
from omnicdp.services.identity.client import Change
from omnicdp.services.profile.model import Profile, StoredEvent
from omnicdp.services.profile.store.base import (
    IdentifierRow,
    JourneyCursor,
    ProfileStore,
    json_value,
    latest_traits,
)

CONSUMER = "identity"  # the change log this store follows
# A stored event with its record's current customer (the event's own at ingestion until
# the record's first change arrives).
EVENT_COLUMNS = ("e.seq, e.message_id, coalesce(m.customer_id, e.customer_id), e.type, "
                 "e.event, e.channel, e.source, e.ts, e.received_at, e.identifiers, "
                 "e.traits, e.properties, e.record_id, e.sent_by")
MEMBERS = "SELECT record_id FROM record_customers WHERE customer_id = %s"


def event_from_row(row: tuple[Any, ...]) -> StoredEvent:
    (seq, message_id, customer_id, type_, event, channel, source, ts, received_at,
     identifiers, traits, properties, record_id, sent_by) = row
    return StoredEvent(
        message_id=message_id, customer_id=customer_id, type=type_, channel=channel,
        event=event, source=source, timestamp=aware_utc(ts), received_at=aware_utc(received_at),
        identifiers=json_value(identifiers), traits=json_value(traits),
        properties=json_value(properties), seq=seq, record_id=record_id,
        sent_by=sent_by or "")


class SqlProfileStore(SqlStore, ProfileStore):
    # How the cursor row is locked against concurrent appliers until commit ("" for a
    # backend with one transaction at a time).
    CURSOR_LOCK: ClassVar[str] = ""

    @abstractmethod
    def _insert_events(self, session: Session, events: Sequence[StoredEvent]) -> set[str]:
        """Insert the events whose message id is new; the ids inserted."""

    def _cursor(self, session: Session, lock: bool = False) -> int:
        return session.fetch("SELECT seq FROM change_cursor WHERE consumer = %s"
                             + (self.CURSOR_LOCK if lock else ""), [CONSUMER])[0][0]

    # -- writes --------------------------------------------------------------------------

    def append(self, events: Sequence[StoredEvent],
               identifiers: Iterable[IdentifierRow]) -> set[str]:
        first_seen: dict[tuple[str, str, str], datetime] = {}
        for record_id, id_type, value, seen in identifiers:
            key = (record_id, id_type, value)
            first_seen[key] = min(first_seen.get(key, naive_utc(seen)), naive_utc(seen))

        def write(session: Session) -> set[str]:
            stored = self._insert_events(session, events)
            session.insert("record_identifiers",
                           ("record_id", "id_type", "value", "first_seen"),
                           [(*key, seen) for key, seen in first_seen.items()],
                           "ON CONFLICT (record_id, id_type, value) DO NOTHING")
            return stored
        return self._run(write, write=True)

    def apply_changes(self, changes: Sequence[Change]) -> int:
        """Apply the changes after the cursor in one transaction. Runs of merges and record
        assignments are folded into a few statements (each record to where its customer
        ended up); an erasure, or a merge re-pointing an alias merged earlier in the run,
        first writes what the run folded so far."""
        def write(session: Session) -> int:
            cursor = self._cursor(session, lock=True)
            pending = [c for c in changes if c.seq > cursor]
            run = _MembershipRun()
            for change in pending:
                if change.kind in ("created", "linked") and change.record_id:
                    run.new_members[change.record_id] = change.customer_id
                elif change.kind == "split" and change.record_id:
                    run.moved_members[change.record_id] = change.customer_id
                elif change.kind == "erased":
                    run.write(session)
                    run = _MembershipRun()
                    erased = [change.customer_id]
                    for table in ("events", "record_identifiers"):
                        session.execute(f"DELETE FROM {table} WHERE record_id IN ({MEMBERS})",
                                        erased)
                    session.execute("DELETE FROM record_customers WHERE customer_id = %s",
                                    erased)
                    session.execute("DELETE FROM customer_aliases WHERE customer_id = %s",
                                    erased)
                elif change.kind == "merged" and change.other_customer_id:
                    if change.other_customer_id in run.redirects:
                        run.write(session)
                        run = _MembershipRun()
                    run.redirects[change.other_customer_id] = change.customer_id
            run.write(session)
            if pending:
                cursor = pending[-1].seq
                session.execute("UPDATE change_cursor SET seq = %s WHERE consumer = %s",
                                [cursor, CONSUMER])
            return cursor
        return self._run(write, write=True)

    # -- reads ---------------------------------------------------------------------------

    def change_cursor(self) -> int:
        return self._run(self._cursor)

    def known_message_ids(self, message_ids: Sequence[str]) -> dict[str, str]:
        if not message_ids:
            return {}
        rows = self._run(lambda s: s.fetch(
            "SELECT e.message_id, coalesce(m.customer_id, e.customer_id) FROM events e "
            "LEFT JOIN record_customers m ON m.record_id = e.record_id "
            "WHERE e.message_id = ANY(%s)", [list(message_ids)]))
        return dict(rows)

    def canonical_customer_id(self, customer_id: str) -> str:
        return self._run(lambda s: _canonical(s, customer_id))

    def get_profile(self, customer_id: str) -> Profile | None:
        def read(session: Session) -> Profile | None:
            customer_id_now = _canonical(session, customer_id)
            return self._profile(session, customer_id_now)
        return self._run(read)

    @staticmethod
    def _profile(session: Session, customer_id: str) -> Profile | None:
        first, last, count = session.fetch(
            f"SELECT min(ts), max(ts), count(*) FROM events WHERE record_id IN ({MEMBERS})",
            [customer_id])[0]
        if not count:
            return None
        identifiers = session.fetch(
            "SELECT id_type, value FROM record_identifiers "
            f"WHERE record_id IN ({MEMBERS}) GROUP BY id_type, value "
            "ORDER BY id_type, min(first_seen), value", [customer_id])
        trait_rows = session.fetch(
            f"SELECT traits FROM events WHERE record_id IN ({MEMBERS}) "
            "AND traits <> '{}' ORDER BY ts, seq", [customer_id])
        merged = [r[0] for r in session.fetch(
            "SELECT alias_id FROM customer_aliases WHERE customer_id = %s "
            "ORDER BY alias_id", [customer_id])]
        return Profile(customer_id=customer_id,
                       identifiers=[tuple(r) for r in identifiers],
                       traits=latest_traits(json_value(t) for (t,) in trait_rows),
                       first_seen=aware_utc(first), last_seen=aware_utc(last),
                       event_count=count, merged_customer_ids=merged)

    def list_customer_events(self, customer_id: str, after: JourneyCursor | None,
                             limit: int) -> list[StoredEvent]:
        ts, seq = after if after else (datetime(1, 1, 1, tzinfo=UTC), 0)
        rows = self._run(lambda s: s.fetch(
            f"SELECT {EVENT_COLUMNS} FROM events e "
            "JOIN record_customers m ON m.record_id = e.record_id "
            "WHERE m.customer_id = %s AND (e.ts > %s OR (e.ts = %s AND e.seq > %s)) "
            "ORDER BY e.ts, e.seq LIMIT %s",
            [_canonical(s, customer_id), naive_utc(ts), naive_utc(ts), seq, limit]))
        return [event_from_row(r) for r in rows]

    def list_events(self, after_seq: int, limit: int) -> list[StoredEvent]:
        rows = self._run(lambda s: s.fetch(
            f"SELECT {EVENT_COLUMNS} FROM events e "
            "LEFT JOIN record_customers m ON m.record_id = e.record_id "
            "WHERE e.seq > %s ORDER BY e.seq LIMIT %s", [after_seq, limit]))
        return [event_from_row(r) for r in rows]


def _canonical(session: Session, customer_id: str) -> str:
    rows = session.fetch("SELECT customer_id FROM customer_aliases WHERE alias_id = %s",
                         [customer_id])
    return rows[0][0] if rows else customer_id


class _MembershipRun:
    """Merges and record assignments of consecutive changes, written as their end state."""

    def __init__(self) -> None:
        # record -> customer: records new to the log (created, linked), or moved (split)
        self.new_members: dict[str, str] = {}
        self.moved_members: dict[str, str] = {}
        self.redirects: dict[str, str] = {}  # merged customer -> the one it merged into

    def final(self, customer_id: str) -> str:
        hops = 0
        while customer_id in self.redirects and hops <= len(self.redirects):
            customer_id, hops = self.redirects[customer_id], hops + 1
        return customer_id

    def write(self, session: Session) -> None:
        if self.redirects:
            moved = {loser: self.final(loser) for loser in self.redirects}
            for table in ("record_customers", "customer_aliases"):
                update_mapped(session, table, "customer_id", "customer_id", moved)
            session.insert("customer_aliases", ("alias_id", "customer_id"), list(moved.items()),
                           "ON CONFLICT (alias_id) DO UPDATE "
                           "SET customer_id = excluded.customer_id")
        # Each change is applied once (the cursor), so a created or linked record has no
        # row yet and a split one has: no conflict clause to check.
        session.insert("record_customers", ("record_id", "customer_id"),
                       [(r, self.final(self.moved_members.get(r, c)))
                        for r, c in self.new_members.items()])
        update_mapped(session, "record_customers", "customer_id", "record_id",
                      {r: self.final(c) for r, c in self.moved_members.items()
                       if r not in self.new_members})

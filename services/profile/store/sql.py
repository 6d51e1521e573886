"""What the profile's DuckDB and PostgreSQL backends share: the queries, written once
(``omnicdp.core.sql``). A backend supplies sessions, its schema and the events insert."""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from omnicdp.core.sql import (
    Migration,
    Session,
    SqlStore,
    aware_utc,
    naive_utc,
    update_mapped,
    utc_now,
)
from omnicdp.core.vocabulary import CONSENT_EVENT
from omnicdp.services.identity.client import Change
from omnicdp.services.profile.consents import carried as carried_consent
from omnicdp.services.profile.consents import current as current_consents
from omnicdp.services.profile.consents import from_event as consent_of_event
from omnicdp.services.profile.golden import GoldenRecord, TraitPolicy
from omnicdp.services.profile.model import (
    Consent,
    Counters,
    CustomerScores,
    Erasure,
    IdentifierDetail,
    Profile,
    Score,
    ScoreWrite,
    StoredEvent,
)
from omnicdp.services.profile.store.audiences import AUDIENCE_MIGRATION, AudienceStore
from omnicdp.services.profile.store.base import (
    IdentifierRow,
    JourneyCursor,
    ProfileStore,
    consents_from_json,
    json_value,
    scores_from_json,
)

CONSUMER = "identity"  # the change log this store follows
# A stored event with its record's current customer (the event's own at ingestion until
# the record's first change arrives).
EVENT_COLUMNS = ("e.seq, e.message_id, coalesce(m.customer_id, e.customer_id), e.type, "
                 "e.event, e.channel, e.source, e.ts, e.received_at, e.identifiers, "
                 "e.traits, e.properties, e.record_id, e.sent_by")
MEMBERS = "SELECT record_id FROM record_customers WHERE customer_id = %s"

# Migrations both backends share (types in their common subset), after each one's own.
GOLDEN_MIGRATIONS: tuple[Migration, ...] = (
    (3, "golden records maintained at write time", (
        # JSON as text on both backends: the record is read and written whole.
        """CREATE TABLE profiles (
            customer_id VARCHAR PRIMARY KEY,
            first_seen TIMESTAMP NOT NULL,
            last_seen TIMESTAMP NOT NULL,
            event_count BIGINT NOT NULL,
            identifiers VARCHAR NOT NULL,
            trait_values VARCHAR NOT NULL,
            traits VARCHAR NOT NULL,
            counters VARCHAR NOT NULL,
            updated_at TIMESTAMP NOT NULL
        )""",
    )),
)
GOLDEN_MIGRATIONS += (
    (4, "consent decisions per purpose and channel, every one kept", (
        """CREATE TABLE consents (
            customer_id VARCHAR NOT NULL,
            purpose VARCHAR NOT NULL,
            channel VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            decided_at TIMESTAMP NOT NULL,
            source VARCHAR NOT NULL,
            legal_basis VARCHAR NOT NULL,
            proof_reference VARCHAR NOT NULL,
            recorded_at TIMESTAMP NOT NULL
        )""",
        "CREATE INDEX consents_by_customer ON consents (customer_id)",
    )),
)
GOLDEN_MIGRATIONS += (
    (5, "erasure audit log: who erased which customer, when, and how much (no values)", (
        """CREATE TABLE erasure_audit (
            erased_at TIMESTAMP NOT NULL,
            actor VARCHAR NOT NULL,
            customer_id VARCHAR NOT NULL,
            events BIGINT NOT NULL,
            identifiers BIGINT NOT NULL,
            consents BIGINT NOT NULL,
            records BIGINT NOT NULL,
            change_seq BIGINT NOT NULL
        )""",
    )),
)
GOLDEN_MIGRATIONS += (
    (6, "named scores per customer with the model that computed them, the latest kept", (
        """CREATE TABLE scores (
            customer_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            value DOUBLE PRECISION NOT NULL,
            model VARCHAR NOT NULL,
            model_version VARCHAR NOT NULL,
            computed_at TIMESTAMP NOT NULL,
            recorded_at TIMESTAMP NOT NULL,
            PRIMARY KEY (customer_id, name)
        )""",
        # DuckDB probes no prefix of a composite key: reads and merges find a customer's
        # scores through this index.
        "CREATE INDEX scores_by_customer ON scores (customer_id)",
    )),
)
GOLDEN_MIGRATIONS += (
    # DuckDB finds rows through an index on one column only: the type and value as one.
    (7, "record identifiers carry a lookup key (their type and value)", (
        "ALTER TABLE record_identifiers ADD COLUMN lookup_key VARCHAR",
        "UPDATE record_identifiers SET lookup_key = id_type || ':' || value",
    )),
    # Apart from 7: DuckDB indexes no column updated earlier in the same transaction.
    (8, "lookup by identifier without the identity service, and a profile read as one row", (
        "CREATE INDEX record_identifiers_by_key ON record_identifiers (lookup_key)",
        # What a read returns beside the golden record, kept with it by every writer of
        # aliases, scores and consents (NULL until the store is opened once: see
        # ``_upgrade_extras``).
        "ALTER TABLE profiles ADD COLUMN merged_ids VARCHAR",
        "ALTER TABLE profiles ADD COLUMN scores VARCHAR",
        "ALTER TABLE profiles ADD COLUMN consents VARCHAR",
    )),
)
GOLDEN_MIGRATIONS += (AUDIENCE_MIGRATION,)
SCORE_COLUMNS = ("customer_id", "name", "value", "model", "model_version", "computed_at",
                 "recorded_at")
_SCORE_UPSERT = "ON CONFLICT (customer_id, name) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in SCORE_COLUMNS[2:])
CONSENT_COLUMNS = ("customer_id", "purpose", "channel", "status", "decided_at", "source",
                   "legal_basis", "proof_reference", "recorded_at")
PROFILE_COLUMNS = ("customer_id", "first_seen", "last_seen", "event_count", "identifiers",
                   "trait_values", "traits", "counters", "updated_at")
# A new row's extras start empty (``_refresh_extras`` fills them); an upsert keeps them.
EXTRA_COLUMNS = ("merged_ids", "scores", "consents")
_PROFILE_UPSERT = "ON CONFLICT (customer_id) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in PROFILE_COLUMNS[1:])
# A profile as read: the golden record and its extras, one row.
READ_COLUMNS = ("customer_id, first_seen, last_seen, event_count, identifiers, traits, "
                "counters, merged_ids, scores, consents")
IDENTIFIER_INSERT_COLUMNS = ("record_id", "id_type", "value", "first_seen", "lookup_key")
#: Customers folded again from their events per statement when a store is upgraded.
_REBUILD_CHUNK = 500


def _scores_json(scores: Iterable[Score]) -> str:
    return json.dumps([[s.name, float(s.value), s.model, s.model_version,
                        naive_utc(s.computed_at).isoformat()] for s in scores],
                      ensure_ascii=False)


def _consents_json(consents: Iterable[Consent]) -> str:
    return json.dumps([[c.purpose, c.channel, c.status, naive_utc(c.updated_at).isoformat(),
                        c.source, c.legal_basis, c.proof_reference,
                        naive_utc(c.recorded_at or c.updated_at).isoformat()]
                       for c in consents], ensure_ascii=False)


def lookup_key(id_type: str, value: str) -> str:
    """The indexed key of a record's normalised identifier."""
    return f"{id_type}:{value}"


def event_from_row(row: tuple[Any, ...]) -> StoredEvent:
    (seq, message_id, customer_id, type_, event, channel, source, ts, received_at,
     identifiers, traits, properties, record_id, sent_by) = row
    return StoredEvent(
        message_id=message_id, customer_id=customer_id, type=type_, channel=channel,
        event=event, source=source, timestamp=aware_utc(ts), received_at=aware_utc(received_at),
        identifiers=json_value(identifiers), traits=json_value(traits),
        properties=json_value(properties), seq=seq, record_id=record_id,
        sent_by=sent_by or "")


class SqlProfileStore(AudienceStore, SqlStore, ProfileStore):
    # How the cursor row is locked against concurrent appliers until commit ("" for a
    # backend with one transaction at a time).
    CURSOR_LOCK: ClassVar[str] = ""
    # A statement that makes the transaction the only one writing golden records until it
    # commits ("" for a backend with one transaction at a time): an ingest and a merge of
    # the same customer must not both read the record before either writes it.
    GOLDEN_LOCK: ClassVar[str] = ""
    policy: TraitPolicy = TraitPolicy()

    def _lock_golden(self, session: Session) -> None:
        if self.GOLDEN_LOCK:
            session.execute(self.GOLDEN_LOCK)

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
            self._lock_golden(session)
            stored = self._insert_events(session, events)
            session.insert("record_identifiers", IDENTIFIER_INSERT_COLUMNS,
                           [(*key, seen, lookup_key(key[1], key[2]))
                            for key, seen in first_seen.items()],
                           "ON CONFLICT (record_id, id_type, value) DO NOTHING")
            fresh = [e for e in events if e.message_id in stored]
            if fresh:
                ids_of: dict[str, set[tuple[str, str]]] = {}
                for record_id, id_type, value in first_seen:
                    ids_of.setdefault(record_id, set()).add((id_type, value))
                self._fold_events(session, fresh, ids_of)
            return stored
        return self._run(write, write=True)

    def _fold_events(self, session: Session, events: Sequence[StoredEvent],
                     ids_of: dict[str, set[tuple[str, str]]]) -> None:
        """Add newly stored events to their customers' golden records: a few indexed
        lookups and one upsert for the batch, whatever the history."""
        records = sorted({e.record_id for e in events})
        member_of = dict(session.fetch(
            "SELECT record_id, customer_id FROM record_customers WHERE record_id = ANY(%s)",
            [records]))
        unmapped = sorted({e.customer_id for e in events if e.record_id not in member_of})
        alias_of = dict(session.fetch(
            "SELECT alias_id, customer_id FROM customer_aliases WHERE alias_id = ANY(%s)",
            [unmapped])) if unmapped else {}

        def customer(event: StoredEvent) -> str:
            return member_of.get(event.record_id) or alias_of.get(event.customer_id,
                                                                  event.customer_id)
        touched = {customer(e) for e in events}
        golden = self._load_golden(session, touched)
        new = touched - golden.keys()
        event_names: dict[str, set[str]] = {}
        for event in events:
            cid = customer(event)
            event_names.setdefault(cid, set()).add(event.event)
            record = golden.setdefault(cid, GoldenRecord(cid))
            record.add_event(channel=event.channel, event=event.event, source=event.source,
                             at=naive_utc(event.timestamp), traits=event.traits,
                             properties=event.properties,
                             identifiers=sorted(ids_of.get(event.record_id, ())))
        self._save_golden(session, golden.values())
        decisions = [(customer(e), d) for e in events if (d := consent_of_event(e))]
        if decisions:
            self._insert_consents(session, decisions)
        # A new row starts without extras, but its customer may have some already: aliases
        # from a merge applied before its first event was stored.
        self._refresh_extras(session, new | {cid for cid, _ in decisions}, new_rows=True)
        # Membership follows in the same transaction: the acknowledgement means it is done.
        unmapped_records = {e.record_id: customer(e) for e in events
                            if e.record_id not in member_of}
        self._audiences_after_ingest(session, golden, event_names, new, unmapped_records)

    @staticmethod
    def _insert_consents(session: Session, decisions: Sequence[tuple[str, Consent]]) -> None:
        session.insert("consents", CONSENT_COLUMNS, [
            (cid, d.purpose, d.channel, d.status, naive_utc(d.updated_at), d.source,
             d.legal_basis, d.proof_reference, naive_utc(d.recorded_at or d.updated_at))
            for cid, d in decisions])

    @staticmethod
    def _consents(session: Session, customer_id: str) -> list[Consent]:
        return [d for _, d in SqlProfileStore._consents_of(session, [customer_id])]

    @staticmethod
    def _consents_of(session: Session, customer_ids: Sequence[str]
                     ) -> list[tuple[str, Consent]]:
        return [(cid, Consent(purpose, channel, status, aware_utc(decided), source, basis,
                              proof, aware_utc(recorded)))
                for cid, purpose, channel, status, decided, source, basis, proof, recorded
                in session.fetch(
                    "SELECT customer_id, purpose, channel, status, decided_at, source, "
                    "legal_basis, proof_reference, recorded_at FROM consents "
                    "WHERE customer_id = ANY(%s)", [list(customer_ids)])]

    def record_consents(self, customer_id: str,
                        decisions: Sequence[Consent]) -> list[Consent] | None:
        def write(session: Session) -> list[Consent] | None:
            self._lock_golden(session)
            cid = _canonical(session, customer_id)
            if not session.fetch("SELECT 1 FROM profiles WHERE customer_id = %s", [cid]):
                return None
            known = self._consents(session, cid)
            seen = {_decision_key(d) for d in known}
            fresh = []
            for d in decisions:  # a retried request records nothing twice
                if _decision_key(d) not in seen:
                    seen.add(_decision_key(d))
                    fresh.append(d)
            self._insert_consents(session, [(cid, d) for d in fresh])
            if fresh:
                self._refresh_extras(session, [cid])
                self._audiences_after(session, [cid], "consent", "consent")
            return current_consents([*known, *fresh])
        return self._run(write, write=True)

    def consent_history(self, customer_id: str, offset: int,
                        limit: int) -> list[Consent] | None:
        def read(session: Session) -> list[Consent] | None:
            cid = _canonical(session, customer_id)
            if not session.fetch("SELECT 1 FROM profiles WHERE customer_id = %s", [cid]):
                return None
            decisions = self._consents(session, cid)
            decisions.sort(key=lambda d: (d.updated_at, d.recorded_at, d.purpose, d.channel,
                                          d.status, d.source), reverse=True)
            return decisions[offset:offset + limit]
        return self._run(read)

    def set_scores(self, entries: Sequence[CustomerScores]) -> list[ScoreWrite]:
        def write(session: Session) -> list[ScoreWrite]:
            # Under the golden records' lock: a merge moving this customer's scores to its
            # survivor cannot interleave with the write.
            self._lock_golden(session)
            asked = sorted({e.customer_id for e in entries})
            alias_of = dict(session.fetch(
                "SELECT alias_id, customer_id FROM customer_aliases WHERE alias_id = ANY(%s)",
                [asked])) if asked else {}
            live = sorted({alias_of.get(c, c) for c in asked})
            known = {c for (c,) in session.fetch(
                "SELECT customer_id FROM profiles WHERE customer_id = ANY(%s)", [live])
                     } if live else set()
            best = self._scores_of(session, sorted(known))
            changed: dict[tuple[str, str], Score] = {}
            results = []
            for entry in entries:
                cid = alias_of.get(entry.customer_id, entry.customer_id)
                if cid not in known:
                    results.append(ScoreWrite(entry.customer_id, "not_found"))
                    continue
                stored = 0
                for score in entry.scores:
                    key = (cid, score.name)
                    if key not in best or score.order() > best[key].order():
                        best[key] = changed[key] = score
                        stored += 1
                results.append(ScoreWrite(entry.customer_id,
                                          "stored" if stored else "unchanged", cid, stored))
            self._save_scores(session, changed)
            self._refresh_extras(session, {cid for cid, _ in changed})
            self._audiences_after(session, {cid for cid, _ in changed}, "score", "scores")
            return results
        return self._run(write, write=True)

    @staticmethod
    def _scores_of(session: Session, customer_ids: Sequence[str]
                   ) -> dict[tuple[str, str], Score]:
        if not customer_ids:
            return {}
        return {(cid, name): Score(name, value, model, version, aware_utc(computed))
                for cid, name, value, model, version, computed in session.fetch(
                    "SELECT customer_id, name, value, model, model_version, computed_at "
                    "FROM scores WHERE customer_id = ANY(%s)", [list(customer_ids)])}

    @staticmethod
    def _save_scores(session: Session, scores: dict[tuple[str, str], Score]) -> None:
        now = utc_now()
        session.insert("scores", SCORE_COLUMNS, [
            (cid, name, float(s.value), s.model, s.model_version, naive_utc(s.computed_at),
             now) for (cid, name), s in sorted(scores.items())], _SCORE_UPSERT)

    def _merge_scores(self, session: Session, moved: dict[str, str]) -> None:
        """Merges: the survivor keeps, per score name, the later computed of its own and the
        merged customers' scores (``moved``: merged customer -> where it ended up)."""
        moved = {loser: target for loser, target in moved.items() if loser != target}
        lost = self._scores_of(session, sorted(moved)) if moved else {}
        if not lost:
            return
        best = self._scores_of(session, sorted(set(moved.values())))
        changed: dict[tuple[str, str], Score] = {}
        for (loser, name), score in sorted(lost.items()):
            key = (moved[loser], name)
            if key not in best or score.order() > best[key].order():
                best[key] = changed[key] = score
        session.execute("DELETE FROM scores WHERE customer_id = ANY(%s)",
                        [sorted({loser for loser, _ in lost})])
        self._save_scores(session, changed)

    def _load_golden(self, session: Session, customer_ids: Iterable[str]
                     ) -> dict[str, GoldenRecord]:
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        rows = session.fetch(
            "SELECT customer_id, first_seen, last_seen, event_count, identifiers, "
            "trait_values, counters FROM profiles WHERE customer_id = ANY(%s)", [ids])
        return {row[0]: GoldenRecord.from_json(*row) for row in rows}

    def _delete_golden(self, session: Session, customer_ids: Sequence[str]) -> None:
        if customer_ids:
            session.execute("DELETE FROM profiles WHERE customer_id = ANY(%s)",
                            [list(customer_ids)])

    def _save_golden(self, session: Session, records: Iterable[GoldenRecord]) -> None:
        now = utc_now()
        session.insert("profiles", PROFILE_COLUMNS + EXTRA_COLUMNS, [
            (r.customer_id, r.first_seen, r.last_seen, r.event_count, r.identifiers_json(),
             r.candidates_json(), json.dumps(r.traits(self.policy), ensure_ascii=False,
                                             default=str),
             r.counters_json(), now, "[]", "[]", "[]")
            for r in records if r.event_count], _PROFILE_UPSERT)

    def _refresh_extras(self, session: Session, customer_ids: Iterable[str],
                        new_rows: bool = False) -> None:
        """Write again the merged ids, scores and current consents kept in the customers'
        profile rows, from their own tables: three indexed reads and an update (of rows
        just inserted, ``new_rows``, only those with extras: the others start empty)."""
        ids = sorted(set(customer_ids))
        if not ids:
            return
        merged: dict[str, list[str]] = {}
        for alias, cid in session.fetch(
                "SELECT alias_id, customer_id FROM customer_aliases WHERE customer_id = ANY(%s)",
                [ids]):
            merged.setdefault(cid, []).append(alias)
        scores: dict[str, list[Score]] = {}
        for (cid, _), score in sorted(self._scores_of(session, ids).items()):
            scores.setdefault(cid, []).append(score)
        decided: dict[str, list[Consent]] = {}
        for cid, decision in self._consents_of(session, ids):
            decided.setdefault(cid, []).append(decision)
        filled = sorted(merged.keys() | scores.keys() | decided.keys()) if new_rows else ids
        if not filled:
            return
        for column, values in (
                ("merged_ids", {c: json.dumps(sorted(merged.get(c, ()))) for c in filled}),
                ("scores", {c: _scores_json(scores.get(c, ())) for c in filled}),
                ("consents", {c: _consents_json(current_consents(decided.get(c, ())))
                              for c in filled})):
            update_mapped(session, "profiles", column, "customer_id", values)

    def _recompute_golden(self, session: Session, customer_ids: Iterable[str]
                          ) -> dict[tuple, str]:
        """Fold customers' golden records again from their own events (after a split, which
        is rare; merges combine records instead). Where each consent decision that an event
        carried went: its key (``_decision_key``) -> the customer whose record carried it."""
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        owner = dict(session.fetch(
            "SELECT record_id, customer_id FROM record_customers WHERE customer_id = ANY(%s)",
            [ids]))
        golden: dict[str, GoldenRecord] = {}
        carried: dict[tuple, str] = {}
        if owner:
            records = sorted(owner)
            ids_of: dict[str, set[tuple[str, str]]] = {}
            for record_id, id_type, value in session.fetch(
                    "SELECT record_id, id_type, value FROM record_identifiers "
                    "WHERE record_id = ANY(%s)", [records]):
                ids_of.setdefault(record_id, set()).add((id_type, value))
            for record_id, channel, event, source, ts, received, traits, properties in \
                    session.fetch(
                        "SELECT record_id, channel, event, source, ts, received_at, traits, "
                        "properties FROM events WHERE record_id = ANY(%s) ORDER BY ts, seq",
                        [records]):
                cid = owner[record_id]
                props = json_value(properties)
                golden.setdefault(cid, GoldenRecord(cid)).add_event(
                    channel=channel, event=event, source=source, at=naive_utc(ts),
                    traits=json_value(traits), properties=props,
                    identifiers=sorted(ids_of.get(record_id, ())))
                if event == CONSENT_EVENT:
                    carried[_decision_key(carried_consent(
                        props, aware_utc(ts), source, aware_utc(received)))] = cid
        self._delete_golden(session, ids)
        self._save_golden(session, golden.values())
        return carried

    def _split_consents(self, session: Session, customer_ids: Iterable[str],
                        carried: Mapping[tuple, str]) -> None:
        """A split: each decision a ``Consent Updated`` event carried goes with the part
        whose records carried the event (``carried``, from ``_recompute_golden``); one made
        through the API (no event) stays with the id it was made for, the part that kept
        it."""
        if not carried:
            return
        ids = sorted(set(customer_ids))
        decisions = self._consents_of(session, ids)
        placed = [(carried.get(_decision_key(d), cid), d) for cid, d in decisions]
        if placed == decisions:
            return
        session.execute("DELETE FROM consents WHERE customer_id = ANY(%s)", [ids])
        self._insert_consents(session, placed)

    def _combine_golden(self, session: Session, moved: dict[str, str]) -> None:
        """Merges: each merged customer's golden record added to its survivor's, without
        reading events (``moved``: merged customer -> where it ended up)."""
        moved = {loser: target for loser, target in moved.items() if loser != target}
        if not moved:
            return
        golden = self._load_golden(session, set(moved) | set(moved.values()))
        changed: dict[str, GoldenRecord] = {}
        for loser, target in sorted(moved.items()):
            lost = golden.pop(loser, None)
            if lost is None:
                continue
            into = golden.setdefault(target, GoldenRecord(target))
            into.combine(lost)
            changed[target] = into
        self._delete_golden(session, sorted(moved))
        self._save_golden(session, changed.values())

    def _upgrade(self, session: Session) -> None:
        """A store from before golden records: fold every customer's record once; a store
        from before profiles kept their extras (migration 8): write them once."""
        self._upgrade_golden(session)
        stale = [c for (c,) in session.fetch(
            "SELECT customer_id FROM profiles WHERE consents IS NULL")]
        for start in range(0, len(stale), _REBUILD_CHUNK):
            self._refresh_extras(session, stale[start:start + _REBUILD_CHUNK])

    def _upgrade_golden(self, session: Session) -> None:
        if session.fetch("SELECT 1 FROM profiles LIMIT 1") or not session.fetch(
                "SELECT 1 FROM events LIMIT 1"):
            return
        customers = [c for (c,) in session.fetch(
            "SELECT DISTINCT coalesce(m.customer_id, e.customer_id) FROM events e "
            "LEFT JOIN record_customers m ON m.record_id = e.record_id")]
        for start in range(0, len(customers), _REBUILD_CHUNK):
            self._recompute_golden(session, customers[start:start + _REBUILD_CHUNK])

    def apply_changes(self, changes: Sequence[Change]) -> int:
        """Apply the changes after the cursor in one transaction. Runs of merges and record
        assignments are folded into a few statements (each record to where its customer
        ended up); an erasure, or a merge re-pointing an alias merged earlier in the run,
        first writes what the run folded so far."""
        def write(session: Session) -> int:
            self._lock_golden(session)
            cursor = self._cursor(session, lock=True)
            pending = [c for c in changes if c.seq > cursor]
            run = MembershipRun()
            for change in pending:
                if change.kind in ("created", "linked") and change.record_id:
                    run.new_members[change.record_id] = change.customer_id
                elif change.kind == "split" and change.record_id:
                    run.moved_members[change.record_id] = change.customer_id
                    run.split_customers.add(change.customer_id)
                    if change.other_customer_id:
                        run.split_customers.add(change.other_customer_id)
                elif change.kind == "erased":
                    self._write_run(session, run)
                    run = MembershipRun()
                    self._erase_customer(session, change.customer_id)
                elif change.kind == "merged" and change.other_customer_id:
                    if change.other_customer_id in run.redirects:
                        self._write_run(session, run)
                        run = MembershipRun()
                    run.redirects[change.other_customer_id] = change.customer_id
            self._write_run(session, run)
            if pending:
                cursor = pending[-1].seq
                session.execute("UPDATE change_cursor SET seq = %s WHERE consumer = %s",
                                [cursor, CONSUMER])
            return cursor
        return self._run(write, write=True)

    def _write_run(self, session: Session, run: MembershipRun) -> None:
        """A run's membership, then its golden records: merges combined, split parts folded
        again from their events."""
        run.write(session)
        recompute = {run.final(c) for c in run.split_customers}
        moved = {loser: run.final(loser) for loser in run.redirects}
        self._merge_scores(session, moved)
        self._combine_golden(session, {loser: target for loser, target in moved.items()
                                       if target not in recompute})
        stale = sorted(loser for loser, target in moved.items() if target in recompute)
        if stale:
            self._delete_golden(session, stale)
        carried = self._recompute_golden(session, recompute)
        self._split_consents(session, recompute, carried)
        self._refresh_extras(session, set(moved.values()) | recompute)
        self._audiences_after_identity(session, set(moved.values()) | recompute, moved)

    def _erase_customer(self, session: Session, customer_id: str) -> None:
        erased = [customer_id]
        for table in ("events", "record_identifiers"):
            session.execute(f"DELETE FROM {table} WHERE record_id IN ({MEMBERS})", erased)
        session.execute("DELETE FROM record_customers WHERE customer_id = %s", erased)
        self._forget_customer(session, customer_id)  # before its aliases go
        session.execute("DELETE FROM customer_aliases WHERE customer_id = %s", erased)
        self._delete_golden(session, erased)
        session.execute("DELETE FROM consents WHERE customer_id = %s", erased)
        session.execute("DELETE FROM scores WHERE customer_id = %s", erased)

    def record_erasure(self, erasure: Erasure, actor: str, change_seq: int) -> None:
        self._run(lambda s: s.insert("erasure_audit", (
            "erased_at", "actor", "customer_id", "events", "identifiers", "consents", "records",
            "change_seq"), [(naive_utc(erasure.erased_at), actor, erasure.customer_id,
                             erasure.events, erasure.identifiers, erasure.consents,
                             erasure.records, change_seq)]), write=True)

    def erasure_log(self) -> list[tuple[Erasure, str]]:
        rows = self._run(lambda s: s.fetch(
            "SELECT customer_id, events, identifiers, consents, records, erased_at, actor "
            "FROM erasure_audit ORDER BY erased_at, change_seq"))
        return [(Erasure(c, e, i, n, r, aware_utc(at)), actor)
                for c, e, i, n, r, at, actor in rows]

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
            # One indexed read for a live id; a merged-away one follows its alias first.
            rows = session.fetch(f"SELECT {READ_COLUMNS} FROM profiles WHERE customer_id = %s",
                                 [customer_id])
            if not rows:
                alias = session.fetch(
                    "SELECT customer_id FROM customer_aliases WHERE alias_id = %s",
                    [customer_id])
                rows = session.fetch(
                    f"SELECT {READ_COLUMNS} FROM profiles WHERE customer_id = %s",
                    [alias[0][0]]) if alias else []
            return profile_from_row(rows[0]) if rows else None
        return self._run(read)

    def lookup_profile(self, id_type: str, value: str) -> Profile | None:
        def read(session: Session) -> Profile | None:
            # Three indexed reads (an engine joining them would scan two of the tables).
            records = [r for (r,) in session.fetch(
                "SELECT record_id FROM record_identifiers WHERE lookup_key = %s",
                [lookup_key(id_type, value)])]
            if not records:
                return None
            customers = sorted({c for (c,) in session.fetch(
                "SELECT customer_id FROM record_customers WHERE record_id = ANY(%s)",
                [records])})
            if not customers:
                return None
            rows = session.fetch(f"SELECT {READ_COLUMNS} FROM profiles "
                                 "WHERE customer_id = ANY(%s)", [customers])
            # Shared (a household's phone): the customer seen most recently.
            return profile_from_row(max(rows, key=lambda r: (r[2], r[0]))) if rows else None
        return self._run(read)

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

    def list_events(self, after_seq: int, limit: int,
                    through_seq: int | None = None) -> list[StoredEvent]:
        bound, params = ("", [after_seq, limit]) if through_seq is None else (
            "AND e.seq <= %s ", [after_seq, through_seq, limit])
        rows = self._run(lambda s: s.fetch(
            f"SELECT {EVENT_COLUMNS} FROM events e "
            "LEFT JOIN record_customers m ON m.record_id = e.record_id "
            f"WHERE e.seq > %s {bound}ORDER BY e.seq LIMIT %s", params))
        return [event_from_row(r) for r in rows]

    def last_event_seq(self) -> int:
        return self._run(lambda s: s.fetch("SELECT coalesce(max(seq), 0) FROM events"))[0][0]


def profile_from_row(row: tuple[Any, ...]) -> Profile:
    (customer_id, first, last, count, identifiers, traits, counters, merged, scores,
     consents) = row
    details = [IdentifierDetail(t, v, tuple(sources), aware_utc(datetime.fromisoformat(f)),
                                aware_utc(datetime.fromisoformat(la)))
               for t, v, sources, f, la in json_value(identifiers)]
    details.sort(key=lambda d: (d.id_type, d.first_seen, d.value))
    counts = json_value(counters)
    return Profile(customer_id=customer_id,
                   scores=scores_from_json(scores),
                   consents=consents_from_json(consents),
                   identifiers=[(d.id_type, d.value) for d in details],
                   traits=json_value(traits),
                   first_seen=aware_utc(first), last_seen=aware_utc(last),
                   event_count=count, merged_customer_ids=json_value(merged or "[]"),
                   identifier_details=details,
                   counters=Counters(dict(counts["events_by_channel"]),
                                     int(counts["orders_online"]),
                                     int(counts["orders_store"]), float(counts["revenue"])))


def _decision_key(d: Consent) -> tuple:
    return (d.purpose, d.channel, d.status, naive_utc(d.updated_at), d.source, d.legal_basis,
            d.proof_reference)


def _canonical(session: Session, customer_id: str) -> str:
    rows = session.fetch("SELECT customer_id FROM customer_aliases WHERE alias_id = %s",
                         [customer_id])
    return rows[0][0] if rows else customer_id


class MembershipRun:
    """Merges and record assignments of consecutive changes, written as their end state."""

    def __init__(self) -> None:
        # record -> customer: records new to the log (created, linked), or moved (split)
        self.new_members: dict[str, str] = {}
        self.moved_members: dict[str, str] = {}
        self.redirects: dict[str, str] = {}  # merged customer -> the one it merged into
        self.split_customers: set[str] = set()  # both sides of each split

    def final(self, customer_id: str) -> str:
        hops = 0
        while customer_id in self.redirects and hops <= len(self.redirects):
            customer_id, hops = self.redirects[customer_id], hops + 1
        return customer_id

    def write(self, session: Session) -> None:
        if self.redirects:
            moved = {loser: self.final(loser) for loser in self.redirects}
            for table in ("record_customers", "customer_aliases", "consents"):
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

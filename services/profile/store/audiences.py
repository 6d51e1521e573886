"""Audience membership in the profile store, written once for both backends.

Membership is kept up to date in the transactions that change what the rules read, so a
write's acknowledgement means membership has followed it:

- ingest (``append``): the customers the batch touched, for the audiences whose rules the
  batch's events can change (``Audience.trigger_events``), with the golden records the batch
  just folded;
- identity changes (``apply_changes``): merge survivors and split parts are evaluated again,
  merged-away ids leave; erasure deletes the person's memberships and changes;
- consent decisions and scores: the customers they changed, for the audiences that read them;
- defining an audience, and refreshing it (memberships that "within N days" ends): its
  candidates, found set-based (the customers with its required event in its window, or
  every profile when it requires none) plus its current members.

Every evaluation reads its customers' facts with a few set-based statements (golden
records, scores and consents by customer, events by the customers' records, only the names
and days the rules count): never a scan of all events on ingest. Evaluating everyone
(defining, refreshing) reads by ranges of customer ids instead, each range's profile rows
and counted events in one statement each, since probing that many rows one at a time costs
far more than scanning. Writes hold the golden
records' lock (PostgreSQL), so two ingests of one customer evaluate one after the other.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from omnicdp.core.sql import Session, aware_utc, naive_utc, update_mapped, utc_now
from omnicdp.services.profile.audiences import evaluate, rules
from omnicdp.services.profile.audiences.export import Member
from omnicdp.services.profile.consents import current as current_consents
from omnicdp.services.profile.golden import GoldenRecord
from omnicdp.services.profile.model import AudienceChange, AudienceState, Consent
from omnicdp.services.profile.store.base import (
    consents_from_json,
    json_value,
    scores_from_json,
)

AUDIENCE_MIGRATION = (9, "audiences: definitions, members and the changes of membership", (
    """CREATE TABLE audiences (
        name VARCHAR PRIMARY KEY,
        definition VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        updated_at TIMESTAMP NOT NULL,
        change_seq BIGINT NOT NULL
    )""",
    """CREATE TABLE audience_members (
        audience VARCHAR NOT NULL,
        customer_id VARCHAR NOT NULL,
        since TIMESTAMP NOT NULL,
        PRIMARY KEY (audience, customer_id)
    )""",
    # DuckDB probes no prefix of a composite key: evaluations find a customer's memberships
    # through this index.
    "CREATE INDEX audience_members_by_customer ON audience_members (customer_id)",
    """CREATE TABLE audience_changes (
        audience VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        customer_id VARCHAR NOT NULL,
        change VARCHAR NOT NULL,
        changed_at TIMESTAMP NOT NULL,
        reason VARCHAR NOT NULL,
        PRIMARY KEY (audience, seq)
    )""",
    "CREATE INDEX audience_changes_by_customer ON audience_changes (customer_id)",
))
#: Customers evaluated per range of ids when an audience is defined or refreshed: scanning
#: (``SCAN_EVENTS``), or reading the customers' events by index (a longer list of records
#: than this and PostgreSQL's plans turn from the index).
CHUNK = 10_000
INDEXED_CHUNK = 1_000


def now() -> datetime:
    """The evaluation's time (naive UTC); a test may move it to see windows close."""
    return utc_now()


class Defined:
    """An audience as loaded for an evaluation, with its change log position."""

    def __init__(self, audience: rules.Audience, change_seq: int) -> None:
        self.audience, self.change_seq = audience, change_seq


class AudienceStore:
    """Membership upkeep mixed into ``SqlProfileStore`` (which supplies ``_run``,
    ``_lock_golden``, ``_load_golden``, ``_scores_of`` and ``policy``)."""

    #: Evaluating everyone, a range of customers' events are read by scanning the events
    #: with the rules' names (DuckDB, where a point read costs about as much as scanning
    #: thousands of rows), or through the customers' records by index (PostgreSQL, where
    #: defining the sofa audience on 100k customers took 7.6 s against 9.6 scanning).
    SCAN_EVENTS: ClassVar[bool] = True

    # -- definitions ---------------------------------------------------------------------

    def put_audience(self, audience: rules.Audience) -> AudienceState:
        def write(session: Session) -> AudienceState:
            self._lock_golden(session)
            self._definitions_changed()
            at = utc_now()
            rows = session.fetch("SELECT created_at, change_seq FROM audiences WHERE name = %s",
                                 [audience.name])
            created = not rows
            definition = json.dumps(audience.to_dict(), ensure_ascii=False, sort_keys=True)
            if created:
                session.insert("audiences", ("name", "definition", "created_at", "updated_at",
                                             "change_seq"),
                               [(audience.name, definition, at, at, 0)])
            else:
                session.execute("UPDATE audiences SET definition = %s, updated_at = %s "
                                "WHERE name = %s", [definition, at, audience.name])
            defined = Defined(audience, rows[0][1] if rows else 0)
            joined, left = self._evaluate_all(session, defined, "defined")
            self._definitions_changed()
            state = self._state(session, audience.name)
            assert state is not None
            return AudienceState(state.audience, state.created_at, state.updated_at,
                                 state.members, joined, left, created)
        return self._run(write, write=True)

    def get_audience(self, name: str) -> AudienceState | None:
        return self._run(lambda session: self._state(session, name))

    def list_audiences(self) -> list[AudienceState]:
        def read(session: Session) -> list[AudienceState]:
            counts = dict(session.fetch(
                "SELECT audience, count(*) FROM audience_members GROUP BY audience"))
            return [AudienceState(rules.parse(name, json.loads(definition)),
                                  aware_utc(created), aware_utc(updated),
                                  int(counts.get(name, 0)))
                    for name, definition, created, updated in session.fetch(
                        "SELECT name, definition, created_at, updated_at FROM audiences "
                        "ORDER BY name")]
        return self._run(read)

    def delete_audience(self, name: str) -> bool:
        def write(session: Session) -> bool:
            self._lock_golden(session)
            if not session.fetch("SELECT 1 FROM audiences WHERE name = %s", [name]):
                return False
            for table in ("audience_members", "audience_changes"):
                session.execute(f"DELETE FROM {table} WHERE audience = %s", [name])
            session.execute("DELETE FROM audiences WHERE name = %s", [name])
            self._definitions_changed()
            return True
        return self._run(write, write=True)

    def refresh_audiences(self, names: Sequence[str] | None = None) -> list[AudienceState]:
        """Evaluate audiences (all when ``names`` is None) over their candidates again:
        memberships whose window has closed end. Unknown names are left out. One
        transaction an audience, so ingestion waits for one at a time at most."""
        known = [name for (name,) in self._run(lambda session: session.fetch(
            "SELECT name FROM audiences ORDER BY name"))]

        def refresh(name: str) -> Callable[[Session], AudienceState | None]:
            def write(session: Session) -> AudienceState | None:
                self._lock_golden(session)
                defined = next((d for d in self._defined(session)
                                if d.audience.name == name), None)
                if defined is None:  # deleted meanwhile
                    return None
                joined, left = self._evaluate_all(session, defined, "refresh")
                state = self._state(session, name)
                assert state is not None
                return AudienceState(state.audience, state.created_at, state.updated_at,
                                     state.members, joined, left)
            return write

        done = [self._run(refresh(name), write=True) for name in known
                if names is None or name in names]
        return [state for state in done if state is not None]

    # -- reads ---------------------------------------------------------------------------

    def audience_members(self, name: str, after_customer: str,
                         limit: int) -> list[Member] | None:
        """A page of members by customer id, with the golden record's identifiers (raw);
        None when there is no such audience."""
        def read(session: Session) -> list[Member] | None:
            if not session.fetch("SELECT 1 FROM audiences WHERE name = %s", [name]):
                return None
            rows = session.fetch(
                "SELECT customer_id, since FROM audience_members WHERE audience = %s "
                "AND customer_id > %s ORDER BY customer_id LIMIT %s",
                [name, after_customer, limit])
            identifiers = {cid: _identifier_pairs(ids) for cid, ids in session.fetch(
                "SELECT customer_id, identifiers FROM profiles WHERE customer_id = ANY(%s)",
                [[cid for cid, _ in rows]])} if rows else {}
            return [Member(cid, aware_utc(since), identifiers.get(cid, ()))
                    for cid, since in rows]
        return self._run(read)

    def audience_changes(self, name: str, after_seq: int,
                         limit: int) -> list[AudienceChange] | None:
        def read(session: Session) -> list[AudienceChange] | None:
            if not session.fetch("SELECT 1 FROM audiences WHERE name = %s", [name]):
                return None
            return [AudienceChange(seq, cid, change, aware_utc(at), reason)
                    for seq, cid, change, at, reason in session.fetch(
                        "SELECT seq, customer_id, change, changed_at, reason "
                        "FROM audience_changes WHERE audience = %s AND seq > %s "
                        "ORDER BY seq LIMIT %s",
                        [name, after_seq, limit])]
        return self._run(read)

    def _state(self, session: Session, name: str) -> AudienceState | None:
        rows = session.fetch("SELECT definition, created_at, updated_at FROM audiences "
                             "WHERE name = %s", [name])
        if not rows:
            return None
        definition, created, updated = rows[0]
        [(count,)] = session.fetch(
            "SELECT count(*) FROM audience_members WHERE audience = %s", [name])
        return AudienceState(rules.parse(name, json.loads(definition)), aware_utc(created),
                             aware_utc(updated), int(count))

    def _defined(self, session: Session) -> list[Defined]:
        """Every audience, by name (a backend may keep them between transactions)."""
        return [Defined(rules.parse(name, json.loads(definition)), int(seq))
                for name, definition, seq in session.fetch(
                    "SELECT name, definition, change_seq FROM audiences ORDER BY name")]

    def _definitions_changed(self) -> None:
        """An audience was defined, redefined or deleted (a backend that keeps definitions
        forgets them)."""

    # -- upkeep, in the transactions of the writes ---------------------------------------

    def _audiences_after_ingest(self, session: Session, golden: Mapping[str, GoldenRecord],
                                event_names: Mapping[str, set[str]], new: Collection[str],
                                extra_records: Mapping[str, str]) -> None:
        """After a batch's events were folded: the touched customers (``event_names``: the
        names each received), for the audiences those events can change (a customer new in
        this batch, for every audience that needs no event)."""
        defined = self._defined(session)
        if not defined:
            return
        scope: dict[str, set[str]] = {}
        for d in defined:
            triggers = d.audience.trigger_events()
            scope[d.audience.name] = {
                cid for cid, names in event_names.items()
                if triggers is None or names & triggers
                or (cid in new and not d.audience.needs_an_event)}
        self._reevaluate(session, defined, scope, "ingest", golden, extra_records)

    def _audiences_after_identity(self, session: Session, customers: Iterable[str],
                                  gone: Iterable[str]) -> None:
        """After merges and splits: ``customers`` (survivors, split parts) evaluated again for
        every audience; ``gone`` (merged-away ids) leave every audience."""
        gone = sorted(set(gone))
        if gone:
            self._leave(session, gone, "merged")
        customers = set(customers) - set(gone)
        if customers:
            defined = self._defined(session)
            self._reevaluate(session, defined, {d.audience.name: customers for d in defined},
                             "identity")

    def _audiences_after(self, session: Session, customers: Iterable[str], kind: str,
                         reason: str) -> None:
        """After consent decisions (``kind`` consent) or scores (score) of ``customers``."""
        customers = set(customers)
        defined = [d for d in self._defined(session)
                   if (d.audience.consent is not None if kind == "consent"
                       else d.audience.uses(kind))]
        if customers and defined:
            self._reevaluate(session, defined, {d.audience.name: customers for d in defined},
                             reason)

    @staticmethod
    def _forget_customer(session: Session, customer_id: str) -> None:
        """Erasure: no row of the customer stays, memberships nor their history, under its
        id or the ids merged into it (called while ``customer_aliases`` still has them)."""
        ids = [customer_id] + [a for (a,) in session.fetch(
            "SELECT alias_id FROM customer_aliases WHERE customer_id = %s", [customer_id])]
        for table in ("audience_members", "audience_changes"):
            session.execute(f"DELETE FROM {table} WHERE customer_id = ANY(%s)", [ids])

    def _evaluate_all(self, session: Session, defined: Defined,
                      reason: str) -> tuple[int, int]:
        audience = defined.audience
        at = now()
        current = [c for (c,) in session.fetch(
            "SELECT customer_id FROM audience_members WHERE audience = %s", [audience.name])]
        if audience.needs_an_event:
            # Only customers with one of the events it requires can be members.
            first = next(c for c in audience.include
                         if isinstance(c, rules.EventCondition) and c.min_count >= 1)
            window = ("" if first.within_days is None else " AND e.ts >= %s")
            params: list[Any] = [first.name]
            if first.within_days is not None:
                params.append(at - timedelta(days=first.within_days))
            candidates = [c for (c,) in session.fetch(
                "SELECT DISTINCT coalesce(m.customer_id, e.customer_id) FROM events e "
                "LEFT JOIN record_customers m ON m.record_id = e.record_id "
                f"WHERE e.event = %s{window}", params)]
        else:
            candidates = [c for (c,) in session.fetch("SELECT customer_id FROM profiles")]
        everyone = sorted(set(candidates) | set(current))
        members = set(current)
        joined = left = 0
        size = CHUNK if self.SCAN_EVENTS else INDEXED_CHUNK
        for start in range(0, len(everyone), size):
            chunk = everyone[start:start + size]
            facts = self._range_facts(session, audience, chunk, at)
            joins = [(audience.name, c) for c in chunk
                     if c not in members and evaluate.is_member(audience, facts[c], at)]
            leaves = [(audience.name, c) for c in chunk
                      if c in members and not evaluate.is_member(audience, facts[c], at)]
            self._write_membership(session, [defined], joins, leaves, reason)
            joined, left = joined + len(joins), left + len(leaves)
        return joined, left

    def _range_facts(self, session: Session, audience: rules.Audience,
                     chunk: Sequence[str], at: datetime) -> dict[str, evaluate.CustomerFacts]:
        """The facts of a sorted run of customers, for an evaluation of everyone: read by
        ranges of customer ids, each table scanned once, not probed a row at a time (a
        point read of a wide row costs about as much as scanning thousands). Traits,
        counters, scores and consents come from the profile rows that keep them."""
        wanted, low, high = set(chunk), chunk[0], chunk[-1]
        facts = {cid: evaluate.CustomerFacts(cid) for cid in chunk}
        traits, counters, scores = (audience.uses(k) for k in ("trait", "counter", "score"))
        for cid, count, trait_values, counted, scored, consents in session.fetch(
                "SELECT customer_id, event_count, traits, counters, scores, consents "
                "FROM profiles WHERE customer_id >= %s AND customer_id <= %s", [low, high]):
            if cid not in wanted:
                continue
            fact = facts[cid]
            if traits:
                fact.traits = json_value(trait_values) or {}
            if counters:
                fact.counters = evaluate.counters_of(json_value(counted) or {}, count)
            if scores:
                fact.scores = {n: s.value for n, s in scores_from_json(scored).items()}
            if audience.consent is not None:
                fact.consents = consents_from_json(consents)
        names, since = evaluate.event_window([audience], at)
        # Properties are read only for rules that test them (most of the time spent).
        tested = evaluate.tests_properties([audience])
        if names and not self.SCAN_EVENTS:
            for cid, found in self._events_of(session, chunk, names, since, {},
                                              tested).items():
                facts[cid].events = found
        elif names:
            window = "" if since is None else " AND e.ts >= %s"
            params: list[Any] = [sorted(names), low, high]
            if since is not None:
                params.insert(1, naive_utc(since))
            events: dict[str, list[evaluate.EventFact]] = {}
            for cid, event, channel, ts, properties in session.fetch(
                    "SELECT owner, event, channel, ts, properties FROM ("
                    "SELECT coalesce(m.customer_id, e.customer_id) AS owner, e.event, "
                    f"e.channel, e.ts, {'e.properties' if tested else 'NULL'} AS properties "
                    "FROM events e "
                    "LEFT JOIN record_customers m ON m.record_id = e.record_id "
                    f"WHERE e.event = ANY(%s){window}) own "
                    "WHERE owner >= %s AND owner <= %s", params):
                if cid in wanted:
                    events.setdefault(cid, []).append(evaluate.EventFact(
                        event, channel, naive_utc(ts), json_value(properties) or {}))
            for cid, found in events.items():
                facts[cid].events = found
        return facts

    def _reevaluate(self, session: Session, defined: Sequence[Defined],
                    scope: Mapping[str, set[str]], reason: str,
                    golden: Mapping[str, GoldenRecord] | None = None,
                    extra_records: Mapping[str, str] | None = None,
                    at: datetime | None = None) -> tuple[int, int]:
        """Evaluate each audience for the customers in its ``scope`` and write who joined
        and who left, with the changes; (joined, left) in all."""
        defined = [d for d in defined if scope.get(d.audience.name)]
        customers = sorted(set().union(*(scope[d.audience.name] for d in defined))) \
            if defined else []
        if not customers:
            return 0, 0
        at = at or now()
        facts = self._facts(session, [(d.audience, scope[d.audience.name]) for d in defined],
                            at, golden or {}, extra_records or {})
        current = set(session.fetch(
            "SELECT audience, customer_id FROM audience_members WHERE customer_id = ANY(%s)",
            [customers]))
        joins: list[tuple[str, str]] = []
        leaves: list[tuple[str, str]] = []
        for d in defined:
            name = d.audience.name
            for cid in sorted(scope[name]):
                member = evaluate.is_member(d.audience, facts[cid], at)
                if member and (name, cid) not in current:
                    joins.append((name, cid))
                elif not member and (name, cid) in current:
                    leaves.append((name, cid))
        self._write_membership(session, defined, joins, leaves, reason)
        return len(joins), len(leaves)

    def _leave(self, session: Session, customers: Sequence[str], reason: str) -> None:
        leaves = sorted(session.fetch(
            "SELECT audience, customer_id FROM audience_members WHERE customer_id = ANY(%s)",
            [list(customers)]))
        if leaves:
            self._write_membership(session, self._defined(session), [], leaves, reason)

    @staticmethod
    def _write_membership(session: Session, defined: Sequence[Defined],
                          joins: Sequence[tuple[str, str]], leaves: Sequence[tuple[str, str]],
                          reason: str) -> None:
        if not joins and not leaves:
            return
        at = utc_now()
        by_audience: dict[str, list[str]] = {}
        for name, cid in leaves:
            by_audience.setdefault(name, []).append(cid)
        for name, cids in sorted(by_audience.items()):
            session.execute("DELETE FROM audience_members WHERE audience = %s "
                            "AND customer_id = ANY(%s)", [name, sorted(cids)])
        session.insert("audience_members", ("audience", "customer_id", "since"),
                       [(name, cid, at) for name, cid in joins])
        seq = {d.audience.name: d.change_seq for d in defined}
        changes = []
        for change, pairs in (("joined", joins), ("left", leaves)):
            for name, cid in pairs:
                seq[name] += 1
                changes.append((name, seq[name], cid, change, at, reason))
        session.insert("audience_changes", ("audience", "seq", "customer_id", "change",
                                            "changed_at", "reason"), changes)
        moved = {name for name, *_ in changes}
        update_mapped(session, "audiences", "change_seq", "name",
                      {name: seq[name] for name in sorted(moved)})
        for d in defined:
            d.change_seq = seq[d.audience.name]

    def _facts(self, session: Session, scoped: Sequence[tuple[rules.Audience, set[str]]],
               at: datetime, golden: Mapping[str, GoldenRecord],
               extra_records: Mapping[str, str]) -> dict[str, evaluate.CustomerFacts]:
        """What the audiences' rules read of the customers in their scopes, a statement or
        two each, each kind only for the customers of the audiences that read it."""
        facts = {cid: evaluate.CustomerFacts(cid) for _, scope in scoped for cid in scope}

        def needing(wanted: Callable[[rules.Audience], bool]) -> list[str]:
            return sorted({cid for a, scope in scoped if wanted(a) for cid in scope})

        if customers := needing(lambda a: a.uses("trait") or a.uses("counter")):
            records = {c: golden[c] for c in customers if c in golden}
            records.update(self._load_golden(session, [c for c in customers
                                                       if c not in records]))
            for cid, record in records.items():
                facts[cid].traits = record.traits(self.policy)
                facts[cid].counters = evaluate.counters_of(record.counters(),
                                                           record.event_count)
        if customers := needing(lambda a: a.uses("score")):
            scores: dict[str, dict[str, float]] = {}
            for (cid, name), score in self._scores_of(session, customers).items():
                scores.setdefault(cid, {})[name] = score.value
            for cid, values in scores.items():
                facts[cid].scores = values
        if customers := needing(lambda a: a.consent is not None):
            decisions: dict[str, list[Consent]] = {}
            for cid, purpose, channel, status, decided, recorded in session.fetch(
                    "SELECT customer_id, purpose, channel, status, decided_at, recorded_at "
                    "FROM consents WHERE customer_id = ANY(%s)", [customers]):
                decisions.setdefault(cid, []).append(
                    Consent(purpose, channel, status, decided, recorded_at=recorded))
            for cid, made in decisions.items():
                facts[cid].consents = current_consents(made)
        audiences = [a for a, _ in scoped if a.event_conditions]
        customers = needing(lambda a: bool(a.event_conditions))
        names, since = evaluate.event_window(audiences, at)
        if names and customers:
            for cid, found in self._events_of(session, customers, names, since, extra_records,
                                              evaluate.tests_properties(audiences)).items():
                facts[cid].events = found
        return facts

    @staticmethod
    def _events_of(session: Session, customers: Sequence[str], names: Collection[str],
                   since: datetime | None, extra_records: Mapping[str, str],
                   properties: bool = True) -> dict[str, list[evaluate.EventFact]]:
        """The customers' events with these names since then, through their records (and
        ``extra_records``, not yet mapped: record -> customer), by index."""
        owner = dict(session.fetch(
            "SELECT record_id, customer_id FROM record_customers "
            "WHERE customer_id = ANY(%s)", [list(customers)]))
        wanted = set(customers)
        owner.update({r: c for r, c in extra_records.items() if c in wanted})
        if not owner:
            return {}
        window = "" if since is None else " AND own.ts >= %s"
        params: list[Any] = [sorted(owner), sorted(names)]
        if since is not None:
            params.append(naive_utc(since))
        events: dict[str, list[evaluate.EventFact]] = {}
        # The records' events first, by the record index, then the names and days: given
        # both at once DuckDB scans the whole table instead of the index.
        for record_id, event, channel, ts, props in session.fetch(
                "WITH own AS MATERIALIZED (SELECT record_id, event, channel, ts, "
                f"{'properties' if properties else 'NULL AS properties'} FROM events "
                "WHERE record_id = ANY(%s)) SELECT record_id, event, channel, ts, properties "
                f"FROM own WHERE own.event = ANY(%s){window}", params):
            events.setdefault(owner[record_id], []).append(evaluate.EventFact(
                event, channel, naive_utc(ts), json_value(props) or {}))
        return events


def _identifier_pairs(identifiers: Any) -> tuple[tuple[str, str], ...]:
    return tuple((t, v) for t, v, *_ in json_value(identifiers))

"""What the DuckDB and PostgreSQL backends share: the schema's migrations, the working set's
loads, the delta's writes and the reads, written once (``omnicdp.core.sql``).

A backend supplies sessions (one database transaction each) and its concurrency control;
everything else is here.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import ClassVar, TypeVar

from omnicdp.core.digests import sha256_hex
from omnicdp.core.errors import FailedPrecondition, NotFound
from omnicdp.core.sql import (
    Migration,
    Session,
    SqlStore,
    aware_utc,
    naive_utc,
    update_mapped,
    utc_now,
)
from omnicdp.services.identity.model import (
    Change,
    Erased,
    Relinked,
    Reviewed,
    ReviewItem,
    Separation,
    StoredLink,
    StoredRecord,
    Unmerged,
)
from omnicdp.services.identity.store.base import (
    Customer,
    IdentifierMatch,
    IdentifierRow,
    IdentityStore,
    new_customer_id,
    sort_identifier_rows,
)
from omnicdp.services.identity.store.graph import (
    NAME_KINDS,
    WATCHED_TYPES,
    ChangeEntry,
    CustomerRow,
    Delta,
    GraphSource,
    GraphTransaction,
    Key,
    Seen,
    StoredCandidate,
    key_hash,
    name_digest,
)

T = TypeVar("T")

#: What a reviewer's "one person" may not put two of into one customer.
ONE_PER_PERSON = ("user_id", "loyalty_id")
RULES_AUTHOR = "rules/deterministic-v1"

# Versioned schema, applied in order at start inside one transaction, recorded in
# schema_migrations. Types are the common subset of DuckDB and PostgreSQL. A backend applies
# ``migrations(...)``: these, then those whose SQL differs by backend.
MIGRATIONS: tuple[Migration, ...] = (
    (1, "records, links, customers, identifiers and the change log", (
        """CREATE TABLE customers (
            customer_id VARCHAR PRIMARY KEY,
            created_at TIMESTAMP NOT NULL,
            merged_into VARCHAR
        )""",
        "CREATE INDEX customers_by_survivor ON customers (merged_into)",
        """CREATE TABLE identifiers (
            key BIGINT NOT NULL,
            id_type VARCHAR NOT NULL,
            value VARCHAR NOT NULL,
            customer_id VARCHAR NOT NULL,
            first_seen TIMESTAMP NOT NULL,
            last_seen TIMESTAMP NOT NULL,
            record_id VARCHAR NOT NULL,
            PRIMARY KEY (id_type, value, customer_id)
        )""",
        "CREATE INDEX identifiers_by_key ON identifiers (key)",
        "CREATE INDEX identifiers_by_customer ON identifiers (customer_id)",
        """CREATE TABLE records (
            record_id VARCHAR PRIMARY KEY,
            customer_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            features VARCHAR NOT NULL,
            first_seen TIMESTAMP NOT NULL,
            last_seen TIMESTAMP NOT NULL
        )""",
        "CREATE INDEX records_by_customer ON records (customer_id)",
        """CREATE TABLE record_identifiers (
            record_id VARCHAR NOT NULL,
            id_type VARCHAR NOT NULL,
            value VARCHAR NOT NULL,
            PRIMARY KEY (record_id, id_type, value)
        )""",
        """CREATE TABLE links (
            record_a VARCHAR NOT NULL,
            record_b VARCHAR NOT NULL,
            rule VARCHAR NOT NULL,
            probability DOUBLE PRECISION,
            created_at TIMESTAMP NOT NULL,
            created_by VARCHAR NOT NULL,
            revoked_at TIMESTAMP,
            revoked_by VARCHAR,
            revoke_reason VARCHAR
        )""",
        "CREATE INDEX links_by_a ON links (record_a)",
        "CREATE INDEX links_by_b ON links (record_b)",
        """CREATE TABLE changes (
            seq BIGINT PRIMARY KEY,
            kind VARCHAR NOT NULL,
            customer_id VARCHAR NOT NULL,
            other_customer_id VARCHAR,
            record_id VARCHAR,
            committed_at TIMESTAMP NOT NULL
        )""",
    )),
    (2, "erasure: tombstones of hashed identifiers and an audit log without personal data", (
        "ALTER TABLE customers ADD COLUMN erased_at TIMESTAMP",
        """CREATE TABLE erased_identifiers (
            id_type VARCHAR NOT NULL,
            value_sha256 VARCHAR NOT NULL,
            erased_at TIMESTAMP NOT NULL,
            PRIMARY KEY (id_type, value_sha256)
        )""",
        """CREATE TABLE audit_log (
            logged_at TIMESTAMP NOT NULL,
            action VARCHAR NOT NULL,
            actor VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            subject_sha256 VARCHAR NOT NULL,
            detail VARCHAR NOT NULL
        )""",
    )),
    (3, "placeholder detection: names seen per identifier, identifiers found not identifying", (
        """CREATE TABLE identifier_names (
            key BIGINT NOT NULL,
            id_type VARCHAR NOT NULL,
            value VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            PRIMARY KEY (id_type, value, kind, name)
        )""",
        "CREATE INDEX identifier_names_by_key ON identifier_names (key)",
        """CREATE TABLE placeholders (
            key BIGINT NOT NULL,
            id_type VARCHAR NOT NULL,
            value VARCHAR NOT NULL,
            detected_at TIMESTAMP NOT NULL,
            reason VARCHAR NOT NULL,
            PRIMARY KEY (id_type, value)
        )""",
        "CREATE INDEX placeholders_by_key ON placeholders (key)",
    )),
    (4, "customers kept apart after an unmerge, in both directions", (
        """CREATE TABLE separations (
            customer_id VARCHAR NOT NULL,
            other_id VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            created_by VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            PRIMARY KEY (customer_id, other_id)
        )""",
    )),
    (5, "the linkage model online: blocking keys of records, model links' weights, near "
        "misses and reviewers' labels", (
        # The record's normalised identifiers beside its features: a candidate is scored
        # from its records row alone.
        "ALTER TABLE records ADD COLUMN identifiers VARCHAR",
        """CREATE TABLE record_blocking (
            key BIGINT NOT NULL,
            record_id VARCHAR NOT NULL
        )""",
        "CREATE INDEX record_blocking_by_key ON record_blocking (key)",
        "ALTER TABLE links ADD COLUMN weights VARCHAR",
        """CREATE TABLE near_misses (
            record_a VARCHAR NOT NULL,
            record_b VARCHAR NOT NULL,
            probability DOUBLE PRECISION NOT NULL,
            model_version VARCHAR NOT NULL,
            scored_at TIMESTAMP NOT NULL,
            PRIMARY KEY (record_a, record_b)
        )""",
        """CREATE TABLE review_labels (
            record_a VARCHAR NOT NULL,
            record_b VARCHAR NOT NULL,
            decision VARCHAR NOT NULL,
            actor VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            decided_at TIMESTAMP NOT NULL,
            PRIMARY KEY (record_a, record_b)
        )""",
    )),
    (6, "suppression: erased identifiers found by their hash alone", (
        "CREATE INDEX erased_identifiers_by_hash ON erased_identifiers (value_sha256)",
    )),
)


def migrations(sha256_hex_sql: str) -> tuple[Migration, ...]:
    """Every migration both backends share, in order. ``sha256_hex_sql`` is the backend's
    SQL for what ``sha256_hex`` computes, with ``{}`` for the text (the two have no common
    spelling of it)."""
    return (*MIGRATIONS, _minimised_placeholder_guard(sha256_hex_sql))


def _minimised_placeholder_guard(sha256_hex_sql: str) -> Migration:
    """Migration 7: the placeholder guard only counts different names per identifier, so
    it keeps digests of the identifier and of the names, never their values (rows converted
    in place). DuckDB alters no table an index depends on: each table is built again."""
    # The digests sha256_hex and name_digest compute, so that lookups find converted rows.
    value = sha256_hex_sql.format("value")
    name = sha256_hex_sql.format("kind || ':' || name")
    return (7, "placeholder detection keeps digests of identifiers and names, no values", (
        f"CREATE TABLE identifier_names_hashed AS SELECT DISTINCT key, id_type, {value} "
        f"AS value_sha256, kind, {name} AS name_sha256 FROM identifier_names",
        "DROP TABLE identifier_names",
        """CREATE TABLE identifier_names (
            key BIGINT NOT NULL,
            id_type VARCHAR NOT NULL,
            value_sha256 VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            name_sha256 VARCHAR NOT NULL,
            PRIMARY KEY (id_type, value_sha256, kind, name_sha256)
        )""",
        "CREATE INDEX identifier_names_by_key ON identifier_names (key)",
        "INSERT INTO identifier_names SELECT key, id_type, value_sha256, kind, name_sha256 "
        "FROM identifier_names_hashed",
        "DROP TABLE identifier_names_hashed",
        f"CREATE TABLE placeholders_hashed AS SELECT key, id_type, {value} AS value_sha256, "
        "detected_at, reason FROM placeholders",
        "DROP TABLE placeholders",
        """CREATE TABLE placeholders (
            key BIGINT NOT NULL,
            id_type VARCHAR NOT NULL,
            value_sha256 VARCHAR NOT NULL,
            detected_at TIMESTAMP NOT NULL,
            reason VARCHAR NOT NULL,
            PRIMARY KEY (id_type, value_sha256)
        )""",
        "CREATE INDEX placeholders_by_key ON placeholders (key)",
        "INSERT INTO placeholders SELECT key, id_type, value_sha256, detected_at, reason "
        "FROM placeholders_hashed",
        "DROP TABLE placeholders_hashed",
    ))


IDENTIFIER_COLUMNS = ("key", "id_type", "value", "customer_id", "first_seen", "last_seen",
                      "record_id")


def identifier_rows(rows: Mapping[tuple[str, str, str], Seen]) -> list[tuple]:
    return [(key_hash(t, v), t, v, c, s.first, s.last, s.record_id)
            for (t, v, c), s in rows.items()]


class SqlIdentityStore(SqlStore, IdentityStore):
    """The identity store on a SQL backend; subclasses open sessions and order writers."""

    # Names a batch saw with an identifier: where replicas write at once, two may add the
    # same name, and the second adds nothing.
    NAMES_CONFLICT: ClassVar[str] = (
        "ON CONFLICT (id_type, value_sha256, kind, name_sha256) DO NOTHING")

    @abstractmethod
    def _next_seqs(self, session: Session, count: int) -> list[int]:
        """Numbers for ``count`` new change log entries, in commit order."""

    # -- writes --------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[GraphTransaction]:
        with self._session(True) as session:
            graph = GraphTransaction(self._graph_source(session))
            yield graph
            self._commit(session, graph)
        self._graph_committed(graph)

    def run_transaction(self, work: Callable[[GraphTransaction], T]) -> tuple[T, int]:
        """Run ``work`` on a fresh working set and commit it; return its result and the
        change log position after it. Retried from the start when the backend reports a
        conflict with a concurrent transaction."""
        def attempt(session: Session) -> tuple[T, int, GraphTransaction]:
            graph = GraphTransaction(self._graph_source(session))
            result = work(graph)
            return result, self._commit(session, graph), graph
        result, seq, graph = self._run_graph(attempt)
        self._graph_committed(graph)
        return result, seq

    def _graph_source(self, session: Session) -> GraphSource:
        """Where a working set loads from (a backend with one writer may cache)."""
        return SqlGraphSource(session)

    def _run_graph(self, attempt: Callable[[Session], T]) -> T:
        """Run a working set's transaction (``_run``, but not a write the cache cannot
        follow)."""
        return self._run(attempt, write=True)

    def _graph_committed(self, graph: GraphTransaction) -> None:
        """A working set's transaction committed."""

    def _commit(self, session: Session, graph: GraphTransaction) -> int:
        """Write what the working set changed; the change log position after it."""
        graph.change_seq = self._write(session, graph) if graph.delta else self._last_seq(session)
        return graph.change_seq

    def _write(self, session: Session, graph: GraphTransaction) -> int:
        delta: Delta = graph.delta
        if delta.new_customers:
            final = {c: graph.final_customer(c) for c in delta.new_customers}
            session.insert("customers", ("customer_id", "created_at", "merged_into"),
                           [(c, at, final[c] if final[c] != c else None)
                            for c, at in delta.new_customers.items()])
        # Every stored customer merged in this batch goes straight to where it ended up (a
        # chain X -> Y -> Z in one batch is X -> Z), in three bulk statements.
        moved = {loser: graph.final_customer(loser) for _, loser in delta.merges
                 if loser not in delta.new_customers}
        if moved:
            update_mapped(session, "customers", "merged_into", "customer_id", moved)
            update_mapped(session, "customers", "merged_into", "merged_into", moved)
            update_mapped(session, "records", "customer_id", "customer_id", moved)
            # A merge moves every identifier of the loser: its rows go in one statement.
            session.execute("DELETE FROM identifiers WHERE customer_id = ANY(%s)", [list(moved)])
        if delta.identifiers:  # rows new to their customer (graph.Delta)
            session.insert("identifiers", IDENTIFIER_COLUMNS, identifier_rows(delta.identifiers))
        if delta.new_records:
            records = list(delta.new_records.values())
            session.insert("records", ("record_id", "customer_id", "source", "features",
                                       "first_seen", "last_seen", "identifiers"),
                           [(r.record_id, graph.final_customer(r.customer_id), r.source,
                             json.dumps(dict(r.features), ensure_ascii=False, sort_keys=True),
                             naive_utc(r.seen_at), naive_utc(r.seen_at),
                             json.dumps(dict(r.identifiers), ensure_ascii=False,
                                        sort_keys=True)) for r in records])
            session.insert("record_identifiers", ("record_id", "id_type", "value"),
                           [(r.record_id, t, v) for r in records
                            for t, v in r.identifiers.items()])
            blocking = [(key, r.record_id) for r in records for key in r.blocking]
            if blocking:
                session.insert("record_blocking", ("key", "record_id"), blocking)
        self._write_sightings(session, delta.sightings, delta.seen_records)
        if delta.names:
            session.insert("identifier_names", ("key", "id_type", "value_sha256", "kind",
                                                "name_sha256"),
                           [(key_hash(t, v), t, sha256_hex(v), kind, digest)
                            for t, v, kind, digest in delta.names], self.NAMES_CONFLICT)
        if delta.placeholders:
            session.insert("placeholders", ("key", "id_type", "value_sha256", "detected_at",
                                            "reason"),
                           [(key_hash(t, v), t, sha256_hex(v), utc_now(), why)
                            for (t, v), why in delta.placeholders.items()],
                           "ON CONFLICT (id_type, value_sha256) DO NOTHING")
        if delta.links:
            session.insert("links", ("record_a", "record_b", "rule", "created_at",
                                     "created_by", "probability", "weights"),
                           [(link.record_a, link.record_b, link.rule, link.created_at,
                             link.created_by or RULES_AUTHOR, link.probability,
                             link.weights) for link in delta.links])
        if delta.near_misses:
            session.insert("near_misses", ("record_a", "record_b", "probability",
                                           "model_version", "scored_at"),
                           [(a, b, p, version, utc_now())
                            for (a, b), (p, version) in delta.near_misses.items()],
                           "ON CONFLICT (record_a, record_b) DO NOTHING")
        if delta.separations:
            self._separate(session, delta.separations, RULES_AUTHOR, "inherited by a merge")
        if not delta.changes:
            return self._last_seq(session)
        return self._log(session, delta.changes)

    @staticmethod
    def _separate(session: Session, pairs: set[tuple[str, str]], actor: str,
                  reason: str) -> None:
        session.insert("separations", ("customer_id", "other_id", "created_at", "created_by",
                                       "reason"),
                       [(a, b, utc_now(), actor, reason) for a, b in sorted(pairs)],
                       "ON CONFLICT (customer_id, other_id) DO NOTHING")

    def _write_sightings(self, session: Session,
                         identifiers: Mapping[tuple[str, str, str], Seen],
                         records: Mapping[str, datetime]) -> None:
        """Identifiers and records that exist were seen again (in place, by default)."""
        if identifiers:
            session.insert("identifiers", IDENTIFIER_COLUMNS, identifier_rows(identifiers),
                           "ON CONFLICT (id_type, value, customer_id) DO UPDATE SET "
                           "first_seen = excluded.first_seen, last_seen = excluded.last_seen, "
                           "record_id = excluded.record_id")
        if records:
            session.execute(
                "UPDATE records SET last_seen = s.last_seen "
                "FROM (SELECT unnest(%s::text[]) AS record_id, "
                "unnest(%s::timestamp[]) AS last_seen) s "
                "WHERE records.record_id = s.record_id AND records.last_seen < s.last_seen",
                [list(records), list(records.values())])

    # -- lineage and erasure --------------------------------------------------------------

    def unmerge(self, customer_id: str, record_ids: Sequence[str], actor: str,
                reason: str) -> Unmerged:
        """Split a customer in two: ``record_ids`` and the rest. The links between the parts
        are revoked (who, why, when); the part with more records keeps the id, the other
        gets a new one; each part's identifiers are rebuilt from its records; an id once
        merged in follows the part holding the record that founded it."""
        def split(session: Session) -> Unmerged:
            live = _live_customer(session, customer_id)
            records = dict(session.fetch(
                "SELECT record_id, first_seen FROM records WHERE customer_id = %s", [live]))
            named = set(record_ids)
            if not named or not named <= set(records) or named == set(records):
                raise FailedPrecondition(
                    "record_ids must name some, not all, of the customer's records",
                    reason="UNMERGE_RECORDS_INVALID")
            rest = set(records) - named
            session.execute(
                "UPDATE links SET revoked_at = %s, revoked_by = %s, revoke_reason = %s "
                "WHERE revoked_at IS NULL AND ((record_a = ANY(%s) AND record_b = ANY(%s)) "
                "OR (record_a = ANY(%s) AND record_b = ANY(%s)))",
                [utc_now(), actor, reason, sorted(named), sorted(rest), sorted(rest),
                 sorted(named)])
            [(new_id, moved)], seq = self._split_into(session, live, [rest, named], records,
                                                      "unmerge", actor, reason)
            # A person said these are two people: no later event merges them again, and the
            # new part keeps apart from whoever the customer was kept apart from.
            inherited = {other for (other,) in session.fetch(
                "SELECT other_id FROM separations WHERE customer_id = %s", [live])}
            self._separate(session, {(live, new_id), (new_id, live)}
                           | {(new_id, o) for o in inherited} | {(o, new_id) for o in inherited},
                           actor, reason)
            moved_list = sorted(moved)
            return Unmerged(live, new_id, tuple(moved_list), seq)
        return self._run(split, write=True)

    def _split_into(self, session: Session, live: str, parts: list[set[str]],
                    records: dict[str, datetime], action: str, actor: str,
                    reason: str) -> tuple[list[tuple[str, set[str]]], int]:
        """Split a customer's records into ``parts``: the largest (on a tie, the first) keeps
        the id, each other
        part gets a new customer; identifiers are rebuilt from the records; an id merged in
        earlier follows the part holding the record that founded it. Returns the new
        customers with their records, and the change log position."""
        ordered = sorted(parts, key=len, reverse=True)  # stable: a tie keeps the earlier part
        kept, others = ordered[0], ordered[1:]
        new_parts = [(new_customer_id(), part) for part in others]
        session.insert("customers", ("customer_id", "created_at", "merged_into"),
                       [(new_id, min(records[r] for r in part), None)
                        for new_id, part in new_parts])
        for new_id, part in new_parts:
            session.execute("UPDATE records SET customer_id = %s WHERE record_id = ANY(%s)",
                            [new_id, sorted(part)])
        self._rebuild_identifiers(session, {live: kept, **dict(new_parts)})
        entries = [ChangeEntry("split", new_id, live, r)
                   for new_id, part in new_parts for r in sorted(part)]
        owner = {r: new_id for new_id, part in new_parts for r in part}
        for alias, founder in session.fetch(
                "SELECT c.customer_id, ch.record_id FROM customers c "
                "JOIN changes ch ON ch.customer_id = c.customer_id AND ch.kind = 'created' "
                "WHERE c.merged_into = %s", [live]):
            if founder in owner:
                session.execute("UPDATE customers SET merged_into = %s WHERE customer_id = %s",
                                [owner[founder], alias])
                entries.append(ChangeEntry("merged", owner[founder], alias))
        seq = self._log(session, entries)
        self._audit(session, action, actor, reason, live,
                    f"{sum(map(len, others))} of {len(records)} records to "
                    f"{len(others)} new customer(s)")
        return new_parts, seq

    def split_placeholder(self, id_type: str, value: str, reason: str) -> int:
        """An identifier found not identifying unlinks what it linked: its ``exact:`` links
        are revoked, and every customer it chained together is split into the connected
        components of its remaining active links. The change log position after it."""
        actor = "rules/placeholder-detection"

        def unlink(session: Session) -> int:
            carriers = sorted({r for (r,) in session.fetch(
                "SELECT record_id FROM record_identifiers WHERE id_type = %s AND value = %s",
                [id_type, value])})
            if not carriers:
                return self._last_seq(session)
            session.execute(
                "UPDATE links SET revoked_at = %s, revoked_by = %s, revoke_reason = %s "
                "WHERE revoked_at IS NULL AND rule = %s AND record_a = ANY(%s) "
                "AND record_b = ANY(%s)",
                [utc_now(), actor, reason, f"exact:{id_type}", carriers, carriers])
            seq = self._last_seq(session)
            customers = sorted({c for (c,) in session.fetch(
                "SELECT DISTINCT customer_id FROM records WHERE record_id = ANY(%s)",
                [carriers])})
            for customer_id in customers:
                records = dict(session.fetch(
                    "SELECT record_id, first_seen FROM records WHERE customer_id = %s",
                    [customer_id]))
                links = session.fetch(
                    "SELECT record_a, record_b FROM links WHERE revoked_at IS NULL "
                    "AND record_a = ANY(%s) AND record_b = ANY(%s)",
                    [list(records), list(records)])
                parts = _components(list(records), links)
                if len(parts) > 1:
                    _, seq = self._split_into(session, customer_id, parts, records,
                                              "placeholder split", actor, reason)
            return seq
        return self._run(unlink, write=True)

    def erase(self, customer_id: str, actor: str, reason: str) -> Erased:
        """Delete the customer's records, features, identifiers, links and the names seen
        with its identifiers; keep SHA-256 tombstones (for suppression) of its identifiers
        that no other live customer holds (a spouse's later events with the family phone
        are the spouse's), and an audit entry without personal data; log an ``erased``
        change. Its ids then resolve to nothing."""
        def erase_all(session: Session) -> Erased:
            live = _live_customer(session, customer_id)
            records = [r for (r,) in session.fetch(
                "SELECT record_id FROM records WHERE customer_id = %s", [live])]
            held = {(t, v) for t, v in session.fetch(
                "SELECT DISTINCT id_type, value FROM identifiers WHERE customer_id = %s",
                [live])}
            shared = _held_by_others(session, held, live)
            now = utc_now()
            session.insert("erased_identifiers", ("id_type", "value_sha256", "erased_at"),
                           [(t, sha256_hex(v), now) for t, v in sorted(held - shared)],
                           "ON CONFLICT (id_type, value_sha256) DO NOTHING")
            session.execute("DELETE FROM identifiers WHERE customer_id = %s", [live])
            _forget_names(session, held - shared, shared, records)
            if records:
                session.execute("DELETE FROM record_identifiers WHERE record_id = ANY(%s)",
                                [records])
                for table in ("links", "near_misses", "review_labels"):
                    session.execute(f"DELETE FROM {table} WHERE record_a = ANY(%s) "
                                    "OR record_b = ANY(%s)", [records, records])
                session.execute("DELETE FROM record_blocking WHERE record_id = ANY(%s)",
                                [records])
                session.execute("DELETE FROM records WHERE record_id = ANY(%s)", [records])
                # Record ids hash the person's identifiers and features: out of the log too.
                session.execute("UPDATE changes SET record_id = NULL "
                                "WHERE record_id = ANY(%s)", [records])
            session.execute("UPDATE customers SET erased_at = %s "
                            "WHERE customer_id = %s OR merged_into = %s", [now, live, live])
            session.execute("DELETE FROM separations WHERE customer_id = %s OR other_id = %s",
                            [live, live])
            seq = self._log(session, [ChangeEntry("erased", live)])
            self._audit(session, "erase", actor, reason, live,
                        f"{len(records)} records, {len(held)} identifiers ({len(shared)} "
                        "still held by other customers, not tombstoned)")
            return Erased(live, len(records), seq)
        return self._run(erase_all, write=True)

    # -- review -----------------------------------------------------------------------------

    def review_items(self, low: float, high: float, limit: int,
                     offset: int = 0) -> list[ReviewItem]:
        def read(session: Session) -> list[ReviewItem]:
            undecided = ("NOT EXISTS (SELECT 1 FROM review_labels r WHERE "
                         "r.record_a = least(x.record_a, x.record_b) "
                         "AND r.record_b = greatest(x.record_a, x.record_b))")
            rows = session.fetch(
                "SELECT * FROM ("
                "SELECT 'link' AS kind, record_a, record_b, probability, "
                "substr(rule, 7) AS model_version, created_at AS scored_at FROM links "
                "WHERE revoked_at IS NULL AND rule LIKE 'model:%%' "
                "AND probability >= %s AND probability < %s "
                "UNION ALL SELECT 'near_miss', record_a, record_b, probability, model_version, "
                f"scored_at FROM near_misses WHERE probability >= %s AND probability < %s) x "
                f"WHERE {undecided} ORDER BY probability, record_a, record_b LIMIT %s OFFSET %s",
                [low, high, low, high, limit, offset])
            ids = sorted({r for row in rows for r in (row[1], row[2])})
            customer = dict(session.fetch(
                "SELECT record_id, customer_id FROM records WHERE record_id = ANY(%s)", [ids])
            ) if ids else {}
            return [ReviewItem(kind, a, b, float(p), version, customer.get(a, ""),
                               customer.get(b, ""), aware_utc(at))
                    for kind, a, b, p, version, at in rows]
        return self._run(read)

    def review_labels(self) -> list[tuple[str, str, bool]]:
        return [(a, b, decision == "accept") for a, b, decision in self._run(lambda s: s.fetch(
            "SELECT record_a, record_b, decision FROM review_labels ORDER BY decided_at"))]

    def review(self, record_a: str, record_b: str, accept: bool, actor: str, reason: str,
               probability: float | None = None) -> Reviewed:
        if record_a == record_b:
            raise FailedPrecondition("a review decides on two different records",
                                     reason="REVIEW_SAME_RECORD")

        def apply(session: Session) -> Reviewed:
            owner = dict(session.fetch(
                "SELECT record_id, customer_id FROM records WHERE record_id = ANY(%s)",
                [[record_a, record_b]]))
            for record_id in (record_a, record_b):
                if record_id not in owner:
                    raise NotFound(f"no record {record_id}", reason="RECORD_NOT_FOUND",
                                   metadata={"record_id": record_id})
            first, second = sorted((record_a, record_b))
            session.insert("review_labels", ("record_a", "record_b", "decision", "actor",
                                             "reason", "decided_at"),
                           [(first, second, "accept" if accept else "reject", actor, reason,
                             utc_now())],
                           "ON CONFLICT (record_a, record_b) DO UPDATE SET "
                           "decision = excluded.decision, actor = excluded.actor, "
                           "reason = excluded.reason, decided_at = excluded.decided_at")
            if accept:
                seq = self._accept(session, record_a, record_b, owner, actor, reason,
                                   probability)
            else:
                seq = self._reject(session, record_a, record_b, owner, actor, reason)
            owner = dict(session.fetch(
                "SELECT record_id, customer_id FROM records WHERE record_id = ANY(%s)",
                [[record_a, record_b]]))
            return Reviewed(owner[record_a], owner[record_b], seq)
        return self._run(apply, write=True)

    def _accept(self, session: Session, record_a: str, record_b: str, owner: dict[str, str],
                actor: str, reason: str, probability: float | None) -> int:
        """A reviewer says one person: merge the two customers into the older one."""
        a, b = owner[record_a], owner[record_b]
        if a == b:
            return self._last_seq(session)
        held: dict[str, dict[str, set[str]]] = {a: {}, b: {}}
        for id_type, value, customer_id in session.fetch(
                "SELECT id_type, value, customer_id FROM identifiers "
                "WHERE customer_id = ANY(%s)", [[a, b]]):
            held[customer_id].setdefault(id_type, set()).add(value)
        for id_type in ONE_PER_PERSON:
            if len(held[a].get(id_type, set()) | held[b].get(id_type, set())) > 1:
                raise FailedPrecondition(
                    f"the two customers hold different values of {id_type}: one person has "
                    "one; unmerge the wrong record first",
                    reason="REVIEW_CONFLICT")
        session.execute("DELETE FROM separations WHERE (customer_id = %s AND other_id = %s) "
                        "OR (customer_id = %s AND other_id = %s)", [a, b, b, a])
        entries = self._merge_customers(session, [a, b], actor, reason)
        session.insert("links", ("record_a", "record_b", "rule", "created_at", "created_by",
                                 "probability"),
                       [(record_a, record_b, "review:accept", utc_now(), actor, probability)])
        self._audit(session, "review accept", actor, reason, entries[0].customer_id,
                    "1 customer merged")
        return self._log(session, entries)

    def _merge_customers(self, session: Session, customers: Sequence[str], actor: str,
                         reason: str) -> list[ChangeEntry]:
        """Merge live customers into the oldest: ids redirect, records move, identifiers
        are rebuilt from the records, separations are inherited. The change log entries."""
        created = dict(session.fetch(
            "SELECT customer_id, created_at FROM customers WHERE customer_id = ANY(%s)",
            [list(customers)]))
        survivor, *losers = sorted(set(customers), key=lambda c: (created[c], c))
        inherited = {(other, loser) for other, loser in session.fetch(
            "SELECT other_id, customer_id FROM separations WHERE customer_id = ANY(%s)",
            [losers])}
        pairs = {(survivor, o) for o, _ in inherited} | {(o, survivor) for o, _ in inherited}
        self._separate(session, {(x, y) for x, y in pairs if x != y}, actor, reason)
        moved = {loser: survivor for loser in losers}
        update_mapped(session, "customers", "merged_into", "customer_id", moved)
        update_mapped(session, "customers", "merged_into", "merged_into", moved)
        update_mapped(session, "records", "customer_id", "customer_id", moved)
        records = {r for (r,) in session.fetch(
            "SELECT record_id FROM records WHERE customer_id = %s", [survivor])}
        session.execute("DELETE FROM identifiers WHERE customer_id = ANY(%s)", [losers])
        self._rebuild_identifiers(session, {survivor: records})
        return [ChangeEntry("merged", survivor, loser) for loser in losers]

    # -- relink -----------------------------------------------------------------------------

    def history(self) -> tuple[list[tuple[str, str, str, dict, dict]], list[tuple[str, str, str]],
                               dict[str, set[str]]]:
        def read(session: Session) -> tuple:
            rows = session.fetch("SELECT record_id, customer_id, source, features, identifiers "
                                 "FROM records ORDER BY first_seen, record_id")
            missing = [r for r, _, _, _, ids in rows if ids is None]  # before migration 5
            held: dict[str, dict[str, str]] = {}
            if missing:
                for record_id, id_type, value in session.fetch(
                        "SELECT record_id, id_type, value FROM record_identifiers "
                        "WHERE record_id = ANY(%s)", [missing]):
                    held.setdefault(record_id, {})[id_type] = value
            records = [(r, c, source, json.loads(f), json.loads(ids) if ids else held.get(r, {}))
                       for r, c, source, f, ids in rows]
            links = [(a, b, rule) for a, b, rule in session.fetch(
                "SELECT record_a, record_b, rule FROM links WHERE revoked_at IS NULL")]
            apart: dict[str, set[str]] = {}
            for customer_id, other in session.fetch(
                    "SELECT customer_id, other_id FROM separations"):
                apart.setdefault(customer_id, set()).add(other)
            return records, links, apart
        return self._run(read)

    def apply_relink(self, clusters: Sequence[Sequence[str]],
                     new_links: Sequence[tuple[str, str, float, str]],
                     revoked: Sequence[tuple[str, str]], model_version: str,
                     actor: str) -> Relinked:
        reason = f"relink with model {model_version}"

        def apply(session: Session) -> Relinked:
            cluster_of = {r: i for i, records in enumerate(clusters) for r in records}
            now = utc_now()
            for a, b in revoked:
                session.execute(
                    "UPDATE links SET revoked_at = %s, revoked_by = %s, revoke_reason = %s "
                    "WHERE revoked_at IS NULL AND rule LIKE 'model:%%' AND ((record_a = %s AND "
                    "record_b = %s) OR (record_a = %s AND record_b = %s))",
                    [now, actor, reason, a, b, b, a])
            rows = session.fetch("SELECT record_id, customer_id, first_seen FROM records")
            by_customer: dict[str, dict[str, datetime]] = {}
            for record_id, customer_id, first in rows:
                by_customer.setdefault(customer_id, {})[record_id] = naive_utc(first)
            seq, splits = self._last_seq(session), 0
            owner = {record_id: customer_id for record_id, customer_id, _ in rows}
            for customer_id, records in sorted(by_customer.items()):
                parts: dict[int, set[str]] = {}
                for record_id in records:
                    parts.setdefault(cluster_of.get(record_id, -1), set()).add(record_id)
                if len(parts) > 1:
                    new_parts, seq = self._split_into(
                        session, customer_id, list(parts.values()), records, "relink", actor,
                        reason)
                    splits += len(new_parts)
                    for new_id, part in new_parts:
                        owner.update(dict.fromkeys(part, new_id))
            entries: list[ChangeEntry] = []
            for records in clusters:
                customers = sorted({owner[r] for r in records if r in owner})
                if len(customers) > 1:
                    entries.extend(self._merge_customers(session, customers, actor, reason))
            if new_links:
                session.insert("links", ("record_a", "record_b", "rule", "created_at",
                                         "created_by", "probability", "weights"),
                               [(a, b, f"model:{model_version}", now,
                                 f"model/cdp-identity:{model_version}", p, w)
                                for a, b, p, w in new_links])
            if entries:
                seq = self._log(session, entries)
            self._audit(session, "relink", actor, reason, model_version,
                        f"{len(entries)} merged, {splits} split")
            return Relinked(len(entries), splits, len(new_links), len(revoked), seq)
        return self._run(apply, write=True)

    def _reject(self, session: Session, record_a: str, record_b: str, owner: dict[str, str],
                actor: str, reason: str) -> int:
        """A reviewer says two people: revoke what holds them together, split the customer
        between them, and keep the parts apart."""
        a, b = owner[record_a], owner[record_b]
        if a != b:
            self._separate(session, {(a, b), (b, a)}, actor, reason)
            return self._last_seq(session)
        records = dict(session.fetch(
            "SELECT record_id, first_seen FROM records WHERE customer_id = %s", [a]))
        links = session.fetch(
            "SELECT record_a, record_b FROM links WHERE revoked_at IS NULL "
            "AND record_a = ANY(%s) AND record_b = ANY(%s)", [list(records), list(records)])
        side_b = _side_of(record_b, record_a, list(records), links)
        side_a = set(records) - side_b
        now = utc_now()
        session.execute(
            "UPDATE links SET revoked_at = %s, revoked_by = %s, revoke_reason = %s "
            "WHERE revoked_at IS NULL AND ((record_a = ANY(%s) AND record_b = ANY(%s)) "
            "OR (record_a = ANY(%s) AND record_b = ANY(%s)))",
            [now, actor, reason, sorted(side_a), sorted(side_b), sorted(side_b),
             sorted(side_a)])
        [(new_id, _)], seq = self._split_into(session, a, [side_a, side_b], records, "review",
                                             actor, reason)
        self._separate(session, {(a, new_id), (new_id, a)}, actor, reason)
        return seq

    def separations_of(self, customer_id: str) -> list[Separation]:
        rows = self._run(lambda s: s.fetch(
            "SELECT other_id, created_at, created_by, reason FROM separations "
            "WHERE customer_id = %s ORDER BY created_at, other_id", [customer_id]))
        return [Separation(other, aware_utc(at), by, why) for other, at, by, why in rows]

    def get_records(self, record_ids: Sequence[str]) -> list[StoredRecord]:
        if not record_ids:
            return []

        def read(session: Session) -> list[StoredRecord]:
            rows = session.fetch(
                "SELECT record_id, customer_id, source, features, identifiers, first_seen, "
                "last_seen FROM records WHERE record_id = ANY(%s) ORDER BY record_id",
                [list(record_ids)])
            return [StoredRecord(r, c, source, json.loads(features),
                                 {t: [v] for t, v in json.loads(ids or "{}").items()},
                                 aware_utc(first),
                                 aware_utc(self._record_last_seen(r, naive_utc(last))))
                    for r, c, source, features, ids, first, last in rows]
        return self._run(read)

    def is_erased(self, id_type: str, value: str) -> bool:
        """Whether a normalised identifier belonged to an erased customer (suppression)."""
        return bool(self._run(lambda s: s.fetch(
            "SELECT 1 FROM erased_identifiers WHERE id_type = %s AND value_sha256 = %s",
            [id_type, sha256_hex(value)])))

    def _rebuild_identifiers(self, session: Session, parts: dict[str, set[str]]) -> None:
        """Each customer's identifiers again, from its records alone."""
        session.execute("DELETE FROM identifiers WHERE customer_id = ANY(%s)", [list(parts)])
        owner = {record: customer for customer, records in parts.items() for record in records}
        rows = session.fetch(
            "SELECT ri.record_id, ri.id_type, ri.value, r.first_seen, r.last_seen "
            "FROM record_identifiers ri JOIN records r ON r.record_id = ri.record_id "
            "WHERE ri.record_id = ANY(%s)", [list(owner)])
        seen: dict[tuple[str, str, str], Seen] = {}
        for record_id, id_type, value, first, last in rows:
            key = (id_type, value, owner[record_id])
            old = seen.get(key)
            if old is None:
                seen[key] = Seen(naive_utc(first), naive_utc(last), record_id)
            else:
                latest = record_id if naive_utc(last) > old.last else old.record_id
                seen[key] = Seen(min(old.first, naive_utc(first)),
                                 max(old.last, naive_utc(last)), latest)
        session.insert("identifiers", IDENTIFIER_COLUMNS, identifier_rows(seen))

    def _log(self, session: Session, entries: Sequence[ChangeEntry]) -> int:
        seqs = self._next_seqs(session, len(entries))
        now = utc_now()
        session.insert("changes", ("seq", "kind", "customer_id", "other_customer_id",
                                   "record_id", "committed_at"),
                       [(seq, e.kind, e.customer_id, e.other_customer_id, e.record_id, now)
                        for seq, e in zip(seqs, entries, strict=True)])
        return seqs[-1]

    @staticmethod
    def _audit(session: Session, action: str, actor: str, reason: str, subject: str,
               detail: str) -> None:
        session.insert("audit_log", ("logged_at", "action", "actor", "reason", "subject_sha256",
                                     "detail"),
                       [(utc_now(), action, actor, reason, sha256_hex(subject), detail)])

    # -- reads ---------------------------------------------------------------------------

    def _last_seq(self, session: Session) -> int:
        return session.fetch("SELECT coalesce(max(seq), 0) FROM changes")[0][0]

    def last_change_seq(self) -> int:
        return self._run(self._last_seq)

    def get_customer(self, customer_id: str) -> Customer | None:
        rows = self._run(lambda s: s.fetch(
            "SELECT customer_id, created_at, merged_into FROM customers "
            "WHERE customer_id = %s AND erased_at IS NULL", [customer_id]))
        return Customer(rows[0][0], aware_utc(rows[0][1]), rows[0][2]) if rows else None

    def resolve_redirects(self, customer_id: str) -> str | None:
        customer = self.get_customer(customer_id)
        if customer is None:
            return None
        # Merges redirect every alias straight to the survivor: one hop.
        return customer.merged_into or customer.customer_id

    def merged_customer_ids_of(self, customer_ids: Sequence[str]) -> dict[str, list[str]]:
        if not customer_ids:
            return {}
        rows = self._run(lambda s: s.fetch(
            "SELECT merged_into, customer_id FROM customers WHERE merged_into = ANY(%s) "
            "ORDER BY created_at, customer_id", [list(customer_ids)]))
        merged: dict[str, list[str]] = {}
        for survivor, alias in rows:
            merged.setdefault(survivor, []).append(alias)
        return merged

    def count_customers(self, include_merged: bool = False) -> int:
        where = " WHERE erased_at IS NULL" + ("" if include_merged else " AND merged_into IS NULL")
        return self._run(lambda s: s.fetch(f"SELECT count(*) FROM customers{where}"))[0][0]

    def find_matches(self, identifiers: Mapping[str, str]) -> list[IdentifierMatch]:
        return self._run(
            lambda s: GraphTransaction(self._graph_source(s)).find_matches(identifiers))

    def identifier_rows(self, customer_id: str) -> list[IdentifierRow]:
        rows = self._run(lambda s: s.fetch(
            "SELECT id_type, value, customer_id, first_seen, last_seen FROM identifiers "
            "WHERE customer_id = %s", [customer_id]))
        rows = [(t, v, c, self._identifier_seen(t, v, c, Seen(naive_utc(f), naive_utc(la), "")))
                for t, v, c, f, la in rows]
        return sort_identifier_rows([IdentifierRow(t, v, c, aware_utc(x.first), aware_utc(x.last))
                                     for t, v, c, x in rows])

    def _identifier_seen(self, id_type: str, value: str, customer_id: str, stored: Seen) -> Seen:
        """When an identifier was seen, as stored (a backend that defers sightings adds
        those not written yet)."""
        return stored

    def _record_last_seen(self, record_id: str, stored: datetime) -> datetime:
        """When a record was last seen, as stored (see ``_identifier_seen``)."""
        return stored

    def records_of(self, customer_id: str) -> list[StoredRecord]:
        live_id = self.resolve_redirects(customer_id)
        if live_id is None:
            return []

        def read(session: Session) -> list[StoredRecord]:
            records = session.fetch(
                "SELECT record_id, customer_id, source, features, first_seen, last_seen "
                "FROM records WHERE customer_id = %s ORDER BY first_seen, record_id", [live_id])
            ids = [r[0] for r in records]
            identifiers: dict[str, dict[str, list[str]]] = {}
            if ids:
                for record_id, id_type, value in session.fetch(
                        "SELECT record_id, id_type, value FROM record_identifiers "
                        "WHERE record_id = ANY(%s) ORDER BY id_type, value", [ids]):
                    identifiers.setdefault(record_id, {}).setdefault(id_type, []).append(value)
            return [StoredRecord(r, c, source, json.loads(features), identifiers.get(r, {}),
                                 aware_utc(first),
                                 aware_utc(self._record_last_seen(r, naive_utc(last))))
                    for r, c, source, features, first, last in records]
        return self._run(read)

    def links_of(self, record_ids: Sequence[str]) -> list[StoredLink]:
        if not record_ids:
            return []
        rows = self._run(lambda s: s.fetch(
            "SELECT record_a, record_b, rule, created_at, created_by, probability, revoked_at, "
            "revoked_by, revoke_reason, weights FROM links WHERE record_a = ANY(%s) "
            "OR record_b = ANY(%s) ORDER BY created_at, record_a, record_b",
            [list(record_ids), list(record_ids)]))
        return [StoredLink(a, b, rule, aware_utc(at), by, p, aware_utc(r) if r else None, rb, why,
                           weights=_weights(w))
                for a, b, rule, at, by, p, r, rb, why, w in rows]

    def changes(self, after_seq: int, limit: int) -> list[Change]:
        rows = self._run(lambda s: s.fetch(
            "SELECT seq, kind, customer_id, other_customer_id, record_id, committed_at "
            "FROM changes WHERE seq > %s ORDER BY seq LIMIT %s", [after_seq, limit]))
        return [Change(seq, kind, c, other, r, aware_utc(at))
                for seq, kind, c, other, r, at in rows]


class SqlGraphSource:
    """The working set's loads (``graph.GraphSource``) in an open session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def holders(self, keys: Sequence[Key]) -> list[tuple[str, str, str]]:
        wanted = set(keys)
        rows = self._session.fetch(
            "SELECT id_type, value, customer_id FROM identifiers WHERE key = ANY(%s)",
            [[key_hash(t, v) for t, v in wanted]])
        return [row for row in rows if (row[0], row[1]) in wanted]  # drop hash collisions

    def customers(self, customer_ids: Sequence[str]
                  ) -> tuple[dict[str, CustomerRow], list[tuple[str, str, str, Seen]]]:
        ids = list(customer_ids)
        rows = self._session.fetch(
            "SELECT customer_id, created_at, merged_into FROM customers "
            "WHERE customer_id = ANY(%s)", [ids])
        apart: dict[str, set[str]] = {}
        for customer_id, other in self._session.fetch(
                "SELECT customer_id, other_id FROM separations WHERE customer_id = ANY(%s)", [ids]):
            apart.setdefault(customer_id, set()).add(other)
        identifiers = self._session.fetch(
            "SELECT id_type, value, customer_id, first_seen, last_seen, record_id "
            "FROM identifiers WHERE customer_id = ANY(%s)", [ids])
        return ({c: CustomerRow(naive_utc(at), merged, frozenset(apart.get(c, ())))
                 for c, at, merged in rows},
                [(t, v, c, Seen(naive_utc(f), naive_utc(la), r))
                 for t, v, c, f, la, r in identifiers])

    def records(self, record_ids: Sequence[str]) -> dict[str, str]:
        rows = self._session.fetch(
            "SELECT record_id, customer_id FROM records WHERE record_id = ANY(%s)",
            [list(record_ids)])
        return dict(rows)

    def candidates(self, keys: Sequence[int], per_key: int) -> dict[int, list[StoredCandidate]]:
        blocked: dict[int, list[str]] = {}
        for key, record_id in self._session.fetch(
                "SELECT key, record_id FROM record_blocking WHERE key = ANY(%s)", [list(keys)]):
            blocked.setdefault(key, []).append(record_id)
        # A key shared by very many records (a namesake in a big city) is capped: the
        # others still find the records that matter.
        capped = {key: sorted(found)[:per_key] for key, found in blocked.items()}
        ids = sorted({r for found in capped.values() for r in found})
        if not ids:
            return {}
        rows = {r: StoredCandidate(r, c, json.loads(f), json.loads(i) if i else {})
                for r, c, f, i in self._session.fetch(
                    "SELECT record_id, customer_id, features, identifiers FROM records "
                    "WHERE record_id = ANY(%s)", [ids])}
        return {key: [rows[r] for r in found if r in rows] for key, found in capped.items()}

    def erased_among(self, keys: Sequence[Key]) -> set[Key]:
        by_hash: dict[str, list[Key]] = {}
        for id_type, value in keys:
            by_hash.setdefault(sha256_hex(value), []).append((id_type, value))
        rows = self._session.fetch(
            "SELECT id_type, value_sha256 FROM erased_identifiers WHERE value_sha256 = ANY(%s)",
            [sorted(by_hash)])
        return {(t, v) for id_type, digest in rows for t, v in by_hash[digest] if t == id_type}

    def names(self, keys: Sequence[Key]) -> tuple[list[tuple[str, str, str, str]], set[Key]]:
        # Found by the 64-bit key, kept by type and digest: a key two values share (a
        # collision) never lends one value the other's names or placeholder status.
        wanted = {(t, sha256_hex(v)): (t, v) for t, v in set(keys)}
        hashes = [[key_hash(t, v) for t, v in wanted.values()]]
        names = [(*wanted[(t, digest)], kind, name) for t, digest, kind, name in
                 self._session.fetch("SELECT id_type, value_sha256, kind, name_sha256 "
                                     "FROM identifier_names WHERE key = ANY(%s)", hashes)
                 if (t, digest) in wanted]
        placeholders = {wanted[(t, digest)] for t, digest in self._session.fetch(
            "SELECT id_type, value_sha256 FROM placeholders WHERE key = ANY(%s)", hashes)
            if (t, digest) in wanted}
        return names, placeholders


def _live_customer(session: Session, customer_id: str) -> str:
    rows = session.fetch("SELECT customer_id, merged_into, erased_at FROM customers "
                         "WHERE customer_id = %s", [customer_id])
    if not rows or rows[0][2] is not None:
        raise NotFound(f"no customer {customer_id}", reason="CUSTOMER_NOT_FOUND",
                       metadata={"customer_id": customer_id})
    return rows[0][1] or rows[0][0]


def _held_by_others(session: Session, keys: set[Key], customer_id: str) -> set[Key]:
    """Which of the identifiers another live customer holds too (a family's phone)."""
    if not keys:
        return set()
    rows = session.fetch(
        "SELECT DISTINCT i.id_type, i.value FROM identifiers i JOIN customers c "
        "ON c.customer_id = i.customer_id WHERE i.key = ANY(%s) AND i.customer_id <> %s "
        "AND c.erased_at IS NULL AND c.merged_into IS NULL",
        [sorted({key_hash(t, v) for t, v in keys}), customer_id])
    return {(t, v) for t, v in rows} & keys  # a key hash two values share is no match


def _forget_names(session: Session, own: set[Key], shared: set[Key],
                  records: Sequence[str]) -> None:
    """Delete the names the placeholder guard saw with an erased customer's identifiers:
    all of them under identifiers it alone held, and its own under those others hold too
    (theirs keep counting)."""
    own = {(t, v) for t, v in own if t in WATCHED_TYPES}
    if own:
        session.execute(
            "DELETE FROM identifier_names WHERE key = ANY(%s) AND value_sha256 = ANY(%s)",
            [sorted({key_hash(t, v) for t, v in own}), sorted({sha256_hex(v) for _, v in own})])
    watched = {(t, v) for t, v in shared if t in WATCHED_TYPES}
    if not watched or not records:
        return
    names = {name_digest(kind, name)
             for (features,) in session.fetch(
                 "SELECT features FROM records WHERE record_id = ANY(%s)", [list(records)])
             for kind, name in json.loads(features).items() if kind in NAME_KINDS and name}
    if names:
        session.execute(
            "DELETE FROM identifier_names WHERE key = ANY(%s) AND value_sha256 = ANY(%s) "
            "AND name_sha256 = ANY(%s)",
            [sorted({key_hash(t, v) for t, v in watched}),
             sorted({sha256_hex(v) for _, v in watched}), sorted(names)])


def _weights(text: str | None) -> tuple[tuple[str, str, float], ...]:
    """A model link's stored weights: ``[[comparison, level, weight], ...]``."""
    return tuple((c, level, float(w)) for c, level, w in json.loads(text)) if text else ()


def _side_of(record_b: str, record_a: str, nodes: list[str],
             edges: list[tuple[str, str]]) -> set[str]:
    """The records nearer (in links) to ``record_b`` than to ``record_a``, with
    ``record_b``: the part a reviewer's "two people" moves out. The direct links between
    the two do not count; a record as near to both, or reached from neither, stays."""
    neighbours: dict[str, set[str]] = {node: set() for node in nodes}
    for x, y in edges:
        if {x, y} == {record_a, record_b} or x not in neighbours or y not in neighbours:
            continue
        neighbours[x].add(y)
        neighbours[y].add(x)

    def hops(start: str) -> dict[str, int]:
        distance, frontier = {start: 0}, [start]
        while frontier:
            following = []
            for node in frontier:
                for other in neighbours[node]:
                    if other not in distance:
                        distance[other] = distance[node] + 1
                        following.append(other)
            frontier = following
        return distance

    from_a, from_b = hops(record_a), hops(record_b)
    return {node for node, d in from_b.items() if d < from_a.get(node, len(nodes) + 1)}


def _components(nodes: list[str], edges: list[tuple[str, str]]) -> list[set[str]]:
    """The connected components of a graph (union-find)."""
    parent = {node: node for node in nodes}

    def root(node: str) -> str:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in edges:
        if a in parent and b in parent:
            parent[root(a)] = root(b)
    groups: dict[str, set[str]] = {}
    for node in nodes:
        groups.setdefault(root(node), set()).add(node)
    return list(groups.values())

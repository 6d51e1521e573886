"""Deterministic identity resolution: exact identifiers link records to stable customers.

A record is the set of identifiers seen together (one event, one source row). Resolving it
finds the customers that already hold those identifiers, decides which of them the record
belongs to, merges them when that is safe, and attaches the record's identifiers to the
result. The rules, in the order they apply:

1. **Normalise.** Identifiers are normalised (``normalize.py``); placeholders
   (``noemail@mail.ru``, ``null``, ``+7 000 000-00-00``, and the retailer's own
   ``BlockedValues``) are dropped and never link. A
   malformed identifier (a phone that is no phone number, an e-mail without a domain) is
   left out of linking and reported as a warning, so a store purchase is not lost to a
   mistyped phone; a record with no usable identifier is rejected, with the reasons as
   violations. A rejected record changes nothing and does not stop the rest of its batch.
2. **Identifier classes.**
   *Definitive* types (``user_id``, ``crm_id``, ``loyalty_id``, ``email``) identify a person:
   a customer holding the record's value is linked unconditionally (subject to rule 3).
   The *hard* type ``user_id`` is one per person; ``crm_id`` is not, since CRMs hold
   duplicate rows of one person, which link by their other evidence.
   *Shareable* types (``phone``, ``device_id``, ``anonymous_id``) may belong to a household
   or a shared device: a customer matched only through them is linked only when it is
   *compatible* with the record, i.e. they do not disagree on any definitive type
   (both hold values of that type and the value sets are disjoint).
3. **Hard types never conflict.** A customer holding a different ``user_id``
   than the record is never linked, whatever else matches; two customers with different
   ``user_id`` values are never merged. The record attaches to the
   highest-priority match only.
4. **Anchor.** Candidates are ordered by the priority of the identifier that matched them
   (``user_id`` > ``crm_id`` > ``loyalty_id`` > ``email`` > ``phone`` > ``device_id`` >
   ``anonymous_id``); among customers matched by the same value, the one most recently seen
   with it comes first. The first candidate is the anchor; no candidate means a new customer.
5. **Merge.** Each further candidate joins the anchor's group when the group (anchor plus
   the record plus candidates already joined) and the candidate were not kept apart by an
   unmerge, neither conflict on a hard type nor, for a candidate matched only through
   shareable types, disagree on a definitive type, and the merged customer would stay
   within the per-type limits
   (:data:`MERGE_LIMITS`: 1 ``user_id``, 3 ``crm_id``, 5 e-mails, 5 phones, ...). Candidates
   are tried in anchor order, repeatedly until none joins; a refused candidate is left
   alone. The group is merged into its *oldest* customer (earliest
   ``created_at``, i.e. the earliest observation that created it), whose id survives; the
   others redirect to it and their identifiers move to it.
6. **Attach.** All the record's identifiers are attached to the resulting customer, so a
   household phone ends up on every member's customer. Limits guard merges only.
7. **Idempotence and order.** Records are resolved one after another in batch order, so a
   later record sees an earlier one. Resolving the same record again finds the same
   customer and changes nothing.
8. **Durability.** A batch is one transaction of the store, committed before
   :meth:`DeterministicResolver.resolve` returns: a resolution handed back is on disk. If
   the commit fails, ``resolve`` raises and none of the batch is kept; no other thread sees
   a batch before it is committed.

9. **Placeholders found in the data.** An e-mail or phone seen with
   :data:`PLACEHOLDER_THRESHOLD` different first names or birth dates stops linking
   anyone; the links it made are revoked and the customers it chained together are split
   into what their other links hold together.

``Resolution.matched_on`` says why a record was linked: the types of its identifiers that
matched the resulting customer or a customer merged into it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from omnicdp.core.errors import FieldViolation
from omnicdp.core.vocabulary import IDENTIFIER_TYPES, PRIORITY
from omnicdp.services.identity.model import IdentityRecord, Resolution, ResolvedBatch
from omnicdp.services.identity.normalize import (
    NO_BLOCKED_VALUES,
    BlockedValues,
    normalize_identifier,
    normalize_usable_identifiers,
)
from omnicdp.services.identity.records import normalize_features, record_id
from omnicdp.services.identity.store.base import IdentityStore
from omnicdp.services.identity.store.graph import GraphTransaction, NewRecord

DEFINITIVE_TYPES: frozenset[str] = frozenset({"user_id", "crm_id", "loyalty_id", "email"})
# One per person. Not crm_id: real CRMs hold duplicate rows of one person (on generated data,
# 31% of same-person record pairs that both carry a CRM id disagree on it).
HARD_TYPES: frozenset[str] = frozenset({"user_id"})
SHAREABLE_TYPES: frozenset[str] = frozenset({"phone", "device_id", "anonymous_id"})

#: Most values of each type one customer may reach through a merge. Cookies and devices
#: churn, so their limits are generous; they still stop one kiosk from swallowing a city.
MERGE_LIMITS: Mapping[str, int] = {
    "user_id": 1,
    "crm_id": 3,
    "loyalty_id": 5,
    "email": 5,
    "phone": 5,
    "device_id": 20,
    "anonymous_id": 100,
}

#: An e-mail or phone seen with this many different first names (or birth dates) is a
#: placeholder: a cashier's stand-in, a shared office mailbox (Amperity uses 20).
PLACEHOLDER_THRESHOLD = 20

NO_IDENTIFIER = (
    "at least one identifier is required; "
    + ", ".join(IDENTIFIER_TYPES)
    + (" (placeholder values such as null or noemail@ do not count)")
)

IdentifierSets = dict[str, set[str]]


@dataclass
class _Candidate:
    customer_id: str
    matched_on: set[str]
    identifiers: IdentifierSets
    created_at: datetime
    apart: frozenset[str] = frozenset()  # never merged with these (an unmerge said so)

    @property
    def linked_definitively(self) -> bool:
        return not self.matched_on.isdisjoint(DEFINITIVE_TYPES)


class DeterministicResolver:
    """Resolves records to stable customer ids by exact identifiers (see module docs)."""

    def __init__(self, store: IdentityStore, default_region: str = "RU",
                 placeholder_threshold: int = PLACEHOLDER_THRESHOLD,
                 blocked: BlockedValues = NO_BLOCKED_VALUES) -> None:
        self._store = store
        self._default_region = default_region
        self._placeholder_threshold = placeholder_threshold
        self._blocked = blocked

    def resolve(self, records: Sequence[IdentityRecord]) -> list[Resolution]:
        """One resolution per record, in order; bad records get violations, not exceptions."""
        return self.resolve_batch(records).resolutions

    def resolve_batch(self, records: Sequence[IdentityRecord]) -> ResolvedBatch:
        """The resolutions and the change log position after the batch's one transaction
        (rule 8). Records are normalised before it starts; a backend that aborts the
        transaction on a conflict with a concurrent one runs it again from the start."""
        prepared = [self._prepare(record) for record in records]

        def link_all(graph: GraphTransaction) -> tuple[list[Resolution], dict]:
            graph.prefetch((), ((item.record_id, item.identifiers.items())
                                for item in prepared if isinstance(item, _Prepared)))
            resolutions = [item if isinstance(item, Resolution) else self._link(graph, item)
                           for item in prepared]
            return resolutions, dict(graph.delta.placeholders)

        (resolutions, detected), change_seq = self._store.run_transaction(link_all)
        # Rule 9: what an identifier linked before it was found not identifying is undone.
        for (id_type, value), reason in sorted(detected.items()):
            change_seq = max(change_seq,
                             self._store.split_placeholder(id_type, value, reason))
        return ResolvedBatch(resolutions, change_seq)

    def lookup(self, id_type: str, raw_value: str) -> str | None:
        """The live customer holding an identifier given raw, normalised as on ingestion.

        ``None`` for a placeholder or unknown value; :class:`InvalidArgument` for a
        malformed one.
        """
        value = normalize_identifier(id_type, raw_value, self._default_region)
        if value is None or self._blocked.blocks(id_type, value):
            return None
        return self._store.lookup(id_type, value)

    def _prepare(self, record: IdentityRecord) -> _Prepared | Resolution:
        """The record's usable identifiers, features and id, with warnings about the rest;
        or its rejection when no identifier is usable (rule 1)."""
        features = normalize_features(record.traits)
        identifiers, problems = normalize_usable_identifiers(
            record.identifiers, self._default_region, features.get("country"), self._blocked)
        if not identifiers:
            return Resolution(
                record.record_id,
                None,
                violations=tuple(problems) or (FieldViolation("identifiers", NO_IDENTIFIER),),
            )
        return _Prepared(record, identifiers, features, tuple(problems),
                         record_id(record.source, identifiers, features))

    def _link(self, graph: GraphTransaction, item: _Prepared) -> Resolution:
        """Rules 2-6 for one valid record, inside the batch's transaction."""
        record, identifiers = item.record, item.identifiers
        seen_at = record.observed_at
        graph.observe_names(identifiers, item.features, self._placeholder_threshold)
        existing = graph.record_customer(item.record_id, identifiers.items())
        group = self._linked_group(graph, identifiers, existing)
        if not group:
            customer_id = graph.create_customer(seen_at)
            graph.attach_identifiers(customer_id, identifiers, seen_at, item.record_id)
            graph.add_record(self._new_record(item, customer_id), links=())
            return Resolution(record.record_id, customer_id, created=True,
                              identifiers=identifiers, warnings=item.warnings,
                              identity_record_id=item.record_id)

        # Each customer the record joins gets a link from it to the record that carried the
        # identifier matched first, named by the rule that matched; a record seen before
        # gets links only to the customers it now merges in.
        links = []
        for candidate in group:
            if candidate.customer_id == existing:
                continue  # a known record is linked into its own customer already
            id_type = min(candidate.matched_on, key=PRIORITY.__getitem__, default=None)
            target = (graph.link_target(candidate.customer_id, (id_type, identifiers[id_type]))
                      if id_type else None)
            if target is not None:
                links.append((target, f"exact:{id_type}"))
        survivor = min(group, key=lambda c: (c.created_at, c.customer_id))
        losers = [c for c in group if c is not survivor]
        for loser in losers:
            graph.merge(survivor.customer_id, loser.customer_id)
        graph.attach_identifiers(survivor.customer_id, identifiers, seen_at, item.record_id)
        graph.add_record(self._new_record(item, survivor.customer_id), links)

        matched = set().union(*(c.matched_on for c in group))
        return Resolution(
            record.record_id,
            survivor.customer_id,
            merged_customer_ids=tuple(loser.customer_id for loser in losers),
            matched_on=tuple(sorted(matched, key=PRIORITY.__getitem__)),
            identifiers=identifiers,
            warnings=item.warnings,
            identity_record_id=item.record_id,
        )

    @staticmethod
    def _new_record(item: _Prepared, customer_id: str) -> NewRecord:
        return NewRecord(item.record_id, customer_id, item.record.source, item.features,
                         item.identifiers, item.record.observed_at)

    def _linked_group(self, graph: GraphTransaction, identifiers: dict[str, str],
                      existing: str | None) -> list[_Candidate]:
        """The customers the record belongs to: the anchor first, then those merged in. A
        record seen before anchors on its own customer."""
        record_sets: IdentifierSets = {t: {v} for t, v in identifiers.items()}
        candidates = [
            candidate
            for candidate in self._candidates(graph, identifiers)
            if candidate.customer_id == existing or (
                not _hard_conflict(candidate.identifiers, record_sets)
                and (
                    candidate.linked_definitively
                    or not _disagree(candidate.identifiers, record_sets, DEFINITIVE_TYPES)
                ))
        ]
        if existing is not None:
            candidates.sort(key=lambda c: c.customer_id != existing)  # stable: anchor first
        if not candidates:
            return []

        anchor, *pending = candidates
        group = [anchor]
        group_sets = _union(anchor.identifiers, record_sets)
        group_ids, group_apart = {anchor.customer_id}, set(anchor.apart)
        # Repeat until nothing joins: a candidate refused early may become compatible once
        # a later one brings a shared value, and re-resolving must not merge it then.
        joined = True
        while joined and pending:
            joined = False
            for candidate in list(pending):
                if (candidate.customer_id not in group_apart
                        and group_ids.isdisjoint(candidate.apart)
                        and _can_join(candidate, group_sets)):
                    group.append(candidate)
                    pending.remove(candidate)
                    group_sets = _union(group_sets, candidate.identifiers)
                    group_ids.add(candidate.customer_id)
                    group_apart |= candidate.apart
                    joined = True
        return group

    @staticmethod
    def _candidates(graph: GraphTransaction, identifiers: dict[str, str]) -> list[_Candidate]:
        """Live customers holding any of the identifiers, in anchor order (rule 4)."""
        by_id: dict[str, _Candidate] = {}
        for match in graph.find_matches(identifiers):
            candidate = by_id.get(match.customer_id)
            if candidate is None:
                candidate = _Candidate(match.customer_id, set(), {}, match.customer_created_at)
                by_id[match.customer_id] = candidate
            candidate.matched_on.add(match.id_type)
        for customer_id, sets in graph.identifiers_of(by_id).items():
            by_id[customer_id].identifiers = sets
            by_id[customer_id].apart = graph.apart(customer_id)
        return list(by_id.values())


@dataclass(frozen=True)
class _Prepared:
    record: IdentityRecord
    identifiers: dict[str, str]
    features: dict[str, str]
    warnings: tuple[FieldViolation, ...]
    record_id: str


def _can_join(candidate: _Candidate, group: IdentifierSets) -> bool:
    """Rule 5: whether a candidate may be merged into the group."""
    if _hard_conflict(candidate.identifiers, group):
        return False
    if not candidate.linked_definitively and _disagree(
        candidate.identifiers, group, DEFINITIVE_TYPES
    ):
        return False
    return not _exceeds_limits(group, candidate.identifiers)


def _disagree(a: IdentifierSets, b: IdentifierSets, types: frozenset[str]) -> bool:
    """Both sides hold values of one of ``types`` and share none of them."""
    return any(a.get(t) and b.get(t) and a[t].isdisjoint(b[t]) for t in types)


def _hard_conflict(a: IdentifierSets, b: IdentifierSets) -> bool:
    """Together they would hold two values of a one-per-person type."""
    return any(len(a.get(t, set()) | b.get(t, set())) > 1 for t in HARD_TYPES)


def _exceeds_limits(group: IdentifierSets, candidate: IdentifierSets) -> bool:
    """Merging would add values of a type beyond its limit."""
    for id_type, values in candidate.items():
        merged = group.get(id_type, set()) | values
        if len(merged) > MERGE_LIMITS.get(id_type, 1) and not values <= group.get(id_type, set()):
            return True
    return False


def _union(a: IdentifierSets, b: IdentifierSets) -> IdentifierSets:
    return {t: a.get(t, set()) | b.get(t, set()) for t in a.keys() | b.keys()}

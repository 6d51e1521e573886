"""Deterministic identity resolution: exact identifiers link records to stable customers.

A record is the set of identifiers seen together (one event, one source row). Resolving it
finds the customers that already hold those identifiers, decides which of them the record
belongs to, merges them when that is safe, and attaches the record's identifiers to the
result. The rules, in the order they apply:

1. **Normalise.** Identifiers are normalised (``omnicdp.core.identifiers``); placeholders
   (``noemail@mail.ru``, ``null``, ``+7 000 000-00-00``, and the retailer's own
   ``BlockedValues``) are dropped and never link. A
   malformed identifier (a phone that is no phone number, an e-mail without a domain) is
   left out of linking and reported as a warning, so a store purchase is not lost to a
   mistyped phone; a record with no usable identifier is rejected, with the reasons as
   violations. A rejected record changes nothing and does not stop the rest of its batch.
   A record carrying an identifier of an erased customer (its SHA-256 tombstone) is
   *suppressed*: nothing of it is stored and it resolves to no customer, so the person is
   not silently rebuilt (the caller decides whether to reject or drop the event).
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
   :meth:`Resolver.resolve` returns: a resolution handed back is on disk. If
   the commit fails, ``resolve`` raises and none of the batch is kept; no other thread sees
   a batch before it is committed.

9. **Placeholders found in the data.** An e-mail or phone seen with
   :data:`PLACEHOLDER_THRESHOLD` different first names or birth dates stops linking
   anyone; the links it made are revoked and the customers it chained together are split
   into what their other links hold together.

10. **The model links what the rules leave** (``matching.py``). With a linkage model
   serving, a record seen for the first time is also compared with the stored records that
   share a blocking key with it (never a scan). Customers whose best record scores at least
   the model's threshold join the group after the rule matches, best first, under the
   guardrails of rule 5 with ``user_id`` and loyalty card one per person
   (:data:`MODEL_ONE_PER_PERSON`); with no rule match, the best of them is the anchor.
   Each such link stores the model version, the probability and the per-comparison weights;
   scores in the review band below the threshold are kept as near misses for review.
   Family-shared identifiers (e-mail, loyalty card, phone) then link by rule only a record
   whose first name and birth date allow it to be the same person as a record holding the
   value, so that spouses sharing a mailbox stay two customers; and an e-mail or phone seen
   with the model's placeholder count of first names (a store's phone) links no one and
   counts for nothing, as in batch linking.

``Resolution.matched_on`` says why a record was linked: the types of its identifiers that
matched the resulting customer or a customer merged into it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from omnicdp.core.errors import FieldViolation
from omnicdp.core.identifiers import (
    NO_BLOCKED_VALUES,
    BlockedValues,
    normalize_identifier,
    normalize_usable_identifiers,
)
from omnicdp.core.vocabulary import IDENTIFIER_TYPES, PRIORITY
from omnicdp.services.identity.linkage.model import LinkageModel
from omnicdp.services.identity.matching import FAMILY_SHARED, Matcher, Prepared, weights_json
from omnicdp.services.identity.model import IdentityRecord, Resolution, ResolvedBatch
from omnicdp.services.identity.records import normalize_features, record_id
from omnicdp.services.identity.store.base import IdentifierMatch, IdentityStore
from omnicdp.services.identity.store.graph import (
    GraphTransaction,
    LinkTo,
    NewRecord,
    StoredCandidate,
)

DEFINITIVE_TYPES: frozenset[str] = frozenset({"user_id", "crm_id", "loyalty_id", "email"})
# One per person. Not crm_id: real CRMs hold duplicate rows of one person (on generated data,
# 31% of same-person record pairs that both carry a CRM id disagree on it).
HARD_TYPES: frozenset[str] = frozenset({"user_id"})
#: Identifiers of one person only, never of a family: a match on one needs no family guard.
PERSONAL_TYPES: frozenset[str] = frozenset({"user_id", "crm_id"})
#: What a model's link may never put two of into one customer (a spouse may share a card,
#: but the model does not join two cards' holders on its own evidence).
MODEL_ONE_PER_PERSON: frozenset[str] = frozenset({"user_id", "loyalty_id"})
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


class Resolver:
    """Resolves records to stable customer ids: exact identifiers first, then the linkage
    model when one serves (see module docs)."""

    def __init__(self, store: IdentityStore, default_region: str = "RU",
                 placeholder_threshold: int = PLACEHOLDER_THRESHOLD,
                 blocked: BlockedValues = NO_BLOCKED_VALUES,
                 matcher: Matcher | None = None) -> None:
        self._store = store
        self._default_region = default_region
        self._placeholder_threshold = placeholder_threshold
        self._blocked = blocked
        self.matcher = matcher

    def resolve(self, records: Sequence[IdentityRecord]) -> list[Resolution]:
        """One resolution per record, in order; bad records get violations, not exceptions."""
        return self.resolve_batch(records).resolutions

    def resolve_batch(self, records: Sequence[IdentityRecord]) -> ResolvedBatch:
        """The resolutions and the change log position after the batch's one transaction
        (rule 8). Records are normalised before it starts; a backend that aborts the
        transaction on a conflict with a concurrent one runs it again from the start."""
        normalised = [self._prepare(record) for record in records]
        model = self.matcher.model if self.matcher is not None else None  # one per batch

        def link_all(graph: GraphTransaction) -> tuple[list[Resolution], dict]:
            # Suppression reads the tombstones in the batch's own transaction: an erasure
            # committed before it suppresses, one after it erases what it stored.
            prepared = self._suppress(graph, normalised)
            graph.prefetch((), ((item.record_id, item.identifiers.items())
                                for item in prepared if isinstance(item, _Prepared)))
            if model is not None:
                self._prefetch_candidates(graph, prepared)
            resolutions = [item if isinstance(item, Resolution)
                           else self._link(graph, item, model) for item in prepared]
            return resolutions, dict(graph.delta.placeholders)

        (resolutions, detected), change_seq = self._store.run_transaction(link_all)
        # Rule 9: what an identifier linked before it was found not identifying is undone.
        for (id_type, value), reason in sorted(detected.items()):
            change_seq = max(change_seq,
                             self._store.split_placeholder(id_type, value, reason))
        return ResolvedBatch(resolutions, change_seq)

    @staticmethod
    def _suppress(graph: GraphTransaction,
                  prepared: list[_Prepared | Resolution]) -> list[_Prepared | Resolution]:
        """Records carrying an erased customer's identifier (its tombstone) are left out:
        nothing of them is stored, and they resolve to no customer (``suppressed``)."""
        erased = graph.erased_among(
            pair for item in prepared if isinstance(item, _Prepared)
            for pair in item.identifiers.items())
        if not erased:
            return prepared
        return [Resolution(item.record.record_id, None, suppressed=True)
                if isinstance(item, _Prepared) and erased & set(item.identifiers.items())
                else item for item in prepared]

    def _prefetch_candidates(self, graph: GraphTransaction,
                             prepared: Sequence[_Prepared | Resolution]) -> None:
        """The stored records the model may compare the batch's new records with, in one
        load: under the keys of each new record with all its identifiers as evidence (a
        superset of the keys it is searched under once some turn out to be no evidence)."""
        assert self.matcher is not None
        keys: set[int] = set()
        for item in prepared:
            if isinstance(item, _Prepared) and graph.record_customer(
                    item.record_id, item.identifiers.items()) is None:
                item.model_record = self.matcher.prepare(item.features, item.identifiers,
                                                         item.identifiers)
                keys.update(item.model_record.keys)
        graph.prefetch_candidates(keys, self.matcher.per_key)

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

    def _link(self, graph: GraphTransaction, item: _Prepared,
              model: LinkageModel | None) -> Resolution:
        """Rules 2-6 and 10 for one valid record, inside the batch's transaction."""
        record, identifiers = item.record, item.identifiers
        seen_at = record.observed_at
        graph.observe_names(identifiers, item.features, self._placeholder_threshold)
        existing = graph.record_customer(item.record_id, identifiers.items())
        found = _Found()
        if existing is None and model is not None and self.matcher is not None:
            # A value seen with as many first names as the model's placeholder guard is no
            # evidence (a store's phone, a stand-in e-mail), as in batch linking.
            evidence = {t: v for t, v in identifiers.items()
                        if not graph.is_placeholder((t, v))
                        and graph.names_seen((t, v)) < model.placeholder_names}
            found.record = (item.model_record if evidence == identifiers
                            and item.model_record is not None
                            else self.matcher.prepare(item.features, identifiers, evidence))
            found.not_evidence = set(identifiers) - set(evidence)
            if found.record.keys:
                found.candidates = graph.candidates(found.record.keys, self.matcher.per_key)
        group = self._linked_group(graph, identifiers, existing, found)
        model_links: dict[str, LinkTo] = {}
        if found.candidates and model is not None:
            group = self._model_group(graph, identifiers, item, model, found, group,
                                      model_links)
        if not group:
            customer_id = graph.create_customer(seen_at)
            graph.attach_identifiers(customer_id, identifiers, seen_at, item.record_id)
            graph.add_record(self._new_record(item, customer_id, found), links=())
            return Resolution(record.record_id, customer_id, created=True,
                              identifiers=identifiers, warnings=item.warnings,
                              identity_record_id=item.record_id)

        # Each customer the record joins gets a link from it to the record that carried the
        # identifier matched first, named by the rule that matched, or to the record the
        # model scored best; a record seen before gets links only to the customers it now
        # merges in.
        links = []
        for candidate in group:
            if candidate.customer_id == existing:
                continue  # a known record is linked into its own customer already
            if candidate.customer_id in model_links:
                links.append(model_links[candidate.customer_id])
                continue
            id_type = min(candidate.matched_on, key=PRIORITY.__getitem__, default=None)
            target = (graph.link_target(candidate.customer_id, (id_type, identifiers[id_type]))
                      if id_type else None)
            if target is not None:
                links.append(LinkTo(target, f"exact:{id_type}"))
        survivor = min(group, key=lambda c: (c.created_at, c.customer_id))
        losers = [c for c in group if c is not survivor]
        for loser in losers:
            graph.merge(survivor.customer_id, loser.customer_id)
        graph.attach_identifiers(survivor.customer_id, identifiers, seen_at, item.record_id)
        graph.add_record(self._new_record(item, survivor.customer_id, found), links)

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

    def _model_group(self, graph: GraphTransaction, identifiers: dict[str, str],
                     item: _Prepared, model: LinkageModel, found: _Found,
                     group: list[_Candidate], links: dict[str, LinkTo]) -> list[_Candidate]:
        """Rule 10: the customers the model adds to the rules' group (best first, under the
        guardrails), their links into ``links``; near misses go to the delta."""
        assert self.matcher is not None and found.record is not None
        version = model.version or "unversioned"
        best: dict[str, tuple[StoredCandidate, object]] = {}
        for scored in self.matcher.score(model, found.record, found.candidates):
            best.setdefault(scored.candidate.customer_id, (scored.candidate, scored.score))
        in_group = {c.customer_id for c in group}
        low = self.matcher.review_band[0]
        above = []
        for customer_id, (candidate, score) in best.items():
            if customer_id in in_group:
                continue
            if score.match_probability >= model.threshold:
                above.append(customer_id)
            elif score.match_probability >= low:
                graph.delta.near_misses[(item.record_id, candidate.record_id)] = (
                    score.match_probability, version)
        if not above:
            return group
        record_sets: IdentifierSets = {t: {v} for t, v in identifiers.items()}
        sets_of = graph.identifiers_of(above)
        group = list(group)
        group_sets = record_sets
        group_ids: set[str] = set()
        group_apart: set[str] = set()
        for member in group:
            group_sets = _union(group_sets, member.identifiers)
            group_ids.add(member.customer_id)
            group_apart |= member.apart
        for customer_id in above:  # best first
            candidate = _Candidate(customer_id, set(), sets_of[customer_id],
                                   graph.customer_created_at(customer_id),
                                   graph.apart(customer_id))
            if (customer_id in group_apart or not group_ids.isdisjoint(candidate.apart)
                    or _one_per_person_conflict(candidate.identifiers, group_sets)
                    or _exceeds_limits(group_sets, candidate.identifiers)):
                stored, score = best[customer_id]
                graph.delta.near_misses[(item.record_id, stored.record_id)] = (
                    score.match_probability, version)  # a person may still say yes
                continue
            stored, score = best[customer_id]
            links[customer_id] = LinkTo(stored.record_id, f"model:{version}",
                                        f"model/cdp-identity:{version}",
                                        score.match_probability, weights_json(score))
            group.append(candidate)
            group_sets = _union(group_sets, candidate.identifiers)
            group_ids.add(customer_id)
            group_apart |= candidate.apart
        return group

    @staticmethod
    def _new_record(item: _Prepared, customer_id: str, found: _Found) -> NewRecord:
        return NewRecord(item.record_id, customer_id, item.record.source, item.features,
                         item.identifiers, item.record.observed_at,
                         found.record.keys if found.record is not None else ())

    def _linked_group(self, graph: GraphTransaction, identifiers: dict[str, str],
                      existing: str | None, found: _Found) -> list[_Candidate]:
        """The customers the record belongs to: the anchor first, then those merged in. A
        record seen before anchors on its own customer."""
        matches = graph.find_matches(identifiers)
        if existing is not None and matches and all(m.customer_id == existing
                                                    for m in matches):
            # A record seen before whose identifiers nobody else holds (most of a stream):
            # its own customer is the whole group, as the full rules would find.
            return [_Candidate(existing, {m.id_type for m in matches}, {},
                               matches[0].customer_created_at)]
        record_sets: IdentifierSets = {t: {v} for t, v in identifiers.items()}
        candidates = [
            candidate
            for candidate in self._candidates(graph, matches)
            if candidate.customer_id == existing or (
                not _hard_conflict(candidate.identifiers, record_sets)
                and (
                    candidate.linked_definitively
                    or not _disagree(candidate.identifiers, record_sets, DEFINITIVE_TYPES)
                )
                and self._family_allows(candidate, identifiers, found))
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

    def _family_allows(self, candidate: _Candidate, identifiers: dict[str, str],
                       found: _Found) -> bool:
        """Rule 10's family guard: a customer matched by rule only through family-shared
        identifiers must hold one of them on a record that may be the same person."""
        if found.record is None or self.matcher is None:
            return True
        shared = candidate.matched_on & set(FAMILY_SHARED)
        if not shared or candidate.matched_on & PERSONAL_TYPES:
            return True
        return any(id_type not in found.not_evidence and self.matcher.family_compatible(
            found.record, [c for c in found.candidates if c.customer_id == candidate.customer_id
                           and c.identifiers.get(id_type) == identifiers[id_type]])
            for id_type in shared)

    @staticmethod
    def _candidates(graph: GraphTransaction,
                    matches: Sequence[IdentifierMatch]) -> list[_Candidate]:
        """Live customers holding any of the identifiers (``graph.find_matches``), in anchor
        order (rule 4)."""
        by_id: dict[str, _Candidate] = {}
        for match in matches:
            candidate = by_id.get(match.customer_id)
            if candidate is None:
                candidate = _Candidate(match.customer_id, set(), {}, match.customer_created_at)
                by_id[match.customer_id] = candidate
            candidate.matched_on.add(match.id_type)
        for customer_id, sets in graph.identifiers_of(by_id).items():
            by_id[customer_id].identifiers = sets
            by_id[customer_id].apart = graph.apart(customer_id)
        return list(by_id.values())


@dataclass
class _Found:
    """What the model found for a new record: its features and keys, and the stored
    records sharing a key."""

    record: Prepared | None = None
    candidates: list[StoredCandidate] = field(default_factory=list)
    # Identifier types whose value is no evidence (seen with too many names): they link by
    # rule no more than they count for the model.
    not_evidence: set[str] = field(default_factory=set)


@dataclass
class _Prepared:
    record: IdentityRecord
    identifiers: dict[str, str]
    features: dict[str, str]
    warnings: tuple[FieldViolation, ...]
    record_id: str
    # The model's view of a new record with all its identifiers as evidence (the batch's
    # candidate prefetch computes it; most records use it as it is).
    model_record: Prepared | None = None


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


def _one_per_person_conflict(a: IdentifierSets, b: IdentifierSets) -> bool:
    """Together they would hold two values a model's link may not join (rule 10)."""
    return any(len(a.get(t, set()) | b.get(t, set())) > 1 for t in MODEL_ONE_PER_PERSON)


def _exceeds_limits(group: IdentifierSets, candidate: IdentifierSets) -> bool:
    """Merging would add values of a type beyond its limit."""
    for id_type, values in candidate.items():
        merged = group.get(id_type, set()) | values
        if len(merged) > MERGE_LIMITS.get(id_type, 1) and not values <= group.get(id_type, set()):
            return True
    return False


def _union(a: IdentifierSets, b: IdentifierSets) -> IdentifierSets:
    return {t: a.get(t, set()) | b.get(t, set()) for t in a.keys() | b.keys()}

"""From scored pairs to customers: deterministic rules first, then the model's links best
first, never one that would put two people's one-per-person identifiers together.

Connected components over every pair above a threshold chain households and look-alikes
into one customer; adding links in order of probability and refusing a link that would
give one customer two ``user_id`` values or two loyalty cards keeps each person whole and
apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from omnicdp.services.identity.linkage.comparisons import levenshtein

#: Exact identifiers that link records outright, in the order they apply.
RULE_TYPES = ("user_id", "crm_id", "loyalty_id", "email")
#: Of those, the ones a family shares (a family mailbox, the second holder of a card): they
#: link two records only when their first names and birth dates do not disagree.
SHARED_IN_FAMILIES = ("loyalty_id", "email")
#: Identifiers a person has at most one of: a customer never holds two.
ONE_PER_PERSON = ("user_id", "loyalty_id")
#: The features that tell two members of a family apart.
PERSONAL_FEATURES = ("first_canon", "last", "dob")


@dataclass
class Clusters:
    """Each record's cluster (``root``), and the probability of the link that placed it:
    1.0 for a rule, the model's probability for a model link, ``None`` when alone."""

    root: list[int]
    placed_by: list[float | None]

    def labels(self, record_ids: Sequence[str]) -> list[str]:
        """Each record's customer id: the smallest record id of its cluster, so that the
        same clusters get the same ids whatever the order of the work."""
        smallest: dict[int, str] = {}
        for index, root in enumerate(self.root):
            current = smallest.get(root)
            if current is None or record_ids[index] < current:
                smallest[root] = record_ids[index]
        return [smallest[root] for root in self.root]


class Forest:
    """Union-find over records ``0..n-1`` that keeps, per cluster, the values of the
    one-per-person identifiers it holds (``held``: one column of values per type)."""

    def __init__(self, held: Sequence[Sequence[str | None]]) -> None:
        count = len(held[0]) if held else 0
        self.held = held
        self.parent = list(range(count))
        # Per root that has been linked, the one-per-person values its cluster holds (one
        # per ONE_PER_PERSON type, None when none); a record alone holds its own.
        self.values: dict[int, tuple[str | None, ...]] = {}
        self.placed_by: list[float | None] = [None] * count

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def _values(self, root: int) -> tuple[str | None, ...]:
        values = self.values.get(root)
        return values if values is not None else tuple(column[root] for column in self.held)

    def union(self, a: int, b: int) -> None:
        """Join two clusters whatever they hold (links the rules made stand)."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        merged = tuple(x if x is not None else y
                       for x, y in zip(self._values(ra), self._values(rb), strict=True))
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.values[ra] = merged
        self.values.pop(rb, None)

    def link(self, a: int, b: int, probability: float) -> bool:
        """Join the clusters of ``a`` and ``b`` unless they would hold two values of a
        one-per-person identifier. True when they are (now) one cluster."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        merged = []
        for x, y in zip(self._values(ra), self._values(rb), strict=True):
            if x is not None and y is not None and x != y:
                return False
            merged.append(x if x is not None else y)
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.values[ra] = tuple(merged)
        self.values.pop(rb, None)
        for index in (a, b):
            if self.placed_by[index] is None or self.placed_by[index] < probability:
                self.placed_by[index] = probability
        return True


def same_person_possible(a: Mapping[str, str | None], b: Mapping[str, str | None]) -> bool:
    """Whether two records' first names and birth dates allow them to be one person
    (missing values allow anything; names within two edits, also when first and last
    name are swapped; a birth date one digit off or with day and month swapped)."""
    first_a, first_b = a.get("first_canon"), b.get("first_canon")
    if first_a and first_b and first_a != first_b and levenshtein(first_a, first_b) > 2 \
            and not (first_a == b.get("last") and first_b == a.get("last")):
        return False
    dob_a, dob_b = a.get("dob"), b.get("dob")
    return not (dob_a and dob_b and dob_a != dob_b and levenshtein(dob_a, dob_b) > 1
                and not (dob_a[:4] == dob_b[:4] and dob_a[5:7] == dob_b[8:10]
                         and dob_a[8:10] == dob_b[5:7]))


def cluster(identifiers: Mapping[str, Sequence[str | None]],
            pairs: Iterable[tuple[int, int, float]], threshold: float) -> Clusters:
    """Cluster records ``0..n-1``.

    ``identifiers`` holds, per type of :data:`RULE_TYPES`, each record's normalised value
    (``None`` when absent or a placeholder), and each of :data:`PERSONAL_FEATURES`.
    ``pairs`` are the model's scored pairs ``(a, b, probability)``; those at or above
    ``threshold`` are tried best first (ties in record order, so the result does not depend
    on the order pairs come in).
    """
    forest = Forest([identifiers[t] for t in ONE_PER_PERSON])

    def personal(index: int) -> dict[str, str | None]:
        return {f: identifiers[f][index] for f in PERSONAL_FEATURES}

    for id_type in RULE_TYPES:
        guarded = id_type in SHARED_IN_FAMILIES
        holders: dict[str, list[int]] = {}
        for index, value in enumerate(identifiers[id_type]):
            if value is None:
                continue
            known = holders.setdefault(value, [])
            # The first earlier holder this record may be the same person as; a record
            # that may be none of them (a spouse) starts a holder of its own.
            holder = next((h for h in known if not guarded
                           or same_person_possible(personal(h), personal(index))), None)
            if holder is None or not forest.link(holder, index, 1.0):
                known.append(index)
    for a, b, p in sorted(((min(a, b), max(a, b), p) for a, b, p in pairs if p >= threshold),
                          key=lambda pair: (-pair[2], pair[0], pair[1])):
        forest.link(a, b, p)
    return Clusters([forest.find(i) for i in range(len(forest.parent))], forest.placed_by)

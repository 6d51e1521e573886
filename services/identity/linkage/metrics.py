"""Pairwise quality of a clustering against the truth: of all pairs of records put in one
customer, the share that are one person (precision), and of all pairs that are one person,
the share put together (recall)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Quality:
    precision: float
    recall: float
    f1: float
    customers: int
    persons: int

    def to_dict(self) -> dict[str, float]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4),
                "f1": round(self.f1, 4), "customers": self.customers, "persons": self.persons}


def pairwise_quality(assigned: Mapping[str, str], truth: Mapping[str, str]) -> Quality:
    """Pairwise precision, recall and F1 of records put together (``assigned``: record ->
    customer) against the true persons (record -> person), over records in both."""
    ids = [r for r in assigned if r in truth]
    cells = Counter((assigned[r], truth[r]) for r in ids)
    predicted = sum(math.comb(n, 2) for n in Counter(assigned[r] for r in ids).values())
    actual = sum(math.comb(n, 2) for n in Counter(truth[r] for r in ids).values())
    together = sum(math.comb(n, 2) for n in cells.values())
    precision = together / predicted if predicted else 1.0
    recall = together / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Quality(precision, recall, f1, len({assigned[r] for r in ids}),
                   len({truth[r] for r in ids}))

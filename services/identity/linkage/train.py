"""Training a linkage model on a person table, and what it is judged by: with true labels,
pairwise precision, recall and F1 of the batch link at the threshold; without, its
agreement with the silver groups."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from omnicdp.services.identity.linkage import engine
from omnicdp.services.identity.linkage.batch import link_frame, silver_agreement
from omnicdp.services.identity.linkage.metrics import pairwise_quality
from omnicdp.services.identity.linkage.model import (
    DEFAULT_PLACEHOLDER_NAMES,
    DEFAULT_THRESHOLD,
    LinkageModel,
)
from omnicdp.services.identity.linkage.table import Review, features_frame

Progress = Callable[[str], None]


@dataclass
class TrainingResult:
    model: LinkageModel
    params: dict[str, object]
    metrics: dict[str, float]
    labelled: bool  # metrics against true labels (else: agreement with silver labels)
    seconds: float
    stats: dict[str, float] = field(default_factory=dict)


def train_table(table: pd.DataFrame, *, labels: Mapping[str, str] | None = None,
                threshold: float = DEFAULT_THRESHOLD, seed: int = 42,
                max_u_pairs: int = 1_000_000,
                placeholder_names: int = DEFAULT_PLACEHOLDER_NAMES,
                progress: Progress | None = None,
                reviews: Sequence[Review] = ()) -> TrainingResult:
    """Train on ``table`` (``table.read_person_table``) and evaluate the result on it.

    ``labels`` (record id -> person) turns the evaluation into precision, recall and F1
    against the truth; ``reviews`` (reviewers' decisions on pairs of records) correct the
    silver labels m is learnt from."""
    report = progress or (lambda message: None)
    started = time.perf_counter()
    report(f"features of {len(table)} records")
    frame, placeholders = features_frame(table, placeholder_names)
    model, stats = engine.train(frame, seed=seed, max_u_pairs=max_u_pairs,
                                threshold=threshold, placeholder_names=placeholder_names,
                                progress=report, reviews=reviews)
    train_seconds = time.perf_counter() - started
    report("evaluating: linking the training table")
    result = link_frame(frame, model, threshold=threshold, progress=report)
    assigned = dict(zip(result.links["record_id"], result.links["customer_id"], strict=True))
    if labels:
        quality = pairwise_quality(assigned, labels)
    else:
        quality = silver_agreement(result.links, frame)
    prefix = "" if labels else "silver_"
    metrics = {f"{prefix}precision": quality.precision, f"{prefix}recall": quality.recall,
               f"{prefix}f1": quality.f1, "customers": float(quality.customers),
               "train_seconds": train_seconds, "placeholders": float(placeholders),
               "pairs_above_threshold": float(result.pairs_scored)}
    params: dict[str, object] = {"records": len(table), "threshold": threshold, "seed": seed,
                                 "max_u_pairs": max_u_pairs,
                                 "placeholder_names": placeholder_names,
                                 "m_from": "silver labels", "u_from": "one record per group",
                                 "prior": stats["prior"], "reviews": len(reviews)}
    return TrainingResult(model, params, metrics, bool(labels),
                          time.perf_counter() - started, stats)

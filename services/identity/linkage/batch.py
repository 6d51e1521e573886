"""Batch linking of a person table: features, Splink's scores of every blocked pair (DuckDB
or Spark), then rules and the model's links clustered into customers.

    links = link_table(table, LinkageModel.load_default())
    # record_id, customer_id, match_probability: one row per input record
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from omnicdp.services.identity.linkage import engine
from omnicdp.services.identity.linkage.cluster import cluster
from omnicdp.services.identity.linkage.metrics import Quality, pairwise_quality
from omnicdp.services.identity.linkage.model import LinkageModel
from omnicdp.services.identity.linkage.table import (
    LINK_COLUMNS,
    features_frame,
    rule_identifiers,
    silver_groups,
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LinkResult:
    links: pd.DataFrame  # LINK_COLUMNS, one row per input record, in input order
    pairs_scored: int  # pairs at or above the threshold
    placeholders: int  # e-mails and phones found to be placeholders


def link_table(table: pd.DataFrame, model: LinkageModel, *, threshold: float | None = None,
               backend: str = "duckdb", progress: Progress | None = None) -> LinkResult:
    """Link a person table (``table.read_person_table``) into customers."""
    report = progress or (lambda message: None)
    threshold = model.threshold if threshold is None else threshold
    report(f"features of {len(table)} records")
    frame, placeholders = features_frame(table, model.placeholder_names)
    return link_frame(frame, model, threshold=threshold, backend=backend, progress=report,
                      placeholders=placeholders)


def link_frame(frame: pd.DataFrame, model: LinkageModel, *, threshold: float,
               backend: str = "duckdb", progress: Progress | None = None,
               placeholders: int = 0) -> LinkResult:
    """Link a features frame (``table.features_frame``)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    report = progress or (lambda message: None)
    report(f"scoring blocked pairs on {backend}")
    with engine.database(backend) as db_api:
        pairs = engine.predict(db_api, frame, model, threshold)
    report(f"clustering: rules, then {len(pairs)} links best first")
    record_ids = frame["unique_id"].tolist()
    index = {record_id: i for i, record_id in enumerate(record_ids)}
    scored = zip(pairs["unique_id_l"].map(index).tolist(),
                 pairs["unique_id_r"].map(index).tolist(),
                 pairs["match_probability"].astype(float).tolist(), strict=True)
    clusters = cluster(rule_identifiers(frame), scored, threshold)
    links = pd.DataFrame({
        "record_id": record_ids,
        "customer_id": clusters.labels(record_ids),
        "match_probability": clusters.placed_by,
    }, columns=list(LINK_COLUMNS))
    return LinkResult(links, len(pairs), placeholders)


def silver_agreement(links: pd.DataFrame, frame: pd.DataFrame) -> Quality:
    """Without true labels: how the customers agree with the silver groups (records the
    rules join), scored as :func:`pairwise_quality` with each silver group as a person."""
    groups = silver_groups(frame)
    silver = {r: (f"g{g}" if g is not None else f"r{r}")
              for r, g in zip(frame["unique_id"].tolist(), groups, strict=True)}
    return pairwise_quality(dict(zip(links["record_id"], links["customer_id"], strict=True)),
                            silver)

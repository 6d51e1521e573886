"""Splink, on DuckDB or Spark: training the comparison levels, and scoring every blocked
pair of a table in batch.

Training does not run expectation maximisation, which drifts on retail data (it learns that
a third of true matches have different user ids). Instead:

- **u** is estimated by random sampling over *one record per silver group*: with a few
  records per person, random pairs that share an e-mail or a card are mostly true matches,
  so sampling all records inflates u for near-unique identifiers;
- **m** is estimated from the silver labels (records sharing a user id, loyalty card,
  e-mail or CRM id), which did as well as the true labels;
- the prior is the share of pairs the silver groups hold.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd

from omnicdp.services.identity.linkage.comparisons import splink_comparisons
from omnicdp.services.identity.linkage.features import BLOCKING_KEYS, FEATURE_COLUMNS
from omnicdp.services.identity.linkage.model import (
    DEFAULT_PLACEHOLDER_NAMES,
    DEFAULT_THRESHOLD,
    FORMAT,
    LinkageModel,
)
from omnicdp.services.identity.linkage.table import Review, silver_groups

BACKENDS = ("duckdb", "spark")
SPLINK_COLUMNS = ("unique_id", *FEATURE_COLUMNS, *BLOCKING_KEYS)
# A level no training pair fell into gets this many pseudo-pairs, so its weight is finite
# and modest rather than infinite.
_PSEUDO_PAIRS = 1.0

Progress = Callable[[str], None]


def base_settings(prior: float = 1e-4) -> dict[str, Any]:
    """Splink settings of the model, untrained."""
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": prior,
        "comparisons": splink_comparisons(),
        "blocking_rules_to_generate_predictions": [
            {"blocking_rule": f"l.{key} = r.{key}", "sql_dialect": "duckdb"}
            for key in BLOCKING_KEYS],
        "retain_matching_columns": False,
        "retain_intermediate_calculation_columns": False,
        "sql_dialect": "duckdb",
    }


@contextmanager
def database(backend: str) -> Iterator[Any]:
    """A Splink database API: DuckDB in memory, or Spark in local mode."""
    if backend == "duckdb":
        from splink import DuckDBAPI

        yield DuckDBAPI()
        return
    if backend != "spark":
        raise ValueError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    from pyspark.sql import SparkSession
    from splink import SparkAPI

    spark = (SparkSession.builder.master("local[2]").appName("cdp-identity-link")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "2")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "2g")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        # The comparisons use Spark's own levenshtein: no similarity UDF jar to register.
        yield SparkAPI(spark_session=spark, break_lineage_method="persist",
                       register_udfs_automatically=False)
    finally:
        spark.stop()


def _linker(table: Any, settings: dict[str, Any]) -> Any:
    """Splink's linker, telling only warnings (our own progress says what it does)."""
    from splink import Linker

    return Linker(table, settings, log_level=logging.WARNING)


def _register(db_api: Any, frame: pd.DataFrame, name: str) -> Any:
    # Explicit string columns: an all-null column would otherwise arrive as DOUBLE.
    columns = list(SPLINK_COLUMNS) + [c for c in frame.columns if c not in SPLINK_COLUMNS]
    if type(db_api).__name__ == "SparkAPI":
        from pyspark.sql.types import StringType, StructField, StructType

        schema = StructType([StructField(c, StringType(), True) for c in columns])
        rows = frame[columns].astype(object).where(frame[columns].notna(), None)
        return db_api.register(db_api.spark.createDataFrame(rows.values.tolist(), schema),
                               table_name=name)
    import pyarrow as pa

    # Arrow string arrays straight from the values: pandas' astype("string") costs about
    # 7 µs a cell (0.7 s for 100k records).
    return db_api.register(pa.table({c: pa.array(frame[c].tolist(), type=pa.string(),
                                                 from_pandas=True) for c in columns}),
                           table_name=name)


def train(frame: pd.DataFrame, *, seed: int = 42, max_u_pairs: int = 1_000_000,
          threshold: float = DEFAULT_THRESHOLD,
          placeholder_names: int = DEFAULT_PLACEHOLDER_NAMES,
          progress: Progress | None = None,
          reviews: Sequence[Review] = ()) -> tuple[LinkageModel, dict[str, float]]:
    """Train on a features frame (``table.features_frame``); returns the model and what
    training saw (pair counts, the prior). Reviewers' decisions (``reviews``) correct the
    silver labels."""
    from splink import DuckDBAPI

    report = progress or (lambda message: None)
    groups = silver_groups(frame, reviews)
    labelled = frame.assign(silver=[str(g) if g is not None else None for g in groups])
    representatives = labelled[~labelled["silver"].duplicated() | labelled["silver"].isna()]
    n = len(frame)
    silver_pairs = sum(math.comb(size, 2) for size in
                       labelled["silver"].value_counts(dropna=True).tolist())
    prior = min(max(silver_pairs / max(math.comb(n, 2), 1), 1e-9), 0.5)

    report(f"estimating u on {len(representatives)} records, one per silver group")
    u_linker = _linker(_register(DuckDBAPI(), representatives.drop(columns="silver"), "reps"),
                      base_settings(prior))
    u_linker.training.estimate_u_using_random_sampling(max_pairs=max_u_pairs, seed=seed)
    u_model = u_linker.misc.save_model_to_json()

    report(f"estimating m from {silver_pairs} pairs in silver groups")
    m_linker = _linker(_register(DuckDBAPI(), labelled, "records"), base_settings(prior))
    m_linker.training.estimate_m_from_label_column("silver")
    trained = m_linker.misc.save_model_to_json()

    u_pairs = min(max_u_pairs, math.comb(len(representatives), 2))
    for comparison, u_comparison in zip(trained["comparisons"], u_model["comparisons"],
                                        strict=True):
        for level, u_level in zip(comparison["comparison_levels"],
                                  u_comparison["comparison_levels"], strict=True):
            if level.get("is_null_level"):
                continue
            level["u_probability"] = _smoothed(u_level.get("u_probability"), u_pairs)
            level["m_probability"] = _smoothed(level.get("m_probability"), silver_pairs)
    trained["probability_two_random_records_match"] = prior
    document = {"format": FORMAT, "threshold": threshold,
                "placeholder_names": placeholder_names, "splink": trained}
    stats = {"records": n, "silver_groups": int(labelled["silver"].nunique()),
             "silver_pairs": silver_pairs, "u_records": len(representatives),
             "u_pairs": u_pairs, "prior": prior}
    return LinkageModel(document), stats


def _smoothed(probability: float | None, pairs: int) -> float:
    """A probability that is never 0: a level unseen in ``pairs`` pairs gets the weight of
    a fraction of one pair."""
    floor = _PSEUDO_PAIRS / (pairs + 1)
    if probability is None or not math.isfinite(probability) or probability <= 0:
        return floor
    return max(float(probability), floor)


def predict(db_api: Any, frame: pd.DataFrame, model: LinkageModel,
            threshold: float) -> pd.DataFrame:
    """Every blocked pair scoring ``threshold`` or more: ``unique_id_l``, ``unique_id_r``,
    ``match_probability``."""
    linker = _linker(_register(db_api, frame, "records"), model.splink_settings)
    scored = linker.inference.predict(threshold_match_probability=threshold)
    columns = ["unique_id_l", "unique_id_r", "match_probability"]
    pairs = scored.as_pyarrow_table().select(columns).to_pandas()
    scored.drop_table_from_database_and_remove_from_cache()
    return pairs

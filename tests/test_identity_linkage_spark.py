"""Batch linking on Splink's Spark backend (Spark in local mode) gives the same customers as
on DuckDB."""

from __future__ import annotations

from pathlib import Path

from omnicdp.services.identity.linkage.batch import link_table
from omnicdp.services.identity.linkage.model import LinkageModel
from omnicdp.services.identity.linkage.table import read_person_table
from omnicdp.synth import generate_retailer


def test_spark_gives_the_same_clusters_as_duckdb(tmp_path: Path) -> None:
    generate_retailer(120, 13, tmp_path)
    table = read_person_table(tmp_path / "persons.csv")
    model = LinkageModel.load_default()
    duckdb = link_table(table, model, backend="duckdb")
    spark = link_table(table, model, backend="spark")
    assert spark.pairs_scored == duckdb.pairs_scored > 0
    assert spark.links.equals(duckdb.links)
    assert duckdb.links["customer_id"].nunique() < len(table)  # something was linked

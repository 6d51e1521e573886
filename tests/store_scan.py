"""Every row of every table of the services' stores, as text: what an erasure test scans
for a person's data."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import psycopg


def rows_as_text(database_url: str, data_dir: Path,
                 stores: Sequence[str] = ("profile", "identity")) -> Iterator[tuple[str, str]]:
    """(table, row as text) for every row of every table of the stores: the schemas of
    that name in PostgreSQL (``database_url``), else the DuckDB files in ``data_dir``."""
    if database_url:
        with psycopg.connect(database_url) as conn:
            tables = conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema = ANY(%s)", [list(stores)]).fetchall()
            assert len(tables) > 5 * len(stores)
            for schema, table in tables:
                for (text,) in conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t'):
                    yield f"{schema}.{table}", text
        return
    for store in stores:
        # The services hold the files open: a connection in the same process shares them.
        conn = duckdb.connect(str(data_dir / f"{store}.duckdb"))
        try:
            tables = [t for (t,) in conn.execute(
                "SELECT table_name FROM duckdb_tables()").fetchall()]
            assert len(tables) > 4
            for table in tables:
                for row in conn.execute(f'SELECT * FROM "{table}"').fetchall():
                    yield f"{store}.duckdb:{table}", str(row)
        finally:
            conn.close()

"""What the services' SQL stores share (``omnicdp.core.sql``)."""

from __future__ import annotations

import duckdb

from omnicdp.core.sql import DuckDBSession, duckdb_statement


def test_duckdb_statements_write_lists_as_literals_and_bind_the_rest() -> None:
    sql, params = duckdb_statement(
        "SELECT 1 FROM t WHERE a = ANY(%s) AND b = %s AND c = ANY(%s) AND d = ANY(%s)",
        [["x", "it's"], 5, [1, 2], []])
    assert sql == ("SELECT 1 FROM t WHERE a IN ('x', 'it''s') AND b = ? AND c IN (1, 2) "
                   "AND d IN (NULL)")
    assert params == [5]
    connection = duckdb.connect()
    connection.execute("CREATE TABLE t (a VARCHAR)")
    connection.execute("INSERT INTO t VALUES ('it''s'), ('x'), ('y')")
    session = DuckDBSession(connection)
    assert sorted(session.fetch("SELECT a FROM t WHERE a = ANY(%s)", [["it's", "y", "z"]])) == [
        ("it's",), ("y",)]
    assert session.fetch("SELECT a FROM t WHERE a = ANY(%s)", [[]]) == []

"""What the services' SQL stores share (``omnicdp.core.sql``)."""

from __future__ import annotations

import duckdb

from omnicdp.core.sql import DuckDBSession, duckdb_statement, update_mapped


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


def test_update_mapped_sets_each_key_its_value_and_leaves_the_rest() -> None:
    connection = duckdb.connect()
    connection.execute("CREATE TABLE m (k VARCHAR PRIMARY KEY, v VARCHAR)")
    connection.execute("CREATE INDEX m_by_v ON m (v)")
    connection.execute("INSERT INTO m VALUES ('a', 'x'), ('b', 'x'), ('c', 'y'), ('d', 'z')")
    session = DuckDBSession(connection)
    update_mapped(session, "m", "v", "v", {"x": "X", "z": "it's"})
    assert sorted(session.fetch("SELECT k, v FROM m")) == [
        ("a", "X"), ("b", "X"), ("c", "y"), ("d", "it's")]
    update_mapped(session, "m", "v", "v", {})  # nothing to do
    assert len(session.fetch("SELECT * FROM m")) == 4

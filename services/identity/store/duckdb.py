"""The identity graph on embedded DuckDB (the interface is ``base.py``, the SQL ``sql.py``).

DuckDB allows one read-write process per file, so transactions run one at a time in this
process (``omnicdp.core.sql.DuckDBDatabase``). Each batch loads what it needs through
indexed lookups and writes its delta in bulk; being the only writer, the store keeps what
batches loaded in a bounded cache (``cache.py``) written through on commit, since DuckDB's
point lookups cost tens of microseconds each.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from omnicdp.core.sql import DuckDBDatabase, Session
from omnicdp.services.identity.store.cache import GraphCache
from omnicdp.services.identity.store.graph import GraphSource, GraphTransaction
from omnicdp.services.identity.store.sql import SqlGraphSource, SqlIdentityStore

T = TypeVar("T")


class DuckDBIdentityStore(SqlIdentityStore):
    """Records, links, customers and the change log in one DuckDB file (or memory)."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:",
                 cache_customers: int = 50_000) -> None:
        self.cache = GraphCache(cache_customers)
        self._db = DuckDBDatabase(path, "identity")
        try:
            with self._db.session() as session:
                self._migrate(session)
        except BaseException:
            self._db.close()
            raise

    @property
    def _conn(self):  # noqa: ANN202 (the DuckDB connection; tests make its COMMIT fail)
        return self._db.connection

    @_conn.setter
    def _conn(self, connection) -> None:  # noqa: ANN001
        self._db.connection = connection

    def _session(self, write: bool) -> AbstractContextManager[Session]:
        return self._db.session()

    def _run(self, work: Callable[[Session], T], write: bool = False) -> T:
        # A write the cache cannot follow (unmerge, a split, erasure) empties it.
        try:
            return super()._run(work, write)
        finally:
            if write:
                self.cache.clear()

    def _run_graph(self, attempt: Callable[[Session], T]) -> T:
        try:
            return super()._run(attempt, write=True)
        except BaseException:
            self.cache.clear()  # loads are committed state, but be sure after a failure
            raise

    def _graph_source(self, session: Session) -> GraphSource:
        return self.cache.source(SqlGraphSource(session))

    def _graph_committed(self, graph: GraphTransaction) -> None:
        self.cache.committed(graph)

    def _next_seqs(self, session: Session, count: int) -> list[int]:
        # One transaction at a time, so the next numbers follow the committed maximum.
        last = self._last_seq(session)
        return list(range(last + 1, last + 1 + count))

    def close(self) -> None:
        self._db.close()

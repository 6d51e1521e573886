"""The identity graph on embedded DuckDB (the interface is ``base.py``, the SQL ``sql.py``).

DuckDB allows one read-write process per file, so transactions run one at a time in this
process (``omnicdp.core.sql.DuckDBDatabase``). Nothing is held in memory between them:
each batch loads what it needs through indexed lookups and writes its delta in bulk.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

from omnicdp.core.sql import DuckDBDatabase, Session
from omnicdp.services.identity.store.sql import SqlIdentityStore


class DuckDBIdentityStore(SqlIdentityStore):
    """Records, links, customers and the change log in one DuckDB file (or memory)."""

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
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

    def _next_seqs(self, session: Session, count: int) -> list[int]:
        # One transaction at a time, so the next numbers follow the committed maximum.
        last = self._last_seq(session)
        return list(range(last + 1, last + 1 + count))

    def close(self) -> None:
        self._db.close()

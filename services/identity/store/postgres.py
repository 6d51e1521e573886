"""The identity graph on PostgreSQL, for several identity replicas on one database.

Every write transaction runs SERIALIZABLE, so two replicas resolving batches that touch the
same customers cannot both decide on a stale view: the one PostgreSQL aborts is run again
from the start, loads afresh and decides again (``omnicdp.core.sql.PostgresDatabase.run``).
The change log is numbered from a sequence while holding a transaction-level advisory lock
until commit, so numbers are handed out in commit order: a consumer that has read up to N
never misses an entry below N that commits later (rolled-back numbers leave harmless gaps).
Tables live in the schema ``identity``, beside other services' in the same database.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from omnicdp.core.sql import PostgresDatabase, Session
from omnicdp.services.identity.store.sql import MIGRATIONS, SqlIdentityStore

T = TypeVar("T")

SCHEMA = "identity"
_MIGRATION_LOCK = 7_142_101
_CHANGE_LOG_LOCK = 7_142_102


class PostgresIdentityStore(SqlIdentityStore):
    """Records, links, customers and the change log in PostgreSQL (schema ``identity``)."""

    def __init__(self, url: str, max_connections: int = 8) -> None:
        self._db = PostgresDatabase(url, SCHEMA, "identity", max_connections)
        try:
            self._db.setup(SCHEMA, _MIGRATION_LOCK, MIGRATIONS, before=(
                f"CREATE SEQUENCE IF NOT EXISTS {SCHEMA}.change_seq AS BIGINT",))
        except BaseException:
            self._db.close()
            raise

    def _session(self, write: bool) -> AbstractContextManager[Session]:
        return self._db.session("SERIALIZABLE" if write else "REPEATABLE READ")

    def _run(self, work: Callable[[Session], T], write: bool = False) -> T:
        return self._db.run(work, "SERIALIZABLE" if write else "REPEATABLE READ")

    def _next_seqs(self, session: Session, count: int) -> list[int]:
        session.execute("SELECT pg_advisory_xact_lock(%s)", [_CHANGE_LOG_LOCK])
        return [row[0] for row in session.fetch(
            "SELECT nextval('change_seq') FROM generate_series(1, %s)", [count])]

    def close(self) -> None:
        self._db.close()

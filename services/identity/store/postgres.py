"""The identity graph on PostgreSQL, for several identity replicas on one database.

Writers take one transaction-level advisory lock, so the graph changes one transaction at a
time across replicas (each replica still normalises, reads and answers in parallel). A batch
reads the holders of about a thousand identifiers; PostgreSQL's serializable isolation keeps
at most a few dozen predicate locks per relation and transaction before it promotes them to
one on the whole table (``max_pred_locks_per_relation``), so two concurrent batches would
abort each other whatever they touched, and retrying would only serialise them with wasted
work. The lock is taken at a write transaction's first statement and each later statement
runs READ COMMITTED, so it sees every earlier writer's commit: the writes form a serial
schedule. Reads run REPEATABLE READ, one consistent snapshot each.
The change log is numbered from a sequence by the one writer, so numbers follow commit order: a
consumer that has read up to N never misses an entry below N that commits later (rolled-back
numbers leave harmless gaps).
Tables live in the schema ``identity``, beside other services' in the same database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from omnicdp.core.sql import PostgresDatabase, Session
from omnicdp.services.identity.store.sql import SqlIdentityStore, migrations

T = TypeVar("T")

SCHEMA = "identity"
_MIGRATION_LOCK = 7_142_101
_WRITERS_LOCK = 7_142_103
#: PostgreSQL's SQL for ``omnicdp.core.digests.sha256_hex`` of a text (its UTF-8 bytes,
#: hex in lower case).
SHA256_HEX = "encode(sha256(convert_to({}, 'UTF8')), 'hex')"


class PostgresIdentityStore(SqlIdentityStore):
    """Records, links, customers and the change log in PostgreSQL (schema ``identity``)."""

    def __init__(self, url: str, max_connections: int = 8) -> None:
        self._db = PostgresDatabase(url, SCHEMA, "identity", max_connections)
        try:
            self._db.setup(SCHEMA, _MIGRATION_LOCK, migrations(SHA256_HEX), before=(
                f"CREATE SEQUENCE IF NOT EXISTS {SCHEMA}.change_seq AS BIGINT",))
        except BaseException:
            self._db.close()
            raise

    @contextmanager
    def _session(self, write: bool) -> Iterator[Session]:
        with self._db.session("READ COMMITTED" if write else "REPEATABLE READ") as session:
            if write:
                _one_writer(session)
            yield session

    def _run(self, work: Callable[[Session], T], write: bool = False) -> T:
        if not write:
            return self._db.run(work, "REPEATABLE READ")

        def serially(session: Session) -> T:
            _one_writer(session)
            return work(session)
        return self._db.run(serially, "READ COMMITTED")

    def _next_seqs(self, session: Session, count: int) -> list[int]:
        return [row[0] for row in session.fetch(
            "SELECT nextval('change_seq') FROM generate_series(1, %s)", [count])]

    def close(self) -> None:
        self._db.close()


def _one_writer(session: Session) -> None:
    """Wait for the graph's other writers, in every replica, to commit."""
    session.execute("SELECT pg_advisory_xact_lock(%s)", [_WRITERS_LOCK])

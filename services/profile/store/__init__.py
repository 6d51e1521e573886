"""Storage backends of the profile service, chosen by database URL."""

from __future__ import annotations

from pathlib import Path

from omnicdp.services.profile.golden import TraitPolicy
from omnicdp.services.profile.store.base import ProfileStore

__all__ = ["ProfileStore", "open_store"]


def open_store(database_url: str, data_dir: Path,
               policy: TraitPolicy | None = None) -> ProfileStore:
    """``duckdb:///path/file.duckdb`` (empty: ``DATA_DIR/profile.duckdb``), ``duckdb://:memory:``,
    or ``postgresql://user@host:5432/db`` for several replicas; ``policy`` chooses the
    golden records' trait values."""
    if not database_url:
        database_url = f"duckdb:///{data_dir / 'profile.duckdb'}"
    if database_url.startswith("duckdb://"):
        from omnicdp.services.profile.store.duckdb import DuckDBProfileStore

        path = database_url.removeprefix("duckdb://")
        return DuckDBProfileStore(":memory:" if path == ":memory:" else path, policy)
    if database_url.startswith(("postgresql://", "postgres://")):
        from omnicdp.services.profile.store.postgres import PostgresProfileStore

        return PostgresProfileStore(database_url, policy=policy)
    scheme = database_url.split(":", 1)[0]
    raise SystemExit(f"unsupported database URL scheme {scheme!r}: "
                     "use duckdb:///PATH or postgresql://USER@HOST/DB")

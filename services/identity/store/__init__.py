"""Storage of the identity graph: the interface (``base``) and its backends, chosen by URL."""

from __future__ import annotations

from pathlib import Path

from omnicdp.services.identity.store.base import IdentityStore

__all__ = ["IdentityStore", "open_store"]


def open_store(database_url: str, data_dir: Path, cache_customers: int = 50_000,
               memory_limit: str = "512MB") -> IdentityStore:
    """``duckdb:///path/file.duckdb`` (empty: ``DATA_DIR/identity.duckdb``),
    ``duckdb://:memory:``, or ``postgresql://user@host:5432/db`` for several replicas.
    ``cache_customers`` bounds the embedded store's cache (PostgreSQL has several writers
    and caches nothing); ``memory_limit`` bounds DuckDB's buffer pool."""
    if not database_url:
        database_url = f"duckdb:///{data_dir / 'identity.duckdb'}"
    if database_url.startswith("duckdb://"):
        from omnicdp.services.identity.store.duckdb import DuckDBIdentityStore

        return DuckDBIdentityStore(database_url.removeprefix("duckdb://"), cache_customers,
                                   memory_limit)
    if database_url.startswith(("postgresql://", "postgres://")):
        from omnicdp.services.identity.store.postgres import PostgresIdentityStore

        return PostgresIdentityStore(database_url)
    scheme = database_url.split(":", 1)[0]
    raise SystemExit(f"identity: unsupported database URL scheme {scheme!r}; "
                     "use duckdb:///PATH or postgresql://USER@HOST/DB")

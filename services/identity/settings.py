"""Settings of the identity service (flags and ``CDP_*`` variables)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omnicdp.core.settings import setting


@dataclass(frozen=True)
class Settings:
    address: str = setting("127.0.0.1:50051", "CDP_ADDRESS", "host:port to listen on")
    data_dir: Path = setting(Path(".cdp"), "CDP_DATA_DIR", "directory for embedded data")
    database_url: str = setting(
        "", "CDP_DATABASE_URL",
        "duckdb:///FILE (default DATA_DIR/identity.duckdb) or postgresql://USER@HOST/DB",
        secret=True)
    default_region: str = setting("RU", "CDP_DEFAULT_REGION",
                                  "region for phone numbers without a country code")
    placeholder_threshold: int = setting(
        20, "CDP_PLACEHOLDER_THRESHOLD",
        "an e-mail or phone seen with this many different first names or birth dates stops "
        "linking customers")
    blocked_values: str = setting(
        "", "CDP_BLOCKED_VALUES",
        "file of the retailer's own placeholder values, beside the built-in ones: one regular "
        "expression per line matching a whole normalised value, TYPE:PATTERN for one "
        "identifier type (e.g. email:.*@store\\.example\\.ru); such values never link")
    cache_customers: int = setting(
        50_000, "CDP_CACHE_CUSTOMERS",
        "customers the embedded (DuckDB) store keeps in memory between batches, with their "
        "identifiers and records; 0 turns the cache off")
    duckdb_memory: str = setting(
        "512MB", "CDP_DUCKDB_MEMORY",
        "the embedded store's DuckDB buffer pool (e.g. 512MB, 2GB): its indexes live in it, "
        "so a store of a million records and more needs about 2GB")
    linking: str = setting(
        "model", "CDP_LINKING",
        "model: exact identifiers first, then the champion linkage model (the packaged "
        "default until one is promoted); rules: exact identifiers only")
    tracking_uri: str = setting(
        "", "CDP_MLFLOW_TRACKING_URI",
        "MLflow tracking URI of the model registry (default: SQLite in DATA_DIR, as `cdp "
        "identity` uses)", secret=True)
    model_poll_seconds: float = setting(
        60.0, "CDP_MODEL_POLL_SECONDS",
        "how often each replica asks the registry whether another version became champion, "
        "and loads it (as ReloadModel does); 0: only on ReloadModel")
    review_band: str = setting(
        "0.5,0.99", "CDP_REVIEW_BAND",
        "LOW,HIGH: model links and near misses with a probability in [LOW, HIGH) are listed "
        "for review")
    grace_seconds: float = setting(10.0, "CDP_GRACE_SECONDS",
                                   "seconds in-flight calls get on shutdown")

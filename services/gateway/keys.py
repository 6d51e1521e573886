"""API keys: loaded from the keys file (PRODUCT.md), kept only as SHA-256 digests, each with
scopes and a per-minute rate limit enforced by a token bucket."""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SCOPES = frozenset({"events:write", "profiles:read", "profiles:erase", "audiences:read",
                    "reports:read"})
DEFAULT_RATE_LIMIT = 6000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class ApiKey:
    name: str
    sha256: str
    scopes: frozenset[str]
    rate_limit_per_minute: int
    _tokens: float = field(default=0.0, repr=False)
    _updated: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.rate_limit_per_minute)
        self._updated = time.monotonic()

    def take(self, lock: threading.Lock) -> float:
        """Spend one request; 0 when allowed, else the seconds until one is allowed."""
        with lock:
            now = time.monotonic()
            rate = self.rate_limit_per_minute / 60.0
            self._tokens = min(self.rate_limit_per_minute,
                               self._tokens + (now - self._updated) * rate)
            self._updated = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / rate


class KeyFileError(ValueError):
    pass


class ApiKeys:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._by_digest = {k.sha256: k for k in keys}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_digest)

    @classmethod
    def load(cls, path: Path) -> ApiKeys:
        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise KeyFileError(f"cannot read API keys file {path}: {exc}") from exc
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise KeyFileError(f"{path}: expected a top-level 'keys:' list")
        keys = []
        for i, entry in enumerate(entries):
            where = f"{path}: keys[{i}]"
            if not isinstance(entry, dict) or not entry.get("name"):
                raise KeyFileError(f"{where}: each key needs a 'name'")
            given_key, given_digest = entry.get("key"), entry.get("sha256")
            if (given_key is None) == (given_digest is None):
                raise KeyFileError(f"{where}: give exactly one of 'key' or 'sha256'")
            if isinstance(given_digest, int):  # YAML reads an all-digit digest as a number
                given_digest = f"{given_digest:064d}"
            hashed = (digest(str(given_key)) if given_digest is None
                      else str(given_digest).lower())
            if not _HEX64.match(hashed):
                raise KeyFileError(f"{where}: sha256 must be 64 hex digits")
            scopes = entry.get("scopes") or []
            unknown = set(scopes) - SCOPES
            if unknown:
                raise KeyFileError(f"{where}: unknown scopes {sorted(unknown)}; "
                                   f"known: {sorted(SCOPES)}")
            limit = entry.get("rate_limit_per_minute", DEFAULT_RATE_LIMIT)
            if not isinstance(limit, int) or limit <= 0:
                raise KeyFileError(f"{where}: rate_limit_per_minute must be a positive integer")
            keys.append(ApiKey(str(entry["name"]), hashed, frozenset(scopes), limit))
        return cls(keys)

    def authenticate(self, presented: str) -> ApiKey | None:
        return self._by_digest.get(digest(presented)) if presented else None

    def throttle(self, key: ApiKey) -> int:
        """0 when the request may go on, else Retry-After in whole seconds."""
        wait = key.take(self._lock)
        return math.ceil(wait) if wait > 0 else 0

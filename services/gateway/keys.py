"""API keys: loaded from the keys file (PRODUCT.md), kept only as SHA-256 digests, each with
scopes, a per-minute rate limit (enforced by ``admission.py``) and optionally the event
sources it may write."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from omnicdp.core.digests import sha256_hex

SCOPES = frozenset({"events:write", "profiles:read", "profiles:erase", "audiences:read",
                    "audiences:write", "reports:read"})
DEFAULT_RATE_LIMIT = 6000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ApiKey:
    name: str
    sha256: str
    scopes: frozenset[str]
    rate_limit_per_minute: int
    #: The event ``source`` values this key may write; None: any.
    sources: frozenset[str] | None = None

    def source_problem(self, source: str | None) -> str | None:
        """Why this key may not write an event of ``source``, or None when it may."""
        if self.sources is None or source in self.sources:
            return None
        return f"this API key may write only the sources {', '.join(sorted(self.sources))}"


class KeyFileError(ValueError):
    pass


class ApiKeys:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._by_digest = {k.sha256: k for k in keys}

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
            hashed = (sha256_hex(str(given_key)) if given_digest is None
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
            sources = entry.get("sources")
            if sources is not None and (
                    not isinstance(sources, list) or not sources
                    or not all(isinstance(s, str) and s for s in sources)):
                raise KeyFileError(f"{where}: sources must be a non-empty list of source "
                                   "names (leave it out to allow any source)")
            keys.append(ApiKey(str(entry["name"]), hashed, frozenset(scopes), limit,
                               None if sources is None else frozenset(sources)))
        return cls(keys)

    def authenticate(self, presented: str) -> ApiKey | None:
        return self._by_digest.get(sha256_hex(presented)) if presented else None

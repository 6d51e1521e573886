"""Settings of the gateway (flags and ``CDP_*`` variables)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omnicdp.core.settings import setting


@dataclass(frozen=True)
class Settings:
    http_host: str = setting("127.0.0.1", "CDP_HTTP_HOST", "HTTP interface to bind")
    http_port: int = setting(8080, "CDP_HTTP_PORT", "HTTP port (0 picks a free one)")
    api_keys: Path = setting(Path(".cdp/api-keys.yaml"), "CDP_API_KEYS", "API keys file (YAML)")
    profile_addr: str = setting("127.0.0.1:50052", "CDP_PROFILE_ADDR",
                                "host:port of the profile service")
    identity_addr: str = setting("127.0.0.1:50051", "CDP_IDENTITY_ADDR",
                                 "host:port of the identity service")
    attribution_addr: str = setting("127.0.0.1:50053", "CDP_ATTRIBUTION_ADDR",
                                    "host:port of the attribution service")
    deadline_seconds: float = setting(10.0, "CDP_DEADLINE_SECONDS", "deadline of every gRPC call")
    max_body_bytes: int = setting(1024 * 1024, "CDP_MAX_BODY_BYTES",
                                  "largest request body accepted")
    grace_seconds: float = setting(10.0, "CDP_GRACE_SECONDS",
                                   "seconds in-flight requests get on shutdown")

"""Settings of the gateway (flags and ``CDP_*`` variables)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from omnicdp.core.settings import setting
from omnicdp.core.vocabulary import MAX_BODY_BYTES


@dataclass(frozen=True)
class Settings:
    http_host: str = setting("127.0.0.1", "CDP_HTTP_HOST", "HTTP interface to bind")
    http_port: int = setting(8080, "CDP_HTTP_PORT", "HTTP port (0 picks a free one)")
    http_fd: int = setting(-1, "CDP_HTTP_FD",
                           "serve on this inherited listening socket instead (cdp up)")
    api_keys: Path = setting(Path(".cdp/api-keys.yaml"), "CDP_API_KEYS", "API keys file (YAML)")
    profile_addr: str = setting("127.0.0.1:50052", "CDP_PROFILE_ADDR",
                                "host:port of the profile service")
    identity_addr: str = setting("127.0.0.1:50051", "CDP_IDENTITY_ADDR",
                                 "host:port of the identity service")
    attribution_addr: str = setting("127.0.0.1:50053", "CDP_ATTRIBUTION_ADDR",
                                    "host:port of the attribution service")
    deadline_seconds: float = setting(10.0, "CDP_DEADLINE_SECONDS", "deadline of every gRPC call")
    audience_deadline_seconds: float = setting(
        120.0, "CDP_AUDIENCE_DEADLINE_SECONDS",
        "deadline of defining and refreshing an audience (every customer is evaluated)")
    max_body_bytes: int = setting(MAX_BODY_BYTES, "CDP_MAX_BODY_BYTES",
                                  "largest request body accepted")
    header_timeout_seconds: float = setting(
        10.0, "CDP_HEADER_TIMEOUT_SECONDS",
        "a connection's request headers must arrive within this (else it is closed)")
    body_timeout_seconds: float = setting(30.0, "CDP_BODY_TIMEOUT_SECONDS",
                                          "a request body must arrive within this (else 408)")
    idle_timeout_seconds: float = setting(5.0, "CDP_IDLE_TIMEOUT_SECONDS",
                                          "an idle keep-alive connection is closed after this")
    max_connections: int = setting(1000, "CDP_MAX_CONNECTIONS",
                                   "open connections beyond this are closed at once")
    max_in_flight: int = setting(16, "CDP_MAX_IN_FLIGHT",
                                 "requests in flight beyond this get 503 with Retry-After")
    max_in_flight_per_key: int = setting(
        8, "CDP_MAX_IN_FLIGHT_PER_KEY",
        "requests in flight of one API key beyond this get 429 with Retry-After")
    redis_url: str = setting(
        "", "CDP_REDIS_URL",
        "redis://HOST:PORT/DB to share rate limits across replicas (default: per process)",
        secret=True)
    rate_limit_prefix: str = setting("cdp", "CDP_RATE_LIMIT_PREFIX",
                                     "prefix of the rate-limit keys in Redis")
    grace_seconds: float = setting(10.0, "CDP_GRACE_SECONDS",
                                   "seconds in-flight requests get on shutdown")
    cors_origins: str = setting(
        "", "CDP_CORS_ORIGINS",
        "comma-separated origins (e.g. https://shop.example.ru) whose pages may send to the "
        "Segment endpoints (analytics.js); * for any; none by default")

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())

    def validate(self) -> None:
        for origin in self.cors_origin_list:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise SystemExit(f"invalid origin {origin!r} in --cors-origins / "
                                 "CDP_CORS_ORIGINS: expected scheme://host[:port], e.g. "
                                 "https://shop.example.ru, or *")


_ORIGIN = re.compile(r"https?://[^/?#\s:]+(:\d{1,5})?")

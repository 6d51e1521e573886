"""Who may come in, and how many at once: per-key rate limits (shared by every replica
through Redis when a Redis URL is set, else per process), per-key and total caps on
requests in flight, and the ``RateLimit-*`` headers that tell a partner its quota.

Rate limits are the well-kept ``limits`` library's sliding-window counters: at most
``rate_limit_per_minute`` requests in any minute, counted in one Redis for all replicas. If
Redis does not answer, the gateway counts in memory instead (and logs it) rather than turn
partners away: ingestion matters more than an exact limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from starlette.requests import Request

from omnicdp.services.gateway.keys import ApiKey, ApiKeys
from omnicdp.services.gateway.problems import ProblemError, body_of

log = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 0.5
_WARN_EVERY_SECONDS = 30.0


@dataclass(frozen=True)
class Quota:
    """A key's rate-limit state after a request: allowed or not, and what the
    ``RateLimit-*`` headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        headers = {"RateLimit-Limit": str(self.limit),
                   "RateLimit-Remaining": str(self.remaining),
                   "RateLimit-Reset": str(self.reset_seconds)}
        if not self.allowed:
            headers["Retry-After"] = str(max(1, self.reset_seconds))
        return headers


class RateLimiter:
    """Per-key sliding-window rate limits in Redis (``redis_url``) or in memory."""

    def __init__(self, redis_url: str = "", key_prefix: str = "cdp") -> None:
        self._memory = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._shared: SlidingWindowCounterRateLimiter | None = None
        if redis_url:
            uri = redis_url if redis_url.startswith("async+") else f"async+{redis_url}"
            storage = storage_from_string(uri, key_prefix=f"{key_prefix}:ratelimit")
            assert isinstance(storage, Storage)
            self._shared = SlidingWindowCounterRateLimiter(storage)
        self._warned_at = -math.inf

    @property
    def shared(self) -> bool:
        return self._shared is not None

    async def hit(self, key: ApiKey) -> Quota:
        item = RateLimitItemPerMinute(key.rate_limit_per_minute)
        if self._shared is not None:
            try:
                async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
                    return await self._hit(self._shared, item, key)
            except Exception as error:  # noqa: BLE001 (any Redis failure: count locally)
                now = time.monotonic()
                if now - self._warned_at > _WARN_EVERY_SECONDS:
                    self._warned_at = now
                    log.warning("rate limits counted in memory: Redis failed with %s",
                                type(error).__name__)
        return await self._hit(self._memory, item, key)

    @staticmethod
    async def _hit(limiter: SlidingWindowCounterRateLimiter, item: Any, key: ApiKey) -> Quota:
        allowed = await limiter.hit(item, key.sha256)
        stats = await limiter.get_window_stats(item, key.sha256)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return Quota(allowed, key.rate_limit_per_minute, max(0, stats.remaining), reset)


class InFlight:
    """Requests in flight per key, capped (event-loop only: no lock needed)."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._counts: Counter[str] = Counter()

    def enter(self, key: ApiKey) -> bool:
        if self._counts[key.sha256] >= self.per_key:
            return False
        self._counts[key.sha256] += 1
        return True

    def leave(self, key: ApiKey) -> None:
        self._counts[key.sha256] -= 1
        if self._counts[key.sha256] <= 0:
            del self._counts[key.sha256]


class Gate:
    """Whether a request with the key ``presented`` may go on, checked in this order: a
    known key (401), the operation's scope (403), the key's rate limit (429), its requests
    in flight (429). The quota is left in the request state for the ``RateLimit-*``
    headers."""

    def __init__(self, keys: ApiKeys, limiter: RateLimiter, in_flight: InFlight) -> None:
        self.keys, self.limiter, self.in_flight = keys, limiter, in_flight

    @asynccontextmanager
    async def admit(self, request: Request, presented: str | None, scope: str,
                    unauthenticated: ProblemError) -> AsyncIterator[ApiKey]:
        """The key, admitted for the request's lifetime (its in-flight slot is freed on
        exit); raises ``unauthenticated`` for a missing or unknown key."""
        key = self.keys.authenticate(presented) if presented else None
        if key is None:
            raise unauthenticated
        if scope not in key.scopes:
            raise ProblemError(403, "PERMISSION_DENIED", f"this API key lacks the scope '{scope}'")
        quota = await self.limiter.hit(key)
        request.state.quota = quota
        if not quota.allowed:
            raise ProblemError(429, "RATE_LIMITED",
                               f"rate limit of {key.rate_limit_per_minute}/min exceeded",
                               headers=quota.headers())
        if not self.in_flight.enter(key):
            raise ProblemError(429, "TOO_MANY_CONCURRENT_REQUESTS",
                               f"at most {self.in_flight.per_key} requests of one key at once",
                               headers={**quota.headers(), "Retry-After": "1"})
        try:
            yield key
        finally:
            self.in_flight.leave(key)


class Admission:
    """ASGI middleware: caps the requests in flight in total (health checks exempt, so a
    busy gateway still answers its probes at once), answering 503 with Retry-After beyond
    the cap; and adds the ``RateLimit-*`` headers the key check left in the request state.
    """

    def __init__(self, app: Any, max_in_flight: int,
                 exempt: frozenset[str] = frozenset({"/healthz", "/readyz"}),
                 segment_paths: Collection[str] = ()) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.exempt = exempt
        self.segment_paths = segment_paths
        self.in_flight = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await _overloaded(send, segment=scope["path"] in self.segment_paths)
            return
        state = scope.setdefault("state", {})

        async def send_with_quota(message: dict) -> None:
            quota = state.get("quota")
            if message["type"] == "http.response.start" and quota is not None:
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in quota.headers().items()
                         if k.lower().encode() not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, receive, send_with_quota)
        finally:
            self.in_flight -= 1


async def _overloaded(send: Any, segment: bool) -> None:
    body = json.dumps(body_of(ProblemError(
        503, "OVERLOADED", "too many requests in flight; retry after a second"),
        segment)).encode()
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/problem+json"), (b"retry-after", b"1"),
        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})

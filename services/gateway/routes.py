"""The partner-facing HTTP/JSON API. Every handler checks the key and its scope, then calls a
service through its client (deadline included); the services' domain errors become
problem+json (``problems.py``).

No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations at
run time, and they name ``require(...)``, a closure of ``create_app``."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from omnicdp.core import jsonvalues
from omnicdp.core.vocabulary import (
    IDENTIFIER_TYPES,
    MAX_BATCH_EVENTS,
    MAX_BODY_BYTES,
    MAX_EVENT_BYTES,
)
from omnicdp.services.attribution.client import MODELS, AttributionClient
from omnicdp.services.gateway import bodies, conversions, openapi, problems, schemas
from omnicdp.services.gateway.admission import Admission, InFlight, RateLimiter
from omnicdp.services.gateway.keys import ApiKey, ApiKeys
from omnicdp.services.gateway.problems import ProblemError
from omnicdp.services.identity.client import IdentityClient
from omnicdp.services.profile.client import EventIn, ProfileClient


@dataclass
class Backends:
    """The services behind the gateway, each through its client."""

    profile: ProfileClient
    attribution: AttributionClient
    identity: IdentityClient  # only for readiness: the profile service calls it

    @classmethod
    def connect(cls, profile_addr: str, identity_addr: str, attribution_addr: str,
                deadline: float) -> "Backends":
        return cls(ProfileClient(profile_addr, deadline),
                   AttributionClient(attribution_addr, deadline),
                   IdentityClient(identity_addr, deadline))

    def health(self) -> dict[str, str]:
        return {"profile": self.profile.health(), "identity": self.identity.health(),
                "attribution": self.attribution.health()}

    def close(self) -> None:
        for client in (self.profile, self.attribution, self.identity):
            client.close()


def _event(raw: Any, key: ApiKey) -> tuple[EventIn | None, list[dict[str, str]]]:
    """One event of a batch, checked alone: its JSON values' limits, its size, its schema,
    and whether ``key`` may write its source; it is recorded as sent by ``key``."""
    limits = jsonvalues.value_violations(raw, "")
    if limits:
        return None, [{"field": v.field or "event", "description": v.description}
                      for v in limits]
    if len(json.dumps(raw, ensure_ascii=False).encode()) > MAX_EVENT_BYTES:
        return None, [{"field": "event", "description": f"larger than {MAX_EVENT_BYTES} bytes"}]
    try:
        event = schemas.Event.model_validate(raw)
    except ValidationError as error:
        return None, [{"field": ".".join(str(p) for p in e["loc"]) or "event",
                       "description": e["msg"]} for e in error.errors()]
    problem = key.source_problem(event.source)
    if problem:
        return None, [{"field": "source", "description": problem}]
    return conversions.event_in(event, sent_by=key.name), []


async def _read_body(request: Request, max_bytes: int, timeout: float) -> bytes:
    """The body, read as it streams in: past ``max_bytes`` it is refused at once (a chunked
    body has no Content-Length to check first), and a body that takes longer than
    ``timeout`` seconds is refused too."""
    too_large = ProblemError(413, "PAYLOAD_TOO_LARGE", f"at most {max_bytes} bytes")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise ProblemError(408, "REQUEST_TIMEOUT",
                           f"the body must arrive within {timeout:g} seconds") from None
    return b"".join(chunks)


def create_app(keys: ApiKeys, backends: Backends, max_body_bytes: int = MAX_BODY_BYTES,
               body_timeout: float = 30.0, rate_limiter: RateLimiter | None = None,
               max_in_flight: int = 16, max_in_flight_per_key: int = 8) -> FastAPI:
    app = FastAPI(
        title="omnicdp partner API",
        version="1.0.0",
        description="Send customer events, read unified profiles and journeys, get reports. "
                    "Authenticate with `Authorization: Bearer <api key>`. Errors are "
                    "`application/problem+json` with a stable `code`.",
    )
    problems.install(app)
    openapi.complete(app)

    limiter = rate_limiter or RateLimiter()
    in_flight = InFlight(max_in_flight_per_key)
    app.add_middleware(Admission, max_in_flight=max_in_flight)

    def require(scope: str):
        async def check(request: Request) -> AsyncIterator[ApiKey]:
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            key = keys.authenticate(token.strip()) if scheme.lower() == "bearer" else None
            if key is None:
                raise ProblemError(401, "UNAUTHENTICATED",
                                   "send a valid API key as 'Authorization: Bearer <key>'",
                                   headers={"WWW-Authenticate": "Bearer"})
            if scope not in key.scopes:
                raise ProblemError(403, "PERMISSION_DENIED",
                                   f"this API key lacks the scope '{scope}'")
            quota = await limiter.hit(key)
            request.state.quota = quota
            if not quota.allowed:
                raise ProblemError(429, "RATE_LIMITED",
                                   f"rate limit of {key.rate_limit_per_minute}/min exceeded",
                                   headers=quota.headers())
            if not in_flight.enter(key):
                raise ProblemError(429, "TOO_MANY_CONCURRENT_REQUESTS",
                                   f"at most {in_flight.per_key} requests of one key at once",
                                   headers={**quota.headers(), "Retry-After": "1"})
            try:
                yield key
            finally:
                in_flight.leave(key)
        return Depends(check)

    @app.post("/v1/events", response_model=schemas.IngestResponse, tags=["events"],
              response_model_exclude_unset=True,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"$ref": openapi.BATCH_SCHEMA_REF}}}}},
              responses=openapi.problems(400, 401, 403, 408, 413, 422, 429, 500, 503, 504))
    async def post_events(request: Request, key: Annotated[ApiKey, require("events:write")]):
        """Store a batch of events (at most 500 and 500 KB; an event at most 32 KB). Each
        event is accepted, a duplicate of an earlier message_id (stored once), or rejected
        alone with the failing fields named. Each event is recorded as sent by the API key's
        name (`sent_by` in the journey); a key limited to some sources rejects an event of
        any other `source` (or none)."""
        body = await _read_body(request, max_body_bytes, body_timeout)
        try:
            document = bodies.parse(body)
        except bodies.MalformedBody as error:
            raise ProblemError(400, "MALFORMED_JSON", str(error)) from None
        raw_events = document.get("events") if isinstance(document, dict) else None
        if not isinstance(raw_events, list):
            raise ProblemError(422, "INVALID_ARGUMENT", "a list of events is required", [
                {"field": "events", "description": "a list of events is required"}])
        if len(raw_events) > MAX_BATCH_EVENTS:
            raise ProblemError(413, "TOO_MANY_EVENTS", f"at most {MAX_BATCH_EVENTS} per batch",
                               [{"field": "events",
                                 "description": f"{len(raw_events)} events sent"}])
        results: list[dict[str, Any] | None] = [None] * len(raw_events)
        valid: list[tuple[int, EventIn]] = []
        for i, raw in enumerate(raw_events):
            event, violations = _event(raw, key)
            if event is None:
                message_id = raw.get("message_id") if isinstance(raw, dict) else None
                results[i] = conversions.rejected_json(message_id, violations)
            else:
                valid.append((i, event))
        if valid:
            # The gRPC call blocks: run it off the event loop (the trace context goes along).
            stored = await run_in_threadpool(backends.profile.ingest, [e for _, e in valid])
            for (i, _), result in zip(valid, stored, strict=True):
                results[i] = conversions.result_json(result)
        counts = {s: sum(1 for r in results if r and r["status"] == s)
                  for s in ("accepted", "duplicate", "rejected")}
        return {"accepted": counts["accepted"], "duplicates": counts["duplicate"],
                "rejected": counts["rejected"], "results": results}

    @app.get("/v1/profiles:lookup", response_model=schemas.Profile, tags=["profiles"],
             responses=openapi.problems(400, 401, 403, 404, 422, 429, 500, 503, 504))
    def lookup_profile(
        _key: Annotated[ApiKey, require("profiles:read")],
        type: Annotated[str, Query(description="the identifier's name",
                                   json_schema_extra={"enum": list(IDENTIFIER_TYPES)})],
        value: Annotated[str, Query(min_length=1, max_length=256)],
    ):
        """Find a profile by any identifier (normalised as on ingestion)."""
        if type not in IDENTIFIER_TYPES:
            raise ProblemError(422, "INVALID_ARGUMENT", "unknown identifier type", [{
                "field": "type", "description": f"one of {', '.join(IDENTIFIER_TYPES)}"}])
        return conversions.profile_json(backends.profile.lookup_profile(type, value))

    @app.get("/v1/profiles/{customer_id}", response_model=schemas.Profile, tags=["profiles"],
             responses=openapi.problems(400, 401, 403, 404, 429, 500, 503, 504))
    def get_profile(customer_id: str, _key: Annotated[ApiKey, require("profiles:read")]):
        """The unified profile of a customer; merged ids resolve to the surviving profile."""
        return conversions.profile_json(backends.profile.get_profile(customer_id))

    @app.get("/v1/profiles/{customer_id}/events", response_model=schemas.EventPage,
             tags=["profiles"],
             responses=openapi.problems(400, 401, 403, 404, 422, 429, 500, 503, 504))
    def get_journey(customer_id: str, _key: Annotated[ApiKey, require("profiles:read")],
                    page_size: Annotated[int, Query(ge=0, le=1000)] = 100,
                    page_token: str = ""):
        """The customer journey: every event of the customer, oldest first, paginated."""
        events, token = backends.profile.journey(customer_id, page_size, page_token)
        # Rendered here, in the worker thread: a page can be megabytes of JSON, and the
        # event loop must stay free for health probes and other requests.
        return JSONResponse({"events": [conversions.stored_event_json(e) for e in events],
                             "next_page_token": token})

    @app.get("/v1/reports/attribution", response_model=schemas.AttributionReport,
             tags=["reports"], responses=openapi.problems(401, 403, 422, 429, 500, 503, 504))
    def attribution_report(
        _key: Annotated[ApiKey, require("reports:read")],
        model: Annotated[str, Query(description="the attribution model",
                                    json_schema_extra={"enum": list(MODELS)})] = "last_touch",
        lookback_days: Annotated[int, Query(ge=1, le=365)] = 30,
    ):
        """Conversions and revenue credited to channels, online and offline."""
        if model not in MODELS:
            raise ProblemError(422, "INVALID_ARGUMENT", "unknown attribution model", [
                {"field": "model", "description": f"one of {', '.join(MODELS)}"}])
        return conversions.report_json(backends.attribution.run(model, lookback_days))

    @app.get("/healthz", tags=["health"], response_model=schemas.Health)
    async def healthz():
        """Liveness: the gateway process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=schemas.Readiness,
             responses=openapi.not_ready())
    async def readyz():
        """Readiness: every service behind the gateway reports SERVING."""
        # Off the request thread pool, so busy handlers cannot delay the probe.
        states = await asyncio.to_thread(backends.health)
        if all(s == "SERVING" for s in states.values()):
            return JSONResponse({"status": "ready", "services": states})
        return JSONResponse({"type": "about:blank", "title": "Service Unavailable",
                             "status": 503, "code": "NOT_READY",
                             "detail": "a service behind the gateway is not serving",
                             "services": states}, status_code=503, media_type=problems.PROBLEM)

    return app

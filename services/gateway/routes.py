"""The partner-facing HTTP/JSON API. Every handler checks the key and its scope, then calls a
service through its client (deadline included); the services' domain errors become
problem+json (``problems.py``).

No ``from __future__ import annotations`` here: FastAPI reads the handlers' annotations at
run time, and they name ``require(...)``, a closure of ``create_app``."""

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from omnicdp.core.vocabulary import IDENTIFIER_TYPES, MAX_BATCH_EVENTS, MAX_BODY_BYTES
from omnicdp.services.attribution.client import MODELS, AttributionClient
from omnicdp.services.gateway import (
    bodies,
    conversions,
    openapi,
    problems,
    schemas,
    segment,
    segment_routes,
)
from omnicdp.services.gateway.admission import Admission, Gate, InFlight, RateLimiter
from omnicdp.services.gateway.cors import CorsOnPaths
from omnicdp.services.gateway.ingest import check_event, ingest
from omnicdp.services.gateway.keys import ApiKey, ApiKeys
from omnicdp.services.gateway.problems import ProblemError
from omnicdp.services.identity.client import IdentityClient
from omnicdp.services.profile.client import AudienceClient, Profile, ProfileClient


@dataclass
class Backends:
    """The services behind the gateway, each through its client."""

    profile: ProfileClient
    attribution: AttributionClient
    identity: IdentityClient  # only for readiness: the profile service calls it
    audiences: AudienceClient  # the profile service's AudienceService

    @classmethod
    def connect(cls, profile_addr: str, identity_addr: str, attribution_addr: str,
                deadline: float,
                evaluate_deadline: float = AudienceClient.EVALUATE_DEADLINE) -> "Backends":
        """Clients whose calls have ``deadline``; defining and refreshing an audience, which
        evaluate every customer, have ``evaluate_deadline``."""
        return cls(ProfileClient(profile_addr, deadline),
                   AttributionClient(attribution_addr, deadline),
                   IdentityClient(identity_addr, deadline),
                   AudienceClient(profile_addr, deadline, evaluate_deadline))

    def health(self) -> dict[str, str]:
        return {"profile": self.profile.health(), "identity": self.identity.health(),
                "attribution": self.attribution.health()}

    def close(self) -> None:
        for client in (self.profile, self.attribution, self.identity, self.audiences):
            client.close()


# How long a report request waits for the report before answering 202 with its operation:
# well within a partner's usual 10 s timeout.
REPORT_WAIT_SECONDS = 5.0

UNAUTHENTICATED = ProblemError(401, "UNAUTHENTICATED",
                               "send a valid API key as 'Authorization: Bearer <key>'",
                               headers={"WWW-Authenticate": "Bearer"})


def profile_response(profile: Profile) -> JSONResponse:
    """A profile as the reads answer it: ``conversions.profile_json`` builds exactly the
    documented ``schemas.Profile`` (the routes keep it as their response model for OpenAPI),
    so it is sent as is; FastAPI's validation and serialisation of the returned value again
    were a tenth of the gateway's work for a lookup."""
    return JSONResponse(conversions.profile_json(profile))


def create_app(keys: ApiKeys, backends: Backends, max_body_bytes: int = MAX_BODY_BYTES,
               body_timeout: float = 30.0, rate_limiter: RateLimiter | None = None,
               max_in_flight: int = 16, max_in_flight_per_key: int = 8,
               cors_origins: Sequence[str] = ()) -> FastAPI:
    app = FastAPI(
        title="omnicdp partner API",
        version="1.0.0",
        description="Send customer events, read unified profiles and journeys, get reports. "
                    "Authenticate with `Authorization: Bearer <api key>`. Errors are "
                    "`application/problem+json` with a stable `code`. Existing analytics "
                    "SDKs send to the Segment HTTP tracking spec's endpoints (tag `segment`) "
                    "with a write key.",
    )
    problems.install(app, segment.PATHS)
    openapi.complete(app)

    gate = Gate(keys, rate_limiter or RateLimiter(), InFlight(max_in_flight_per_key))
    app.add_middleware(Admission, max_in_flight=max_in_flight, segment_paths=segment.PATHS)
    if cors_origins:  # outermost: even a refusal by admission reaches the page
        app.add_middleware(CorsOnPaths, paths=segment.PATHS, origins=cors_origins)

    def require(scope: str):
        async def check(request: Request) -> AsyncIterator[ApiKey]:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            presented = token.strip() if scheme.lower() == "bearer" else None
            async with gate.admit(request, presented, scope, UNAUTHENTICATED) as key:
                yield key
        return Depends(check)

    @app.post("/v1/events", response_model=schemas.IngestResponse, tags=["events"],
              response_model_exclude_unset=True,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"$ref": openapi.BATCH_SCHEMA_REF}}}}},
              responses=openapi.problems(400, 401, 403, 408, 413, 415, 422, 429, 500, 503,
                                         504))
    async def post_events(request: Request, key: Annotated[ApiKey, require("events:write")]):
        """Store a batch of events (at most 500 and 500 KB; an event at most 32 KB). Each
        event is accepted, a duplicate of an earlier message_id (stored once), or rejected
        alone with the failing fields named. Each event is recorded as sent by the API key's
        name (`sent_by` in the journey); a key limited to some sources rejects an event of
        any other `source` (or none)."""
        document = await bodies.read_json(request, max_body_bytes, body_timeout)
        raw_events = document.get("events") if isinstance(document, dict) else None
        if not isinstance(raw_events, list):
            raise ProblemError(422, "INVALID_ARGUMENT", "a list of events is required", [
                {"field": "events", "description": "a list of events is required"}])
        if len(raw_events) > MAX_BATCH_EVENTS:
            raise ProblemError(413, "TOO_MANY_EVENTS", f"at most {MAX_BATCH_EVENTS} per batch",
                               [{"field": "events",
                                 "description": f"{len(raw_events)} events sent"}])
        results = await ingest(backends.profile, [check_event(raw, key) for raw in raw_events])
        counts = {s: sum(1 for r in results if r["status"] == s)
                  for s in ("accepted", "duplicate", "rejected")}
        # Built as ``schemas.IngestResponse`` documents it (``conversions``): sent as is,
        # not validated and serialised again through the model, 500 results at a time.
        return JSONResponse({"accepted": counts["accepted"], "duplicates": counts["duplicate"],
                             "rejected": counts["rejected"], "results": results})

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
        return profile_response(backends.profile.lookup_profile(type, value))

    @app.get("/v1/profiles/{customer_id}", response_model=schemas.Profile, tags=["profiles"],
             responses=openapi.problems(400, 401, 403, 404, 429, 500, 503, 504))
    def get_profile(customer_id: str, _key: Annotated[ApiKey, require("profiles:read")]):
        """The unified profile of a customer; merged ids resolve to the surviving profile."""
        return profile_response(backends.profile.get_profile(customer_id))

    @app.delete("/v1/profiles/{customer_id}", response_model=schemas.Erasure,
                tags=["profiles"],
                responses=openapi.problems(400, 401, 403, 404, 422, 429, 500, 503, 504))
    def erase_profile(
        customer_id: str, key: Annotated[ApiKey, require("profiles:erase")],
        reason: Annotated[str, Query(
            min_length=1, max_length=256,
            description="Why, for the audit log, without personal data (e.g. a ticket "
                        "number).")] = "erasure requested through the partner API",
    ):
        """Erase a customer (152-FZ, GDPR art. 17): its events, identifiers, traits and
        consents here and its records in the identity graph. The audit log keeps who (the
        API key's name), which customer, when and the counts, never values; the hashed
        identifiers no other customer holds stay on a suppression list, so the person's
        later events build no profile (they are rejected, or accepted and dropped, as the
        service is set), while a family phone still brings the other holder's events."""
        return conversions.erasure_json(
            backends.profile.erase_profile(customer_id, key.name, reason))

    @app.put("/v1/profiles/{customer_id}/consents", response_model=schemas.Consents,
             tags=["profiles"],
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"$ref": openapi.CONSENT_UPDATE_REF}}}}},
             responses=openapi.problems(400, 401, 403, 404, 408, 413, 415, 422, 429, 500,
                                        503, 504))
    async def put_consents(customer_id: str,
                           request: Request, key: Annotated[ApiKey, require("events:write")]):
        """Record consent decisions per purpose and channel, with the legal basis and the
        proof's reference; answers the customer's current consents. The latest decision
        (by `updated_at`) per purpose and channel wins; every decision is kept
        (`GET .../consents/history`). Partners may send the same as `Consent Updated` track
        events."""
        document = await bodies.read_json(request, max_body_bytes, body_timeout)
        try:
            update = schemas.ConsentUpdate.model_validate(document)
        except ValidationError as error:
            raise ProblemError(422, "INVALID_ARGUMENT", "invalid consent decisions", [
                {"field": ".".join(str(p) for p in e["loc"]) or "body",
                 "description": e["msg"]} for e in error.errors()]) from None
        current = await run_in_threadpool(
            backends.profile.update_consents, customer_id,
            [replace(conversions.consent_in(d), source=d.source or key.name)
             for d in update.consents])
        return {"consents": [conversions.consent_json(c) for c in current]}

    @app.get("/v1/profiles/{customer_id}/consents", response_model=schemas.Consents,
             tags=["profiles"],
             responses=openapi.problems(400, 401, 403, 404, 429, 500, 503, 504))
    def get_consents(customer_id: str, _key: Annotated[ApiKey, require("profiles:read")]):
        """The customer's current consents: the latest decision per purpose and channel."""
        profile = backends.profile.get_profile(customer_id)
        return {"consents": [conversions.consent_json(c) for c in profile.consents]}

    @app.get("/v1/profiles/{customer_id}/consents/history", response_model=schemas.ConsentHistory,
             tags=["profiles"],
             responses=openapi.problems(400, 401, 403, 404, 422, 429, 500, 503, 504))
    def get_consent_history(customer_id: str,
                            _key: Annotated[ApiKey, require("profiles:read")],
                            page_size: Annotated[int, Query(ge=0, le=1000)] = 100,
                            page_token: str = ""):
        """Every consent decision of the customer, newest first, paginated."""
        decisions, token = backends.profile.consent_history(customer_id, page_size,
                                                            page_token)
        return {"consents": [conversions.consent_json(c) for c in decisions],
                "next_page_token": token}

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

    @app.get("/v1/customers/{customer_id}/scores", response_model=schemas.CustomerScores,
             tags=["profiles"],
             responses=openapi.problems(400, 401, 403, 404, 429, 500, 503, 504))
    def get_scores(customer_id: str, _key: Annotated[ApiKey, require("profiles:read")]):
        """The customer's computed scores (LTV, P(alive), ...), each with the model and
        version that computed it and when; a merged-away id answers the survivor's."""
        customer_id_now, scores = backends.profile.customer_scores(customer_id)
        return {"customer_id": customer_id_now, "scores": conversions.scores_json(scores)}

    audience_name = Annotated[str, Path(
        pattern=schemas.AUDIENCE_NAME_PATTERN,
        description="The audience's name: 2 to 64 lower-case letters, digits, - and _, "
                    "starting with a letter.")]

    @app.put("/v1/audiences/{name}", response_model=schemas.AudienceWritten,
             tags=["audiences"],
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"$ref": openapi.AUDIENCE_DEFINITION_REF}}}}},
             responses=openapi.problems(400, 401, 403, 408, 413, 415, 422, 429, 500, 503,
                                        504))
    async def put_audience(name: audience_name, request: Request,
                           _key: Annotated[ApiKey, require("audiences:write")]):
        """Define an audience, or redefine the one of this name: it is evaluated over every
        customer before the answer, which says how many joined and left. From then on its
        membership follows every ingested event, merge, consent decision and score within
        the call that changes it, and windows ("within N days") close on the periodic
        refresh. A bad definition is 400 with each failing field named."""
        document = await bodies.read_json(request, max_body_bytes, body_timeout)
        state = await run_in_threadpool(backends.audiences.put, name, document)
        return {**conversions.audience_json(state), "created": state.created,
                "joined": state.joined, "left": state.left}

    @app.get("/v1/audiences", response_model=schemas.AudienceList, tags=["audiences"],
             responses=openapi.problems(400, 401, 403, 422, 429, 500, 503, 504))
    def list_audiences(_key: Annotated[ApiKey, require("audiences:read")],
                       page_size: Annotated[int, Query(ge=0, le=1000)] = 100,
                       page_token: str = ""):
        """Every audience by name, with its rules and member count, paginated."""
        states, token = backends.audiences.list(page_size, page_token)
        return {"audiences": [conversions.audience_json(s) for s in states],
                "next_page_token": token}

    @app.get("/v1/audiences/{name}", response_model=schemas.Audience, tags=["audiences"],
             responses=openapi.problems(400, 401, 403, 404, 422, 429, 500, 503, 504))
    def get_audience(name: audience_name, _key: Annotated[ApiKey, require("audiences:read")]):
        """An audience's rules (and in words) and member count."""
        return conversions.audience_json(backends.audiences.get(name))

    @app.delete("/v1/audiences/{name}", response_model=schemas.AudienceDeleted,
                tags=["audiences"],
                responses=openapi.problems(400, 401, 403, 404, 422, 429, 500, 503, 504))
    def delete_audience(name: audience_name,
                        _key: Annotated[ApiKey, require("audiences:write")]):
        """Delete an audience with its members and the history of its membership."""
        backends.audiences.delete(name)
        return {"name": name, "deleted": True}

    @app.get("/v1/audiences/{name}/members", response_model=schemas.AudienceMembers,
             tags=["audiences"],
             responses=openapi.problems(400, 401, 403, 404, 422, 429, 500, 503, 504))
    def get_audience_members(
        name: audience_name, _key: Annotated[ApiKey, require("audiences:read")],
        page_size: Annotated[int, Query(ge=0, le=1000)] = 100, page_token: str = "",
        hash: Annotated[Literal["sha256"] | None, Query(
            description="`sha256`: e-mails and phones only, each the SHA-256 hex digest of "
                        "the normalised value (e-mail lower-cased and trimmed, phone in "
                        "E.164), as ad platforms match them; omitted: every identifier "
                        "raw.")] = None,
    ):
        """The audience's members by customer id, paginated, with their identifiers. A
        customer without the audience's required consent is never a member."""
        members, token = backends.audiences.members(name, page_size, page_token,
                                                    hashed=hash == "sha256")
        return JSONResponse({"audience": name, "hash": hash,
                             "members": [conversions.member_json(m) for m in members],
                             "next_page_token": token})

    @app.get("/v1/audiences/{name}/changes", response_model=schemas.AudienceChanges,
             tags=["audiences"],
             responses=openapi.problems(400, 401, 403, 404, 422, 429, 500, 503, 504))
    def get_audience_changes(name: audience_name,
                             _key: Annotated[ApiKey, require("audiences:read")],
                             page_size: Annotated[int, Query(ge=0, le=1000)] = 100,
                             page_token: str = ""):
        """Who joined and who left the audience, oldest first, with when and why."""
        changes, token = backends.audiences.changes(name, page_size, page_token)
        return {"changes": [conversions.audience_change_json(c) for c in changes],
                "next_page_token": token}

    @app.get("/v1/reports/attribution", response_model=schemas.AttributionReport,
             tags=["reports"],
             responses={**openapi.problems(401, 403, 409, 422, 429, 500, 503, 504),
                        **openapi.operation_running()})
    def attribution_report(
        _key: Annotated[ApiKey, require("reports:read")],
        model: Annotated[str, Query(description="the attribution model",
                                    json_schema_extra={"enum": list(MODELS)})] = "last_touch",
        lookback_days: Annotated[int, Query(ge=1, le=365)] = 30,
        post_view: Annotated[list[str] | None, Query(
            description="post-view window of a channel, `CHANNEL:DURATION` (repeatable; "
                        "`email:2d`, `ads:36h`, `push:90m`; a bare number is days)")] = None,
        event_post_view: Annotated[list[str] | None, Query(
            description="post-view window of a view event, before its channel's, "
                        "`EVENT:DURATION` (repeatable; `Ad Impression:12h`)")] = None,
        default_post_view: Annotated[str | None, Query(
            description="post-view window of channels without one (default 1d)")] = None,
        time_zone: Annotated[str, Query(
            description="business time zone of `start` and `end` given as dates or "
                        "without an offset (IANA name)")] = "Europe/Moscow",
        start: Annotated[str | None, Query(
            description="only conversions from this ISO date or time on")] = None,
        end: Annotated[str | None, Query(
            description="only conversions before this ISO date or time")] = None,
        markov_order: Annotated[int, Query(ge=1, le=6,
                                           description="memory of the Markov chain")] = 1,
        wait_seconds: Annotated[float, Query(
            ge=0, le=30, description="how long to wait for the report before answering "
                                     "202 with the operation to poll")] = REPORT_WAIT_SECONDS,
        mlflow: Annotated[bool, Query(
            description="log the run to the attribution service's MLflow store (experiment "
                        "cdp-attribution; its run id comes back as `mlflow_run_id`); 409 "
                        "when the service has none")] = False,
    ):
        """Conversions and revenue credited to channels, online and offline, each split by
        place (online, store), the customer's segment when touched and the touch type.

        The report is made as an operation that no deadline cuts: when it is not done within
        `wait_seconds`, the answer is 202 with the operation (`Location` names where to
        poll it) and the report comes from `GET /v1/reports/attribution/operations/{id}`."""
        if model not in MODELS:
            raise ProblemError(422, "INVALID_ARGUMENT", "unknown attribution model", [
                {"field": "model", "description": f"one of {', '.join(MODELS)}"}])
        options = conversions.report_options(post_view or [], event_post_view or [],
                                             default_post_view, time_zone, start, end)
        name = backends.attribution.start(model, lookback_days, markov_order=markov_order,
                                          log_to_mlflow=mlflow, **options)
        return _report_or_operation(name, wait_seconds)

    @app.get("/v1/reports/attribution/operations/{operation_id}",
             response_model=schemas.AttributionReport, tags=["reports"],
             responses={**openapi.problems(400, 401, 403, 404, 422, 429, 500, 503, 504),
                        **openapi.operation_running()})
    def attribution_operation(operation_id: str,
                              _key: Annotated[ApiKey, require("reports:read")]):
        """An attribution report started by `GET /v1/reports/attribution`: 200 with the
        report once done, 202 while it is being made."""
        return _report_or_operation(f"operations/{operation_id}", 0.0)

    def _report_or_operation(name: str, wait_seconds: float):
        until = time.monotonic() + wait_seconds
        pause = 0.05
        while True:
            report = backends.attribution.operation(name)
            if report is not None:
                return conversions.report_json(report)
            left = until - time.monotonic()
            if left <= 0:
                operation_id = name.removeprefix("operations/")
                return JSONResponse(
                    {"name": name, "done": False}, status_code=202,
                    headers={"Location": f"/v1/reports/attribution/operations/{operation_id}",
                             "Retry-After": "2"})
            time.sleep(min(pause, left))
            pause = min(pause * 2, 1.0)

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

    segment_routes.install(app, gate, backends.profile, max_body_bytes, body_timeout)
    return app

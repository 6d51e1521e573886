"""The partner-facing HTTP/JSON API. Every handler checks the key and its scope, then calls
a service through the generated gRPC stubs with a deadline; gRPC statuses become
problem+json responses."""


import json
import logging
from dataclasses import dataclass
from typing import Annotated, Any

import grpc
from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cdp.attribution.v1 import attribution_pb2, attribution_pb2_grpc
from cdp.common.v1 import common_pb2
from cdp.profile.v1 import profile_pb2, profile_pb2_grpc
from omnicdp import protoconv
from omnicdp.runtime.channels import open_channel
from omnicdp.vocabulary import IDENTIFIER_TYPES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES
from services.gateway import schemas
from services.gateway.keys import ApiKey, ApiKeys

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
_HTTP_FOR_GRPC = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class ProblemError(Exception):
    def __init__(self, status: int, title: str, detail: str | None = None,
                 errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.errors, self.headers = errors, headers or {}


def problem_response(error: ProblemError) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": error.title, "status": error.status}
    if error.detail:
        body["detail"] = error.detail
    if error.errors:
        body["errors"] = error.errors
    return JSONResponse(body, status_code=error.status, media_type=PROBLEM,
                        headers=error.headers)


def problem_from_rpc(error: grpc.RpcError) -> ProblemError:
    code = error.code()
    status = _HTTP_FOR_GRPC.get(code, 502)
    violations = []
    rich = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
    for detail in rich.details if rich else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [{"field": v.field, "description": v.description}
                           for v in bad.field_violations]
    headers = {"Retry-After": "1"} if status == 503 else None
    return ProblemError(status, code.name.replace("_", " ").capitalize(), error.details(),
                        violations or None, headers)


@dataclass
class Backends:
    """Stubs of the services the gateway calls, and the deadline every call gets."""

    profile: profile_pb2_grpc.ProfileServiceStub
    attribution: attribution_pb2_grpc.AttributionServiceStub
    health: dict[str, health_pb2_grpc.HealthStub]
    deadline: float
    channels: list[grpc.Channel]

    @classmethod
    def connect(cls, profile_addr: str, identity_addr: str, attribution_addr: str,
                deadline: float) -> "Backends":
        targets = {"profile": profile_addr, "identity": identity_addr,
                   "attribution": attribution_addr}
        channels = {name: open_channel(target) for name, target in targets.items()}
        return cls(
            profile=profile_pb2_grpc.ProfileServiceStub(channels["profile"]),
            attribution=attribution_pb2_grpc.AttributionServiceStub(channels["attribution"]),
            health={n: health_pb2_grpc.HealthStub(c) for n, c in channels.items()},
            deadline=deadline, channels=list(channels.values()))

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


def _event_to_proto(event: schemas.Event) -> common_pb2.Event:
    return common_pb2.Event(
        message_id=event.message_id,
        type=protoconv.event_type_value(event.type),
        event=event.event or "",
        channel=protoconv.channel_value(event.channel),
        source=event.source or "",
        timestamp=protoconv.timestamp_from_datetime(event.timestamp),
        identifiers=protoconv.identifiers_from_dict(event.identifiers.model_dump()),
        traits=protoconv.struct_from_dict(event.traits),
        properties=protoconv.struct_from_dict(event.properties),
    )


def _event_to_json(event: common_pb2.Event) -> dict[str, Any]:
    return {
        "message_id": event.message_id,
        "type": protoconv.event_type_name(event.type),
        "event": event.event or None,
        "channel": protoconv.channel_name(event.channel),
        "source": event.source or None,
        "timestamp": protoconv.rfc3339(protoconv.timestamp_to_datetime(event.timestamp)),
        "identifiers": protoconv.identifiers_to_dict(event.identifiers),
        "traits": protoconv.struct_to_dict(event.traits),
        "properties": protoconv.struct_to_dict(event.properties),
        "customer_id": event.customer_id,
        "received_at": protoconv.rfc3339(protoconv.timestamp_to_datetime(event.received_at)),
    }


def _profile_to_json(profile: profile_pb2.Profile) -> dict[str, Any]:
    identifiers: dict[str, list[str]] = {}
    for identifier in profile.identifiers:
        identifiers.setdefault(protoconv.identifier_type_name(identifier.type), []).append(
            identifier.value)
    return {
        "customer_id": profile.customer_id,
        "identifiers": identifiers,
        "traits": protoconv.struct_to_dict(profile.traits),
        "consents": [{
            "purpose": c.purpose, "channel": protoconv.channel_name(c.channel),
            "granted": c.granted, "source": c.source,
            "updated_at": protoconv.rfc3339(protoconv.timestamp_to_datetime(c.updated_at)),
        } for c in profile.consents],
        "first_seen": protoconv.rfc3339(protoconv.timestamp_to_datetime(profile.first_seen)),
        "last_seen": protoconv.rfc3339(protoconv.timestamp_to_datetime(profile.last_seen)),
        "event_count": profile.event_count,
        "scores": dict(profile.scores),
        "merged_customer_ids": list(profile.merged_customer_ids),
    }


def _violations(error: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in e["loc"]) or "event", "description": e["msg"]}
            for e in error.errors()]


def _rejected(message_id: Any, violations: list[dict[str, str]]) -> dict[str, Any]:
    return {"message_id": message_id if isinstance(message_id, str) else None,
            "status": "rejected",
            "error": "; ".join(f"{v['field']}: {v['description']}" for v in violations),
            "violations": violations}


_STATUS_NAMES = {
    profile_pb2.INGEST_STATUS_ACCEPTED: "accepted",
    profile_pb2.INGEST_STATUS_DUPLICATE: "duplicate",
    profile_pb2.INGEST_STATUS_REJECTED: "rejected",
}


def create_app(keys: ApiKeys, backends: Backends, max_body_bytes: int = 1024 * 1024) -> FastAPI:
    app = FastAPI(
        title="omnicdp partner API",
        version="1.0.0",
        description="Send customer events, read unified profiles and journeys, get reports. "
                    "Authenticate with `Authorization: Bearer <api key>`.",
    )

    @app.exception_handler(ProblemError)
    async def _problem(_request: Request, error: ProblemError) -> JSONResponse:
        return problem_response(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        violations = [{"field": ".".join(str(p) for p in e["loc"]), "description": e["msg"]}
                      for e in error.errors()]
        return problem_response(ProblemError(422, "Invalid request", errors=violations))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return problem_response(ProblemError(error.status_code, str(error.detail)))

    def require(scope: str):
        def check(request: Request) -> ApiKey:
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            key = keys.authenticate(token.strip()) if scheme.lower() == "bearer" else None
            if key is None:
                raise ProblemError(401, "Unauthorized",
                                   "send a valid API key as 'Authorization: Bearer <key>'",
                                   headers={"WWW-Authenticate": "Bearer"})
            if scope not in key.scopes:
                raise ProblemError(403, "Forbidden", f"this API key lacks the scope '{scope}'")
            retry_after = keys.throttle(key)
            if retry_after:
                raise ProblemError(429, "Too many requests",
                                   f"rate limit of {key.rate_limit_per_minute}/min exceeded",
                                   headers={"Retry-After": str(retry_after)})
            return key
        return Depends(check)

    def call(method, request, **kwargs):
        try:
            return method(request, timeout=backends.deadline, **kwargs)
        except grpc.RpcError as error:
            raise problem_from_rpc(error) from error

    batch_schema = schemas.EventBatch.model_json_schema(
        ref_template="#/components/schemas/{model}")

    @app.post("/v1/events", response_model=schemas.IngestResponse, tags=["events"],
              response_model_exclude_none=True,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"$ref": "#/components/schemas/EventBatch"}}}}},
              responses={400: {"model": schemas.Problem}, 401: {"model": schemas.Problem},
                         403: {"model": schemas.Problem}, 413: {"model": schemas.Problem},
                         429: {"model": schemas.Problem}, 503: {"model": schemas.Problem}})
    async def post_events(request: Request, _key: Annotated[ApiKey, require("events:write")]):
        """Store a batch of events. Each event is accepted, a duplicate of an earlier
        message_id (stored once), or rejected alone with the failing fields named."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_body_bytes:
            raise ProblemError(413, "Payload too large", f"at most {max_body_bytes} bytes")
        body = await request.body()
        if len(body) > max_body_bytes:
            raise ProblemError(413, "Payload too large", f"at most {max_body_bytes} bytes")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise ProblemError(400, "Malformed JSON", str(exc)) from exc
        raw_events = document.get("events") if isinstance(document, dict) else None
        if not isinstance(raw_events, list):
            raise ProblemError(422, "Invalid request", errors=[
                {"field": "events", "description": "a list of events is required"}])
        if len(raw_events) > MAX_BATCH_EVENTS:
            raise ProblemError(413, "Too many events", f"at most {MAX_BATCH_EVENTS} per batch",
                               errors=[{"field": "events",
                                        "description": f"{len(raw_events)} events sent"}])
        results: list[dict[str, Any] | None] = [None] * len(raw_events)
        valid: list[tuple[int, common_pb2.Event]] = []
        for i, raw in enumerate(raw_events):
            message_id = raw.get("message_id") if isinstance(raw, dict) else None
            if len(json.dumps(raw, ensure_ascii=False).encode()) > MAX_EVENT_BYTES:
                results[i] = _rejected(message_id, [{
                    "field": "event", "description": f"larger than {MAX_EVENT_BYTES} bytes"}])
                continue
            try:
                valid.append((i, _event_to_proto(schemas.Event.model_validate(raw))))
            except ValidationError as error:
                results[i] = _rejected(message_id, _violations(error))
        if valid:
            # The gRPC stub blocks: run it off the event loop (the trace context goes along).
            response = await run_in_threadpool(
                call, backends.profile.IngestEvents,
                profile_pb2.IngestEventsRequest(events=[e for _, e in valid]))
            for (i, _), result in zip(valid, response.results, strict=True):
                status = _STATUS_NAMES[result.status]
                if status == "rejected":
                    results[i] = _rejected(result.message_id, [
                        {"field": v.field, "description": v.description}
                        for v in result.violations])
                else:
                    results[i] = {"message_id": result.message_id, "status": status,
                                  "customer_id": result.customer_id}
                    if result.warnings:
                        results[i]["warnings"] = [
                            {"field": w.field, "description": w.description}
                            for w in result.warnings]
        counts = {s: sum(1 for r in results if r and r["status"] == s)
                  for s in ("accepted", "duplicate", "rejected")}
        return {"accepted": counts["accepted"], "duplicates": counts["duplicate"],
                "rejected": counts["rejected"], "results": results}

    @app.get("/v1/profiles:lookup", response_model=schemas.Profile, tags=["profiles"],
             responses={404: {"model": schemas.Problem}})
    def lookup_profile(
        _key: Annotated[ApiKey, require("profiles:read")],
        type: Annotated[str, Query(description=f"one of {', '.join(IDENTIFIER_TYPES)}")],
        value: Annotated[str, Query(min_length=1, max_length=256)],
    ):
        """Find a profile by any identifier (normalised as on ingestion)."""
        if type not in IDENTIFIER_TYPES:
            raise ProblemError(422, "Invalid request", errors=[{
                "field": "type", "description": f"one of {', '.join(IDENTIFIER_TYPES)}"}])
        response = call(backends.profile.LookupProfile, profile_pb2.LookupProfileRequest(
            type=protoconv.identifier_type_value(type), value=value))
        return _profile_to_json(response.profile)

    @app.get("/v1/profiles/{customer_id}", response_model=schemas.Profile, tags=["profiles"],
             responses={404: {"model": schemas.Problem}})
    def get_profile(customer_id: str, _key: Annotated[ApiKey, require("profiles:read")]):
        """The unified profile of a customer; merged ids resolve to the surviving profile."""
        response = call(backends.profile.GetProfile,
                        profile_pb2.GetProfileRequest(customer_id=customer_id))
        return _profile_to_json(response.profile)

    @app.get("/v1/profiles/{customer_id}/events", response_model=schemas.EventPage,
             tags=["profiles"], responses={404: {"model": schemas.Problem}})
    def get_journey(customer_id: str, _key: Annotated[ApiKey, require("profiles:read")],
                    page_size: Annotated[int, Query(ge=0, le=1000)] = 100,
                    page_token: str = ""):
        """The customer journey: every event of the customer, oldest first, paginated."""
        request = profile_pb2.ListProfileEventsRequest(
            customer_id=customer_id, page_size=page_size, page_token=page_token)
        response = call(backends.profile.ListProfileEvents, request)
        return {"events": [_event_to_json(e) for e in response.events],
                "next_page_token": response.next_page_token}

    @app.get("/v1/reports/attribution", response_model=schemas.AttributionReport,
             tags=["reports"])
    def attribution_report(
        _key: Annotated[ApiKey, require("reports:read")],
        model: Annotated[str, Query(description="first_touch, last_touch, linear, time_decay, "
                                                "position_based, markov or shapley")]
        = "last_touch",
        lookback_days: Annotated[int, Query(ge=1, le=365)] = 30,
    ):
        """Conversions and revenue credited to channels, online and offline."""
        enum_name = "ATTRIBUTION_MODEL_" + model.upper()
        if enum_name not in set(attribution_pb2.AttributionModel.keys()) or model == "unspecified":
            raise ProblemError(422, "Invalid request", errors=[
                {"field": "model", "description": "unknown attribution model"}])
        request = attribution_pb2.RunAttributionRequest(
            model=attribution_pb2.AttributionModel.Value(enum_name), lookback_days=lookback_days)
        channels: dict[str, dict[str, float]] = {}
        totals = None
        try:
            for row in backends.attribution.RunAttribution(request, timeout=backends.deadline):
                if row.HasField("channel_credit"):
                    credit = row.channel_credit
                    channels[credit.channel] = {"conversions": credit.conversions,
                                                "revenue": credit.revenue}
                else:
                    totals = row.totals
        except grpc.RpcError as error:
            raise problem_from_rpc(error) from error
        return {"model": model, "total_conversions": totals.total_conversions if totals else 0,
                "total_revenue": totals.total_revenue if totals else 0.0,
                "events_read": totals.events_read if totals else 0, "channels": channels}

    @app.get("/healthz", tags=["health"])
    def healthz():
        """Liveness: the gateway process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz():
        """Readiness: every service behind the gateway reports SERVING."""
        states = {}
        for name, stub in backends.health.items():
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                states[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as error:
                states[name] = error.code().name
        ready = all(s == "SERVING" for s in states.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "services": states},
                            status_code=200 if ready else 503)

    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = original_openapi()
            components = document.setdefault("components", {})
            schemas_ = components.setdefault("schemas", {})
            schemas_.update(batch_schema.pop("$defs", {}))
            schemas_["EventBatch"] = batch_schema
            components["securitySchemes"] = {"apiKey": {
                "type": "http", "scheme": "bearer",
                "description": "A partner API key; each key has scopes and a rate limit."}}
            for path, operations in document["paths"].items():
                if path.startswith("/v1/"):
                    for operation in operations.values():
                        operation["security"] = [{"apiKey": []}]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app

"""What FastAPI cannot infer for the OpenAPI document: the bearer API key on every /v1
operation (the Segment endpoints take it as a write key, HTTP Basic, too), the schemas of the
event batch and of the Segment messages (their bodies are parsed by hand, event by event, so
that one bad event never fails its batch), and the errors as they are sent: problem+json
with the headers that come with them.

Each operation declares the error statuses it can really answer (``problems(...)``); the
validation error FastAPI adds on its own (``application/json``, a shape never sent) is
dropped. ``tests/test_openapi_fuzz.py`` holds the gateway to this document."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from omnicdp.services.gateway import schemas, segment
from omnicdp.services.gateway.problems import PROBLEM

BATCH_SCHEMA_REF = "#/components/schemas/EventBatch"
CONSENT_UPDATE_REF = "#/components/schemas/ConsentUpdate"
AUDIENCE_DEFINITION_REF = "#/components/schemas/AudienceDefinition"
PROBLEM_REF = "#/components/schemas/Problem"
NOT_READY_REF = "#/components/schemas/NotReady"
SEGMENT_BATCH_REF = "#/components/schemas/SegmentBatch"
SEGMENT_MESSAGE_REF = "#/components/schemas/SegmentMessage"
SEGMENT_PROBLEM_REF = "#/components/schemas/SegmentProblem"

#: When each error status is sent, with its codes (README.md has the same table).
ERROR_DESCRIPTIONS = {
    400: "The body is not UTF-8 JSON (`MALFORMED_JSON`), not valid gzip (`MALFORMED_BODY`) or "
         "a parameter is not valid (`INVALID_ARGUMENT`); on the Segment endpoints also: no "
         "message of the request could be stored (`INVALID_EVENTS`, each in `rejected`).",
    401: "No valid API key (`UNAUTHENTICATED`).",
    403: "The API key lacks the operation's scope (`PERMISSION_DENIED`).",
    404: "Unknown customer or identifier (`PROFILE_NOT_FOUND`), or audience "
         "(`AUDIENCE_NOT_FOUND`).",
    408: "The body did not arrive within the body timeout (`REQUEST_TIMEOUT`).",
    409: "The service is not set up for what was asked, e.g. `mlflow=true` with no MLflow "
         "store (`MLFLOW_NOT_CONFIGURED`).",
    413: "The body is over the byte limit (`PAYLOAD_TOO_LARGE`), before or after gzip, or "
         "holds too many events (`TOO_MANY_EVENTS`).",
    415: "A `Content-Encoding` other than gzip (`UNSUPPORTED_CONTENT_ENCODING`).",
    422: "A required part is missing or a parameter is out of range (`INVALID_ARGUMENT`).",
    429: "The key's rate limit (`RATE_LIMITED`) or too many of its requests at once "
         "(`TOO_MANY_CONCURRENT_REQUESTS`); retry after `Retry-After` seconds.",
    500: "Internal error (`INTERNAL`).",
    503: "A service is down or restarting (`UNAVAILABLE`), or too many requests are in "
         "flight (`OVERLOADED`); retry after `Retry-After` seconds.",
    504: "The services did not answer in time (`DEADLINE_EXCEEDED`).",
}


def _integer_header(description: str, required: bool) -> dict[str, Any]:
    return {"description": description, "required": required,
            "schema": {"type": "integer", "minimum": 0}}


def _quota_headers(required: bool) -> dict[str, Any]:
    return {
        "RateLimit-Limit": _integer_header("Requests the key may make in a minute.", required),
        "RateLimit-Remaining": _integer_header("Requests left in the current window.", required),
        "RateLimit-Reset": _integer_header("Seconds until the window frees a request.",
                                           required),
    }


_RETRY_AFTER = {"Retry-After": _integer_header("Seconds to wait before retrying.", True)}
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`; on the Segment endpoints `Basic`",
                               "required": True, "schema": {"type": "string"}}},
    429: {**_RETRY_AFTER, **_quota_headers(required=True)},
    503: _RETRY_AFTER,
}


def problems(*statuses: int, schema_ref: str = PROBLEM_REF) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that can answer these error statuses."""
    return {status: {"description": ERROR_DESCRIPTIONS[status],
                     "content": {PROBLEM: {"schema": {"$ref": schema_ref}}}}
            for status in statuses}


def operation_running() -> dict[int | str, dict[str, Any]]:
    """202 of a report not done yet: the operation to poll."""
    return {202: {
        "description": "The report is still being made: poll the operation `Location` "
                       "names, after `Retry-After` seconds.",
        "headers": {"Location": {"schema": {"type": "string"},
                                 "description": "where to poll the operation"},
                    "Retry-After": {"schema": {"type": "integer"},
                                    "description": "seconds to wait before polling"}},
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["name", "done"],
            "properties": {"name": {"type": "string"}, "done": {"type": "boolean"}}}}}}}


def not_ready() -> dict[int | str, dict[str, Any]]:
    return {503: {"description": "A service behind the gateway is not serving (`NOT_READY`).",
                  "content": {PROBLEM: {"schema": {"$ref": NOT_READY_REF}}}}}


def _component_schemas(*models: Any) -> dict[str, Any]:
    """The JSON schemas of these models and of the models they use, as components."""
    found: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        found[model.__name__] = schema
    return found


def _complete_operation(path: str, operation: dict[str, Any]) -> None:
    responses = operation.get("responses", {})
    generated_422 = responses.get("422", {}).get("content", {})
    if generated_422 and PROBLEM not in generated_422:
        del responses["422"]  # FastAPI's own, for a validation error never sent so
    if not path.startswith("/v1/"):
        return
    operation["security"] = ([{"writeKey": []}, {"apiKey": []}] if path in segment.PATHS
                             else [{"apiKey": []}])
    for status, response in responses.items():
        if status.startswith("2"):
            response.setdefault("headers", {}).update(_quota_headers(required=False))
        elif int(status) in _ERROR_HEADERS:
            response.setdefault("headers", {}).update(_ERROR_HEADERS[int(status)])


def complete(app: FastAPI) -> None:
    """Wrap ``app.openapi`` so the document it serves is complete."""
    generate = app.openapi
    extra_schemas = _component_schemas(schemas.EventBatch, schemas.ConsentUpdate,
                                       schemas.AudienceDefinition,
                                       schemas.Problem, schemas.NotReady,
                                       schemas.SegmentBatch, schemas.SegmentMessage,
                                       schemas.SegmentProblem)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            components = document.setdefault("components", {})
            component_schemas = components.setdefault("schemas", {})
            component_schemas.update(extra_schemas)
            for unused in ("HTTPValidationError", "ValidationError"):
                component_schemas.pop(unused, None)
            components["securitySchemes"] = {
                "apiKey": {"type": "http", "scheme": "bearer",
                           "description": "A partner API key; each key has scopes and a rate "
                                          "limit."},
                "writeKey": {"type": "http", "scheme": "basic",
                             "description": "The Segment endpoints' write key: an API key with "
                                            "`events:write` as the user name, the password "
                                            "empty (or `writeKey` in the body)."}}
            for path, operations in document["paths"].items():
                for operation in operations.values():
                    _complete_operation(path, operation)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

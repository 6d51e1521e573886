"""Problem details (RFC 9457) for every error the gateway answers, as
``application/problem+json`` with a stable machine-readable ``code``.

Errors of the services arrive as domain errors (their clients map gRPC statuses back), and
one table here turns each class into an HTTP status; ``code`` is the service's
``ErrorInfo.reason`` (``PROFILE_NOT_FOUND``, ``INVALID_ARGUMENT``), and ``errors`` lists
the failing fields. Errors of the gateway's own (keys, limits, malformed bodies) use the
same shape.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Collection
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from omnicdp.core import errors

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"

#: Domain error class -> HTTP status. The first matching class wins.
HTTP_STATUS: tuple[tuple[type[errors.DomainError], int], ...] = (
    (errors.InvalidArgument, 400),
    (errors.NotFound, 404),
    (errors.FailedPrecondition, 409),
    # 429 is the gateway's own rate limit only: a service out of a resource is overloaded.
    (errors.ResourceExhausted, 503),
    (errors.Unavailable, 503),
    (errors.DeadlineExceeded, 504),
    (errors.Internal, 500),
)
# Statuses after which the same request may succeed: the client is told when to retry.
_RETRY_AFTER_SECONDS = {429: 1, 503: 1}


class ProblemError(Exception):
    def __init__(self, status: int, code: str, detail: str | None = None,
                 errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None, title: str | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail or code)
        self.status, self.code, self.detail = status, code, detail
        self.title = title or HTTPStatus(status).phrase
        self.errors, self.headers = errors, headers or {}
        self.extra = extra or {}  # members of the body beyond RFC 9457's and ours


def violations_to_json(violations: Any) -> list[dict[str, str]]:
    return [{"field": v.field, "description": v.description} for v in violations]


def from_domain_error(error: errors.DomainError) -> ProblemError:
    status = next((s for kind, s in HTTP_STATUS if isinstance(error, kind)), 500)
    headers = ({"Retry-After": str(_RETRY_AFTER_SECONDS[status])}
               if status in _RETRY_AFTER_SECONDS else None)
    return ProblemError(status, error.reason, error.message,
                        violations_to_json(error.violations) or None, headers)


def body_of(error: ProblemError, segment: bool = False) -> dict[str, Any]:
    """The problem's JSON; ``segment``: with what Segment's libraries read of an error too
    (``success: false``, ``code`` and ``message``)."""
    body: dict[str, Any] = {"type": "about:blank", "title": error.title, "status": error.status,
                            "code": error.code}
    if error.detail:
        body["detail"] = error.detail
    if error.errors:
        body["errors"] = error.errors
    body.update(error.extra)
    if segment:
        body.update(success=False, message=error.detail or error.title)
    return body


def response(error: ProblemError, segment: bool = False) -> JSONResponse:
    return JSONResponse(body_of(error, segment), status_code=error.status, media_type=PROBLEM,
                        headers=error.headers)


def _code_of(status: int) -> str:
    return HTTPStatus(status).phrase.upper().replace(" ", "_").replace("-", "_")


def _allowed(app: FastAPI, path: str) -> list[str]:
    methods: dict[str, None] = {}
    for route in app.router.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.fullmatch(path):
            methods.update(dict.fromkeys(sorted(route.methods - {"HEAD"})))
    return list(methods)


def install(app: FastAPI, segment_paths: Collection[str] = ()) -> None:
    """Make every error of ``app`` a problem+json response; on ``segment_paths`` (the
    Segment spec's endpoints) one that Segment's libraries can read too."""

    def answer(request: Request, error: ProblemError) -> JSONResponse:
        return response(error, segment=request.url.path in segment_paths)

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, error: ProblemError) -> JSONResponse:
        return answer(request, error)

    @app.exception_handler(errors.DomainError)
    async def _domain(request: Request, error: errors.DomainError) -> JSONResponse:
        return answer(request, from_domain_error(error))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        violations = [{"field": ".".join(str(p) for p in e["loc"]), "description": e["msg"]}
                      for e in error.errors()]
        return answer(request, ProblemError(422, "INVALID_ARGUMENT", "the request is not valid",
                                            violations))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = error.headers
        if error.status_code == 405:
            # Starlette names the methods of the first route matching the path only; a path
            # served by several routes (GET and DELETE of a profile) allows all of theirs.
            headers = {**(headers or {}), "Allow": ", ".join(_allowed(app, request.url.path))}
        return answer(request, ProblemError(error.status_code, _code_of(error.status_code),
                                            str(error.detail), headers=headers))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        # The text of an unexpected exception may hold personal data: log type and stack.
        log.error("%s %s failed with %s:\n%s", request.method, request.url.path,
                  type(error).__name__, "".join(traceback.format_tb(error.__traceback__)))
        return answer(request, ProblemError(500, "INTERNAL", "internal error"))

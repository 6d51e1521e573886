"""The Segment HTTP tracking spec's endpoints, beside the native ``/v1/events`` and on its
pipeline: ``POST /v1/batch``, ``/v1/identify``, ``/v1/track``, ``/v1/page``, ``/v1/screen``,
``/v1/alias``, ``/v1/group``, and analytics.js's one-letter paths (``/v1/t``, ``/v1/b``...).

The write key (an API key with ``events:write``) comes as the SDKs send it: HTTP Basic with
the key as user name, or ``writeKey`` in the body (analytics.js); Bearer as on the native API
works too. Each message is mapped by ``segment.py`` and then checked, stored and answered for
exactly as a native event. The answers are what the SDKs expect: 200 ``{"success": true}``
(with ``rejected`` when some messages were not stored), 400 when none could be, 401, 413,
429 with ``Retry-After``; errors are problem+json with ``success``, ``code`` and
``message``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request

from omnicdp.core.vocabulary import MAX_BATCH_EVENTS
from omnicdp.services.gateway import bodies, openapi, schemas, segment
from omnicdp.services.gateway.admission import Gate
from omnicdp.services.gateway.ingest import Checked, check_event, ingest
from omnicdp.services.gateway.keys import ApiKey
from omnicdp.services.gateway.problems import ProblemError
from omnicdp.services.profile.client import ProfileClient

log = logging.getLogger(__name__)

UNAUTHENTICATED = ProblemError(
    401, "UNAUTHENTICATED", "send a valid write key as the HTTP Basic user name (password "
    "empty), or as writeKey in the body", headers={"WWW-Authenticate": 'Basic realm="omnicdp"'})
_SUMMARIES = {
    "batch": "Store a batch of Segment messages",
    "identify": "Segment identify: who the person is, with their traits",
    "track": "Segment track: something the person did",
    "page": "Segment page: a page the person viewed",
    "screen": "Segment screen: an app screen the person viewed",
    "alias": "Segment alias: join an anonymous id's history to a user id",
    "group": "Segment group: attach the person to an account",
}
_DESCRIPTION = (
    "The Segment HTTP tracking spec, on the pipeline of `/v1/events` (validation, "
    "idempotency by `messageId`, identity, profile). The write key (an API key with "
    "`events:write`) is the HTTP Basic user name with an empty password, or `writeKey` in "
    "the body; the body may be gzip-encoded (`Content-Encoding: gzip`) and is read as JSON "
    "whatever its `Content-Type` (analytics.js sends `text/plain`). analytics.js's paths "
    "`/v1/b`, `/v1/i`, `/v1/t`, `/v1/p`, `/v1/s`, `/v1/a`, `/v1/g` are the same endpoints. "
    "A message that cannot be stored is reported in `rejected` and the rest are stored; "
    "when none can be, the answer is 400 `INVALID_EVENTS`.")


def source_of(key: ApiKey) -> str | None:
    """The ``source`` of the key's messages: in Segment a write key is a source, so the key's
    name; a key limited to one source writes that one. A key limited to several has no
    single source, and its messages are rejected for it (``source`` named)."""
    if key.sources is None:
        return key.name
    return next(iter(key.sources)) if len(key.sources) == 1 else None


#: Rejected messages a log line describes (the answer lists them all).
_LOGGED_REJECTIONS = 20


def _sent_id(message: Any) -> Any:
    return message.get("messageId") if isinstance(message, dict) else None


def _root(field: str) -> str:
    """The first part of a field path: what a log line may name (keys below it are the
    sender's and could hold personal data)."""
    return field.split(".", 1)[0].split("[", 1)[0] or "message"


def install(app: FastAPI, gate: Gate, profile: ProfileClient, max_body_bytes: int,
            body_timeout: float) -> None:
    """Add the Segment endpoints to ``app``."""

    async def receive(request: Request, kind: str) -> dict[str, Any]:
        presented = segment.header_key(request.headers.get("authorization"))
        document = None
        if presented is None:  # the key may be in the body
            document = await bodies.read_json(request, max_body_bytes, body_timeout)
            presented = segment.body_key(document)
        async with gate.admit(request, presented, "events:write", UNAUTHENTICATED) as key:
            if document is None:
                document = await bodies.read_json(request, max_body_bytes, body_timeout)
            return await store(document, kind, key, request.url.path)

    async def store(document: Any, kind: str, key: ApiKey, path: str) -> dict[str, Any]:
        try:
            messages = segment.messages_of(document, kind)
        except segment.Rejected as error:
            raise ProblemError(400, "INVALID_ARGUMENT", "the body is not a Segment "
                               f"{'batch' if kind == 'batch' else 'message'}",
                               error.violations) from None
        if len(messages) > MAX_BATCH_EVENTS:
            raise ProblemError(413, "TOO_MANY_EVENTS", f"at most {MAX_BATCH_EVENTS} per batch",
                               [{"field": "batch",
                                 "description": f"{len(messages)} messages sent"}])
        received_at = datetime.now(UTC)
        source = source_of(key)
        envelope = document if kind == "batch" else None
        checked: list[Checked] = []
        mapped_messages: list[segment.Mapped | None] = []
        for message in messages:
            try:
                mapped = segment.to_event(message, kind, received_at, source, envelope)
            except segment.Rejected as error:
                checked.append(Checked.rejected(_sent_id(message), error.violations))
                mapped_messages.append(None)
                continue
            checked.append(check_event(mapped.event, key))
            mapped_messages.append(mapped)
        results = await ingest(profile, checked)
        rejected = [
            {"index": i,  # the id as sent: none when the message had none (one was drawn)
             "messageId": result["message_id"] if _sent_id(messages[i]) is not None else None,
             "errors": mapped.name_as_sent(result["violations"]) if mapped
             else result["violations"]}
            for i, (result, mapped) in enumerate(zip(results, mapped_messages, strict=True))
            if result["status"] == "rejected"]
        if not rejected:
            return {"success": True}
        log.warning("%s from key %s: %d of %d messages rejected: %s%s", path, key.name,
                    len(rejected), len(messages), "; ".join(
                        f"#{r['index']} " + ", ".join(dict.fromkeys(
                            f"{_root(e['field'])}: {e['description']}" for e in r["errors"]))
                        for r in rejected[:_LOGGED_REJECTIONS]),
                    "; ..." if len(rejected) > _LOGGED_REJECTIONS else "")
        if len(rejected) < len(messages):
            return {"success": True, "rejected": rejected}
        where = "batch[{}].".format if kind == "batch" else (lambda _i: "")
        raise ProblemError(400, "INVALID_EVENTS", "no message could be stored: see rejected",
                           [{"field": where(r["index"]) + e["field"],
                             "description": e["description"]}
                            for r in rejected for e in r["errors"]],
                           extra={"rejected": rejected})

    def endpoint(kind: str) -> Callable[[Request], Awaitable[dict[str, Any]]]:
        async def post_segment(request: Request) -> dict[str, Any]:
            return await receive(request, kind)
        post_segment.__doc__ = _DESCRIPTION
        return post_segment

    documented = {f"/v1/{kind}" for kind in _SUMMARIES}
    for path, kind in segment.PATHS.items():
        body_schema = openapi.SEGMENT_BATCH_REF if kind == "batch" else openapi.SEGMENT_MESSAGE_REF
        app.add_api_route(
            path, endpoint(kind), methods=["POST"], tags=["segment"],
            include_in_schema=path in documented, summary=_SUMMARIES[kind],
            name=f"segment_{kind}" if path in documented else f"segment_{kind}_short",
            response_model=schemas.SegmentResult, response_model_exclude_unset=True,
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": body_schema}}}}},
            responses=openapi.problems(400, 401, 403, 408, 413, 415, 429, 500, 503, 504,
                                       schema_ref=openapi.SEGMENT_PROBLEM_REF))

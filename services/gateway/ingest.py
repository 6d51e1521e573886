"""The gateway's half of ingestion, shared by the native ``/v1/events`` and the Segment
endpoints: each event checked alone (its JSON values' limits, its size, the HTTP schema, its
key's sources), then one ``IngestEvents`` call for the valid ones, and one result per event
in order. A rejected event never blocks the others."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from omnicdp.core import jsonvalues
from omnicdp.core.vocabulary import MAX_EVENT_BYTES
from omnicdp.services.gateway import conversions, schemas
from omnicdp.services.gateway.keys import ApiKey
from omnicdp.services.profile.client import EventIn, ProfileClient

Violations = list[dict[str, str]]


@dataclass(frozen=True)
class Checked:
    """One event of a batch after its checks: ready to store, or rejected with its
    violations; ``message_id`` is what the sender gave, echoed when rejected."""

    event: EventIn | None
    violations: Violations
    message_id: Any = None

    @classmethod
    def rejected(cls, message_id: Any, violations: Violations) -> Checked:
        return cls(None, violations, message_id)


def check_event(raw: Any, key: ApiKey) -> Checked:
    """One event of a batch, checked alone: its JSON values' limits, its size, its schema,
    and whether ``key`` may write its source; it is recorded as sent by ``key``."""
    message_id = raw.get("message_id") if isinstance(raw, dict) else None
    limits = jsonvalues.value_violations(raw, "")
    if limits:
        return Checked.rejected(message_id, [
            {"field": v.field or "event", "description": v.description} for v in limits])
    if len(json.dumps(raw, ensure_ascii=False).encode()) > MAX_EVENT_BYTES:
        return Checked.rejected(message_id, [
            {"field": "event", "description": f"larger than {MAX_EVENT_BYTES} bytes"}])
    try:
        event = schemas.Event.model_validate(raw)
    except ValidationError as error:
        return Checked.rejected(message_id, [
            {"field": ".".join(str(p) for p in e["loc"]) or "event", "description": e["msg"]}
            for e in error.errors()])
    problem = key.source_problem(event.source)
    if problem:
        return Checked.rejected(message_id, [{"field": "source", "description": problem}])
    return Checked(conversions.event_in(event, sent_by=key.name), [], event.message_id)


async def ingest(profile: ProfileClient, checked: Sequence[Checked]) -> list[dict[str, Any]]:
    """Store the valid events in one call; one result per event, in order (the HTTP
    contract's ``EventResult``)."""
    results: list[dict[str, Any] | None] = [None] * len(checked)
    valid: list[tuple[int, EventIn]] = []
    for i, item in enumerate(checked):
        if item.event is None:
            results[i] = conversions.rejected_json(item.message_id, item.violations)
        else:
            valid.append((i, item.event))
    if valid:
        # The gRPC call blocks: run it off the event loop (the trace context goes along).
        stored = await run_in_threadpool(profile.ingest, [e for _, e in valid])
        for (i, _), result in zip(valid, stored, strict=True):
            results[i] = conversions.result_json(result)
    return [r for r in results if r is not None]

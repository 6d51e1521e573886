"""The profile service's domain values: events as stored and the unified profile."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from omnicdp.core.errors import FieldViolation


@dataclass(frozen=True)
class EventIn:
    """An event as a partner sent it (strings as in the HTTP contract, raw identifiers)."""

    message_id: str
    type: str
    channel: str
    event: str = ""
    source: str = ""
    timestamp: datetime | None = None
    identifiers: dict[str, str] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    sent_by: str = ""  # the API key's name, set by the gateway (empty: an internal caller)


@dataclass(frozen=True)
class StoredEvent:
    """An accepted event. It is keyed for good to the identity record it was resolved as
    (``record_id``); ``customer_id`` is that record's customer when the event is read."""

    message_id: str
    customer_id: str
    type: str
    channel: str
    event: str
    source: str
    timestamp: datetime
    received_at: datetime
    identifiers: dict[str, str]
    traits: dict[str, Any]
    properties: dict[str, Any]
    seq: int = 0
    record_id: str = ""
    sent_by: str = ""


@dataclass(frozen=True)
class Consent:
    purpose: str
    channel: str
    granted: bool
    updated_at: datetime
    source: str = ""


@dataclass(frozen=True)
class Profile:
    """The golden record: everything known about one customer."""

    customer_id: str
    identifiers: list[tuple[str, str]]
    traits: dict[str, Any]
    first_seen: datetime | None
    last_seen: datetime | None
    event_count: int
    consents: list[Consent] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    merged_customer_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class IngestResult:
    """What became of one event: ``accepted``, ``duplicate`` (stored before) or ``rejected``
    (with the violations); ``warnings`` name what was left out of an accepted event."""

    message_id: str
    status: str
    customer_id: str = ""
    violations: tuple[FieldViolation, ...] = ()
    warnings: tuple[FieldViolation, ...] = ()

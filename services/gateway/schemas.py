"""The HTTP contract's JSON shapes (PRODUCT.md), as pydantic models for validation and
the OpenAPI document."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model

from omnicdp.core.jsonvalues import (
    MAX_ABS_NUMBER,
    MAX_NESTING_DEPTH,
    MAX_REVENUE,
    MIN_TIMESTAMP,
    identifier_problem,
)
from omnicdp.core.vocabulary import (
    CHANNELS,
    EVENT_TYPES,
    IDENTIFIER_TYPES,
    MAX_BATCH_EVENTS,
    MAX_IDENTIFIER_LENGTH,
)

EventTypeName = Literal[EVENT_TYPES]  # type: ignore[valid-type]
ChannelName = Literal[CHANNELS]  # type: ignore[valid-type]

VALUE_LIMITS = (
    f"Objects and arrays nest at most {MAX_NESTING_DEPTH} levels deep (this object is level "
    f"1); numbers are finite and within +-{MAX_ABS_NUMBER}; strings are valid UTF-8 without "
    "NUL. A value beyond these limits rejects only its event.")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})?")
TIMESTAMP_DESCRIPTION = (
    "RFC 3339 date-time, e.g. `2026-03-01T10:00:00Z` (UTC when no offset is given); from "
    f"{MIN_TIMESTAMP.isoformat().replace('+00:00', 'Z')} to a day after receipt. Numbers "
    "are not read as Unix time. Default: the time of receipt.")


def _rfc3339(value: Any) -> Any:
    """An RFC 3339 string as an aware UTC datetime; numbers and other formats are refused
    (pydantic would read ``"1700000000"`` as Unix time)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("an RFC 3339 date-time such as 2026-03-01T10:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.upper().replace(" ", "T"))
        parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError("not a date-time within the supported range") from None
    if parsed < MIN_TIMESTAMP:
        raise ValueError(f"before {MIN_TIMESTAMP.isoformat().replace('+00:00', 'Z')}")
    return parsed


def _identifier(value: str | None) -> str | None:
    problem = identifier_problem(value) if value else None
    if problem:
        raise ValueError(problem)
    return value


Timestamp = Annotated[datetime | None, BeforeValidator(_rfc3339)]
IdentifierValue = Annotated[str | None, AfterValidator(_identifier)]

# One field per identifier type of the vocabulary, in its priority order.
Identifiers = create_model(
    "Identifiers",
    __config__=ConfigDict(extra="forbid"),
    **{name: (IdentifierValue, Field(default=None, max_length=MAX_IDENTIFIER_LENGTH,
                                     description="no control or invisible characters"))
       for name in IDENTIFIER_TYPES},
)


class Event(BaseModel):
    """One event, as in the Segment spec plus the retailer's channel and identifiers."""

    model_config = ConfigDict(extra="ignore")
    message_id: str = Field(min_length=1, max_length=128,
                            description="Client-chosen idempotency key.")
    type: EventTypeName
    event: str | None = Field(default=None, max_length=256,
                              description="Name of a track event, e.g. `Order Completed`.")
    channel: ChannelName
    source: str | None = Field(default=None, max_length=128)
    timestamp: Timestamp = Field(default=None, description=TIMESTAMP_DESCRIPTION)
    identifiers: Identifiers = Field(default_factory=Identifiers)  # type: ignore[valid-type]
    traits: dict[str, Any] = Field(default_factory=dict, description=VALUE_LIMITS)
    properties: dict[str, Any] = Field(
        default_factory=dict,
        description=f"{VALUE_LIMITS} `revenue`, when given, is a number from 0 to "
                    f"{MAX_REVENUE}.")


class EventBatch(BaseModel):
    events: list[Event] = Field(max_length=MAX_BATCH_EVENTS)


class Violation(BaseModel):
    field: str
    description: str


class EventResult(BaseModel):
    message_id: str | None = Field(
        description="The event's message_id as sent; null when a rejected event had none that "
                    "could be echoed (absent, not a string, or not valid text).")
    status: Literal["accepted", "duplicate", "rejected"]
    customer_id: str | None = None
    error: str | None = None
    violations: list[Violation] | None = None
    warnings: list[Violation] | None = Field(
        default=None, description="Accepted, but e.g. a malformed identifier was not used "
                                  "for linking.")


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult]


class StoredEvent(BaseModel):
    """An event as stored: what was sent (identifiers as sent), its customer and receipt."""

    message_id: str
    type: EventTypeName
    event: str | None
    channel: ChannelName
    source: str | None
    timestamp: datetime
    identifiers: dict[str, str]
    traits: dict[str, Any]
    properties: dict[str, Any]
    customer_id: str
    received_at: datetime
    sent_by: str | None = Field(
        description="Who sent the event: the name of the API key that sent it (set by the "
                    "gateway, never taken from the body); null for events stored before it "
                    "was recorded, or sent by an internal service.")


class Consent(BaseModel):
    purpose: str
    channel: str
    granted: bool
    updated_at: datetime | None
    source: str


class Profile(BaseModel):
    customer_id: str
    identifiers: dict[str, list[str]]
    traits: dict[str, Any]
    consents: list[Consent]
    first_seen: datetime | None
    last_seen: datetime | None
    event_count: int
    scores: dict[str, float]
    merged_customer_ids: list[str]


class EventPage(BaseModel):
    events: list[StoredEvent]
    next_page_token: str


class ChannelCredit(BaseModel):
    conversions: float
    revenue: float


class AttributionReport(BaseModel):
    model: str
    total_conversions: int
    total_revenue: float
    events_read: int
    channels: dict[str, ChannelCredit]


class Problem(BaseModel):
    """RFC 9457 problem details, sent as `application/problem+json`."""

    type: str = "about:blank"
    title: str
    status: int
    code: str = Field(description="Stable machine-readable code, e.g. `PROFILE_NOT_FOUND`, "
                                  "`INVALID_ARGUMENT`, `RATE_LIMITED`, `UNAVAILABLE`.")
    detail: str | None = None
    errors: list[Violation] | None = Field(default=None,
                                           description="The failing fields, for bad input.")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    services: dict[str, str] = Field(description="Each service's gRPC health status.")


class NotReady(Problem):
    """`code` is `NOT_READY`; `services` gives each service's gRPC health status."""

    services: dict[str, str]

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
    CONSENT_PURPOSES,
    CONSENT_STATUSES,
    EVENT_TYPES,
    IDENTIFIER_TYPES,
    LEGAL_BASES,
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


def rfc3339_datetime(value: Any) -> Any:
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


Timestamp = Annotated[datetime | None, BeforeValidator(rfc3339_datetime)]
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


ConsentPurpose = Literal[CONSENT_PURPOSES]  # type: ignore[valid-type]
ConsentStatus = Literal[CONSENT_STATUSES]  # type: ignore[valid-type]
LegalBasis = Literal[LEGAL_BASES]  # type: ignore[valid-type]


class Consent(BaseModel):
    """A consent decision as stored."""

    purpose: str
    channel: str | None = Field(description="null: every channel")
    status: str
    granted: bool
    updated_at: datetime | None = Field(description="when the customer decided")
    source: str
    legal_basis: str
    proof_reference: str
    recorded_at: datetime | None = Field(description="when omnicdp recorded the decision")


class ConsentDecision(BaseModel):
    """A consent decision to record. The latest decision (by `updated_at`) per purpose and
    channel is the current one; every decision is kept."""

    model_config = ConfigDict(extra="forbid")
    purpose: ConsentPurpose
    channel: ChannelName | None = Field(default=None,
                                        description="The channel; omitted: every channel.")
    status: ConsentStatus
    updated_at: Timestamp = Field(default=None, description="When the customer decided. "
                                                            + TIMESTAMP_DESCRIPTION)
    legal_basis: LegalBasis | None = Field(default=None,
                                           description="GDPR art. 6(1); default `consent`.")
    source: str | None = Field(default=None, max_length=256,
                               description="Where the decision was made; default: the API "
                                           "key's name.")
    proof_reference: str | None = Field(
        default=None, max_length=256,
        description="Where the proof is kept (a signed form's id, a double opt-in message).")


class ConsentUpdate(BaseModel):
    consents: list[ConsentDecision] = Field(min_length=1, max_length=100)


class Consents(BaseModel):
    consents: list[Consent]


class ConsentHistory(BaseModel):
    consents: list[Consent] = Field(description="Decisions, newest first.")
    next_page_token: str


class IdentifierDetail(BaseModel):
    type: str
    value: str
    sources: list[str]
    first_seen: datetime | None
    last_seen: datetime | None


class Counters(BaseModel):
    events_by_channel: dict[str, int]
    orders_online: int
    orders_store: int = Field(description="`Order Completed` in stores and the call centre")
    revenue: float


class Score(BaseModel):
    """A computed score and the model that computed it."""

    value: float
    model: str = Field(description="The model that computed it, e.g. `cdp-ltv`.")
    version: str = Field(description="The model's version.")
    computed_at: datetime


class CustomerScores(BaseModel):
    customer_id: str = Field(description="The customer's id now (the survivor when a "
                                         "merged-away id was asked).")
    scores: dict[str, Score] = Field(description="By name, e.g. `ltv_clv`, `p_alive`, "
                                                 "`expected_purchases`, `expected_spend`.")


class Profile(BaseModel):
    customer_id: str
    identifiers: dict[str, list[str]]
    traits: dict[str, Any]
    consents: list[Consent] = Field(description="The current decision per purpose and "
                                                "channel.")
    first_seen: datetime | None
    last_seen: datetime | None
    event_count: int
    scores: dict[str, Score] = Field(description="Computed scores by name (LTV, P(alive), "
                                                 "...), each with its model and version.")
    merged_customer_ids: list[str]
    identifier_details: list[IdentifierDetail] = Field(
        description="Each identifier with the sources that sent it, first and last seen.")
    counters: Counters


class Erasure(BaseModel):
    """What an erasure removed: counts only."""

    customer_id: str
    events_erased: int
    identifiers_erased: int
    consents_erased: int
    records_erased: int
    erased_at: datetime


class EventPage(BaseModel):
    events: list[StoredEvent]
    next_page_token: str


class Credit(BaseModel):
    conversions: float
    revenue: float


class CreditSplit(BaseModel):
    place: str
    segment: str
    touch: str
    conversions: float
    revenue: float


class ChannelCredit(BaseModel):
    conversions: float
    revenue: float
    by_place: dict[str, Credit] = Field(
        description="by where the conversion happened: `online`, `store`")
    by_segment: dict[str, Credit] = Field(
        description="by the customer's segment when touched: `new_contact`, "
                    "`never_bought`, `active_buyer` (bought before)")
    by_touch: dict[str, Credit] = Field(
        description="click-through (`click`), view-through (`view`), or `none` (direct)")
    splits: list[CreditSplit] = Field(
        description="the credit per (place, segment, touch) cell; adds up to the channel's")


class AttributionReport(BaseModel):
    model: str
    total_conversions: int
    total_revenue: float
    events_read: int
    method: str = Field(description="how the credit was computed, e.g. exact or sampled")
    mlflow_run_id: str | None = Field(
        default=None, description="the MLflow run the report was logged to (`mlflow=true`)")
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


# -- The Segment HTTP tracking spec (segment.py maps it onto Event) ------------------------

SegmentId = Annotated[str | int | None, Field(
    default=None, description="A string (a number is read as its decimal text).")]


class SegmentMessage(BaseModel):
    """A message of the Segment HTTP tracking spec, as Segment's and RudderStack's libraries
    send it. Fields not listed are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    type: Literal["identify", "track", "page", "screen", "alias", "group"] | None = Field(
        default=None, description="Required in a batch; the path says it otherwise.")
    messageId: str | None = Field(
        default=None, max_length=128,
        description="The idempotency key: a message whose id was stored before is not stored "
                    "again. Absent: a random one (no deduplication).")
    userId: SegmentId
    anonymousId: SegmentId
    previousId: SegmentId = Field(default=None, description="alias: the anonymous id whose "
                                                            "history joins `userId`.")
    groupId: SegmentId = Field(default=None, description="group: the account's id.")
    event: str | None = Field(default=None, description="track: the event's name.")
    name: str | None = Field(default=None, description="page/screen: its name.")
    category: str | None = None
    timestamp: str | None = Field(
        default=None, description="RFC 3339; corrected for the client's clock skew as "
                                  "`receivedAt - (sentAt - timestamp)`.")
    originalTimestamp: str | None = None
    sentAt: str | None = None
    traits: dict[str, Any] | None = Field(
        default=None, description="identify: the person's traits (`email` and `phone` become "
                                  "identifiers); group: the account's traits.")
    properties: dict[str, Any] | None = None
    context: dict[str, Any] | None = Field(
        default=None, description="`traits`, `externalIds` and `device.id` give identifiers "
                                  "and traits; `campaign`, `page`, `app`, `device`, `library`, "
                                  "`os`, `locale`, `timezone`, `screen`, `referrer` are kept in "
                                  "`properties.context`; `ip`, `userAgent` and `location` are "
                                  "not stored.")
    integrations: dict[str, Any] | None = None
    channel: str | None = None
    writeKey: str | None = Field(default=None, description="The write key, as analytics.js "
                                                           "sends it (else HTTP Basic).")


class SegmentBatch(BaseModel):
    """A batch of the Segment spec: at most 500 messages and 500 KB, a message at most 32 KB;
    `context` and `sentAt` apply to every message."""

    model_config = ConfigDict(extra="allow")
    batch: list[SegmentMessage] = Field(max_length=MAX_BATCH_EVENTS)
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    sentAt: str | None = None
    writeKey: str | None = None


class SegmentRejection(BaseModel):
    index: int = Field(description="The message's position in the request (0 for a single "
                                   "message).")
    messageId: str | None
    errors: list[Violation] = Field(description="What is wrong, named as the message has it.")


class SegmentResult(BaseModel):
    success: Literal[True]
    rejected: list[SegmentRejection] | None = Field(
        default=None, description="The messages not stored, when some were (the others were).")


class SegmentProblem(Problem):
    """Problem details with what Segment's libraries read of an error: `success`, `code` and
    `message`."""

    success: Literal[False]
    message: str
    rejected: list[SegmentRejection] | None = Field(
        default=None, description="`INVALID_EVENTS`: every message, and what is wrong.")


# -- audiences ---------------------------------------------------------------------------

AUDIENCE_OPERATORS = ("eq", "neq", "in", "contains", "gt", "gte", "lt", "lte", "exists")
AudienceOperator = Literal[AUDIENCE_OPERATORS]  # type: ignore[valid-type]
AUDIENCE_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}[a-z0-9]$"
_TEST_VALUE = ("Compared with the value found: a text, number or true/false; a list for "
               "`in`; a number for `gt`, `gte`, `lt`, `lte`; omitted for `exists`.")


class PropertyTest(BaseModel):
    """A test of an event property: passes when any value found at the path does (`neq`:
    values exist and none equals)."""

    model_config = ConfigDict(extra="forbid")
    property: str = Field(min_length=1, max_length=256,
                          description="A path into the properties; `products.category` steps "
                                      "into objects and lists.")
    op: AudienceOperator
    value: Any = Field(default=None, description=_TEST_VALUE)


class ValueTest(BaseModel):
    """A test of a trait, score or counter; a missing value fails every test."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=256,
                      description="The trait (`city`), score (`ltv_clv`) or counter "
                                  "(`event_count`, `orders`, `orders_online`, `orders_store`, "
                                  "`revenue`).")
    op: AudienceOperator
    value: Any = Field(default=None, description=_TEST_VALUE)


class EventCondition(BaseModel):
    """The customer's events of this name (on the channel, within the last days, passing
    every test) number from `min_count` to `max_count`."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=256, description="e.g. `Product Viewed`")
    channel: ChannelName | None = None
    within_days: int | None = Field(default=None, ge=1, le=3650,
                                    description="Only events of the last N days; omitted: "
                                                "any time.")
    min_count: int | None = Field(default=None, ge=0, le=1_000_000,
                                  description="Default 1 (0 when `max_count` is 0).")
    max_count: int | None = Field(default=None, ge=0, le=1_000_000,
                                  description="`0`: the customer did not do it.")
    where: list[PropertyTest] = Field(default_factory=list, max_length=16)


class AudienceCondition(BaseModel):
    """Exactly one of `event`, `trait`, `score`, `counter`."""

    model_config = ConfigDict(extra="forbid")
    event: EventCondition | None = None
    trait: ValueTest | None = None
    score: ValueTest | None = None
    counter: ValueTest | None = None


class ConsentRequirement(BaseModel):
    """A purpose the customer must have granted: on `channel`, that channel's decision or
    else the every-channel one; without a channel, the every-channel decision."""

    model_config = ConfigDict(extra="forbid")
    purpose: ConsentPurpose
    channel: ChannelName | None = None


class AudienceDefinition(BaseModel):
    """Members are the customers for whom every `include` condition holds, no `exclude`
    condition holds, and the `consent` purpose is granted."""

    model_config = ConfigDict(extra="forbid")
    description: str = Field(default="", max_length=1024)
    include: list[AudienceCondition] = Field(default_factory=list, max_length=32)
    exclude: list[AudienceCondition] = Field(default_factory=list, max_length=32)
    consent: ConsentRequirement | None = None


class Audience(BaseModel):
    name: str
    description: str
    include: list[dict[str, Any]]
    exclude: list[dict[str, Any]]
    consent: dict[str, Any] | None = Field(description="null: no consent required")
    summary: str = Field(description="The rules in words.")
    member_count: int
    created_at: datetime | None
    updated_at: datetime | None


class AudienceWritten(Audience):
    created: bool = Field(description="No audience had this name before.")
    joined: int = Field(description="Customers who joined when it was evaluated.")
    left: int = Field(description="Customers who left when it was evaluated.")


class AudienceList(BaseModel):
    audiences: list[Audience]
    next_page_token: str


class AudienceMember(BaseModel):
    customer_id: str
    since: datetime | None = Field(description="When the customer joined.")
    identifiers: dict[str, list[str]] = Field(
        description="By type; hashed: only `email` and `phone`, each the SHA-256 hex digest "
                    "of the normalised value (e-mail lower-cased and trimmed, phone E.164).")


class AudienceMembers(BaseModel):
    audience: str
    hash: Literal["sha256"] | None = Field(description="How identifiers are hashed; null: "
                                                       "raw.")
    members: list[AudienceMember]
    next_page_token: str


class AudienceChange(BaseModel):
    seq: int
    customer_id: str
    change: Literal["joined", "left"]
    at: datetime
    reason: str = Field(description="defined, ingest, identity, merged, consent, scores or "
                                    "refresh")


class AudienceChanges(BaseModel):
    changes: list[AudienceChange] = Field(description="Oldest first.")
    next_page_token: str


class AudienceDeleted(BaseModel):
    name: str
    deleted: bool

"""The profile service's domain values: events as stored and the unified profile."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from omnicdp.core.errors import FieldViolation
from omnicdp.services.profile.audiences.rules import Audience


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
    """One consent decision: for ``purpose`` on ``channel`` ("" for every channel), the
    customer's ``status`` (granted, denied, withdrawn) decided at ``updated_at``."""

    purpose: str
    channel: str
    status: str
    updated_at: datetime
    source: str = ""
    legal_basis: str = "consent"
    proof_reference: str = ""
    recorded_at: datetime | None = None

    @property
    def granted(self) -> bool:
        return self.status == "granted"


@dataclass(frozen=True)
class Score:
    """A named score of a customer (``ltv_clv``, ``p_alive``, ...) and what computed it."""

    name: str
    value: float
    model: str
    model_version: str
    computed_at: datetime

    def order(self) -> tuple:
        """Which of two scores of one name is kept: the later computed; at the same time the
        greater (value, model, version), so the outcome never depends on arrival order."""
        return (self.computed_at, self.value, self.model, self.model_version)


@dataclass(frozen=True)
class CustomerScores:
    """Scores to write for one customer (``SetScores``)."""

    customer_id: str
    scores: tuple[Score, ...]


@dataclass(frozen=True)
class ScoreWrite:
    """What became of one customer's scores: ``stored``, ``unchanged`` or ``not_found``;
    ``stored_customer_id`` is where they are kept (the survivor of a merge)."""

    customer_id: str
    status: str
    stored_customer_id: str = ""
    scores_stored: int = 0


@dataclass(frozen=True)
class Erasure:
    """What an erasure removed (counts only: no personal data)."""

    customer_id: str
    events: int
    identifiers: int
    consents: int
    records: int
    erased_at: datetime


@dataclass(frozen=True)
class IdentifierDetail:
    """One identifier of a profile: the sources that sent it, when it was first and last
    seen."""

    id_type: str
    value: str
    sources: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class Counters:
    events_by_channel: dict[str, int] = field(default_factory=dict)
    orders_online: int = 0
    orders_store: int = 0
    revenue: float = 0.0


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
    scores: dict[str, Score] = field(default_factory=dict)  # by name
    merged_customer_ids: list[str] = field(default_factory=list)
    identifier_details: list[IdentifierDetail] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)


@dataclass(frozen=True)
class IngestResult:
    """What became of one event: ``accepted``, ``duplicate`` (stored before) or ``rejected``
    (with the violations); ``warnings`` name what was left out of an accepted event."""

    message_id: str
    status: str
    customer_id: str = ""
    violations: tuple[FieldViolation, ...] = ()
    warnings: tuple[FieldViolation, ...] = ()


@dataclass(frozen=True)
class AudienceChange:
    """A customer joined or left an audience (``change``: joined, left), when and why
    (``reason``: defined, ingest, identity, merged, consent, scores, refresh)."""

    seq: int
    customer_id: str
    change: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class AudienceState:
    """An audience's definition as stored, with its member count and, after a write or
    refresh, how many joined and left."""

    audience: Audience
    created_at: datetime
    updated_at: datetime
    members: int
    joined: int = 0
    left: int = 0
    created: bool = False

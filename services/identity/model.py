"""The identity service's values: what goes in (records) and what comes out (resolutions,
customers). Shared by the resolver, the servicer and ``client.py``; no storage, no gRPC."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from omnicdp.core.errors import FieldViolation


@dataclass(frozen=True)
class IdentityRecord:
    """What one source saw together, e.g. in one event: identifiers and the person's traits
    (names, date of birth, address); ``observed_at`` is when. ``record_id`` is the caller's
    reference (e.g. the event's message_id), echoed in the resolution."""

    record_id: str
    identifiers: Mapping[str, str | None]
    observed_at: datetime
    source: str = ""
    traits: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolution:
    """How one record was resolved; ``customer_id`` is ``None`` when it was rejected.

    ``merged_customer_ids``: the customers this record merged into ``customer_id`` as the
    resolver returns it; over gRPC, every customer ever merged into it, so that a consumer
    keeping its own copy can apply merges idempotently and catch up on one it missed.
    """

    record_id: str
    customer_id: str | None
    created: bool = False
    merged_customer_ids: tuple[str, ...] = ()
    matched_on: tuple[str, ...] = ()
    identifiers: dict[str, str] = field(default_factory=dict)
    violations: tuple[FieldViolation, ...] = ()
    # Identifiers left out of linking because they were malformed.
    warnings: tuple[FieldViolation, ...] = ()
    # The identity record the observation is stored as; events keep it, and follow it
    # through merges and splits. Empty when rejected.
    identity_record_id: str = ""
    # An identifier belongs to an erased customer (a tombstone): nothing was stored or linked.
    suppressed: bool = False


@dataclass(frozen=True)
class ResolvedBatch:
    """A batch's resolutions, and the change log position once it was committed: a
    consumer that has applied the log up to ``change_seq`` has seen all of them."""

    resolutions: list[Resolution]
    change_seq: int


@dataclass(frozen=True)
class LinkedCustomer:
    """A live customer: its stable id, its identifiers (by type, in priority order) and the
    ids merged into it."""

    customer_id: str
    identifiers: dict[str, list[str]]
    merged_customer_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Change:
    """One entry of the change log. ``created``/``linked``: ``record_id`` now belongs to
    ``customer_id``; ``merged``: ``other_customer_id`` was merged into ``customer_id``."""

    seq: int
    kind: str
    customer_id: str
    other_customer_id: str | None
    record_id: str | None
    at: datetime


@dataclass(frozen=True)
class Unmerged:
    """A split: ``kept_customer_id`` keeps its id; the records in ``moved_record_ids`` now
    form ``new_customer_id``. ``change_seq`` is the change log's position after it."""

    kept_customer_id: str
    new_customer_id: str
    moved_record_ids: tuple[str, ...]
    change_seq: int


@dataclass(frozen=True)
class Erased:
    customer_id: str
    records_erased: int
    change_seq: int


@dataclass(frozen=True)
class StoredRecord:
    record_id: str
    customer_id: str
    source: str
    features: Mapping[str, str]
    identifiers: Mapping[str, list[str]]
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class StoredLink:
    record_a: str
    record_b: str
    rule: str
    created_at: datetime
    created_by: str
    probability: float | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    # A model's link: (comparison, level, match weight) per comparison.
    weights: tuple[tuple[str, str, float], ...] = ()


@dataclass(frozen=True)
class ReviewItem:
    """A model link or near miss in the uncertainty band."""

    kind: str  # link | near_miss
    record_a: str
    record_b: str
    probability: float
    model_version: str
    customer_a: str
    customer_b: str
    scored_at: datetime


@dataclass(frozen=True)
class Reviewed:
    """Where two records are after a reviewer's decision was applied."""

    customer_a: str
    customer_b: str
    change_seq: int


@dataclass(frozen=True)
class Separation:
    """A customer this one is never merged with, and who said so, when and why."""

    other_customer_id: str
    created_at: datetime
    created_by: str
    reason: str


@dataclass(frozen=True)
class Explanation:
    """Why a customer is one person: its records and the links between them; and the
    customers it is kept apart from."""

    customer_id: str
    records: list[StoredRecord]
    links: list[StoredLink]
    merged_customer_ids: list[str]
    kept_apart: list[Separation] = field(default_factory=list)


@dataclass(frozen=True)
class LinkExplanation:
    """How the serving model scores two records: the prior's weight and each comparison's
    level and weight add up to ``match_weight``; and the stored links between them."""

    model_version: str
    prior_weight: float
    weights: tuple[tuple[str, str, float], ...]
    match_weight: float
    match_probability: float
    threshold: float
    same_customer: bool
    links: tuple[StoredLink, ...] = ()


@dataclass(frozen=True)
class Relinked:
    """What a relink changed: customers merged away and customers split off."""

    merged: int
    split: int
    links_added: int
    links_revoked: int
    change_seq: int

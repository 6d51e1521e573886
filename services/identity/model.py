"""The identity service's values: what goes in (records) and what comes out (resolutions,
customers). Shared by the resolver, the servicer and ``client.py``; no storage, no gRPC."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from omnicdp.core.errors import FieldViolation


@dataclass(frozen=True)
class IdentityRecord:
    """Identifiers seen together, e.g. in one event; ``observed_at`` is when."""

    record_id: str
    identifiers: Mapping[str, str | None]
    observed_at: datetime


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


@dataclass(frozen=True)
class LinkedCustomer:
    """A live customer: its stable id, its identifiers (by type, in priority order) and the
    ids merged into it."""

    customer_id: str
    identifiers: dict[str, list[str]]
    merged_customer_ids: tuple[str, ...] = ()

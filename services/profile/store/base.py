"""The storage interface of the profile service.

Backends: DuckDB (embedded, the default) and PostgreSQL (several replicas). Every write is
one transaction and is committed before the method returns, so what a caller acknowledges
is durable. Page cursors are plain tuples; the service turns them into opaque tokens.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from omnicdp.services.profile.model import Profile, StoredEvent

# The stored event's columns, in the order every backend selects them.
EVENT_COLUMNS = ("seq, message_id, customer_id, type, event, channel, source, ts, received_at, "
                 "identifiers, traits, properties")
# (customer_id, id_type, normalised value, first seen)
IdentifierRow = tuple[str, str, str, datetime]
# Position after which a customer's journey continues: (timestamp, seq).
JourneyCursor = tuple[datetime, int]


def latest_traits(snapshots: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Fold trait snapshots, oldest first: the latest non-empty value of each trait wins."""
    traits: dict[str, Any] = {}
    for snapshot in snapshots:
        traits.update({k: v for k, v in snapshot.items() if v not in (None, "")})
    return traits


class ProfileStore(ABC):
    @abstractmethod
    def known_message_ids(self, message_ids: Sequence[str]) -> dict[str, str]:
        """The message ids already stored, each with its (current) customer id."""

    @abstractmethod
    def append(self, events: Sequence[StoredEvent], identifiers: Iterable[IdentifierRow],
               merges: Sequence[tuple[str, Sequence[str]]] = ()) -> set[str]:
        """In one transaction: apply merges (survivor, merged ids; ids already merged into
        the survivor are skipped, so repeating a merge is free), store the events whose
        message id is new, and attach the identifiers. Returns the message ids stored now;
        the others were stored before (a concurrent retry)."""

    @abstractmethod
    def canonical_customer_id(self, customer_id: str) -> str:
        """The id a customer is known by now, following merges."""

    @abstractmethod
    def get_profile(self, customer_id: str) -> Profile | None:
        """The profile, or None when no event of the customer is stored."""

    @abstractmethod
    def list_customer_events(self, customer_id: str, after: JourneyCursor | None,
                             limit: int) -> list[StoredEvent]:
        """A customer's events, oldest first, strictly after the cursor."""

    @abstractmethod
    def list_events(self, after_seq: int, limit: int) -> list[StoredEvent]:
        """All events in storage order, with seq greater than after_seq."""

    @abstractmethod
    def close(self) -> None: ...

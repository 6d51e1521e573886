"""The storage interface of the profile service.

Events are stored once (``message_id`` is the key) and never rewritten: each stays keyed to
the identity record it was resolved as. Which customer a record belongs to is a mapping that
follows the identity service's change log, applied in order and idempotently, with the log
position stored in the same transaction; so however merges race with ingestion, an event is
read under its record's customer of the moment. Backends: DuckDB (embedded, the default)
and PostgreSQL (several replicas). Every write is one transaction, committed before the
method returns.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from omnicdp.core.sql import aware_utc
from omnicdp.services.identity.client import Change
from omnicdp.services.profile.audiences.export import Member
from omnicdp.services.profile.audiences.rules import Audience
from omnicdp.services.profile.model import (
    AudienceChange,
    AudienceState,
    Consent,
    CustomerScores,
    Erasure,
    Profile,
    Score,
    ScoreWrite,
    StoredEvent,
)

# (record_id, id_type, normalised value, first seen)
IdentifierRow = tuple[str, str, str, datetime]
# Position after which a customer's journey continues: (timestamp, seq).
JourneyCursor = tuple[datetime, int]


def json_value(value: Any) -> Any:
    """A JSON column as read: text from DuckDB, already decoded from PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


def scores_from_json(text: str | None) -> dict[str, Score]:
    """A profile row's scores, by name."""
    return {name: Score(name, value, model, version,
                        aware_utc(datetime.fromisoformat(computed)))
            for name, value, model, version, computed in json_value(text or "[]")}


def consents_from_json(text: str | None) -> list[Consent]:
    """A profile row's current consent decisions."""
    return [Consent(purpose, channel, status, aware_utc(datetime.fromisoformat(decided)),
                    source, basis, proof, aware_utc(datetime.fromisoformat(recorded)))
            for purpose, channel, status, decided, source, basis, proof, recorded
            in json_value(text or "[]")]


class ProfileStore(ABC):
    @abstractmethod
    def known_message_ids(self, message_ids: Sequence[str]) -> dict[str, str]:
        """The message ids already stored, each with its record's current customer."""

    @abstractmethod
    def append(self, events: Sequence[StoredEvent],
               identifiers: Iterable[IdentifierRow]) -> set[str]:
        """In one transaction: store the events whose message id is new and the records'
        identifiers. Returns the message ids stored now; the others were stored before (a
        concurrent retry)."""

    @abstractmethod
    def change_cursor(self) -> int:
        """The last identity change log entry applied."""

    @abstractmethod
    def apply_changes(self, changes: Sequence[Change]) -> int:
        """Apply, in order and in one transaction, the changes after the cursor (others are
        skipped, so applying twice is harmless), move the cursor, return it: records join
        customers (created, linked, split), customers merge (a survivor keeps the later
        computed score of each name), erased customers' events, identifiers, consents and
        scores are deleted."""

    @abstractmethod
    def canonical_customer_id(self, customer_id: str) -> str:
        """The id a customer is known by now, following merges."""

    @abstractmethod
    def get_profile(self, customer_id: str) -> Profile | None:
        """The golden record as stored (never folded from the events here), under the id
        the customer is known by now; None when no event of the customer is stored."""

    @abstractmethod
    def lookup_profile(self, id_type: str, value: str) -> Profile | None:
        """The profile of the customer holding a normalised identifier (of those holding it,
        the one seen most recently), as ``get_profile`` reads it; None when none does."""

    @abstractmethod
    def list_customer_events(self, customer_id: str, after: JourneyCursor | None,
                             limit: int) -> list[StoredEvent]:
        """A customer's events, oldest first, strictly after the cursor."""

    @abstractmethod
    def list_events(self, after_seq: int, limit: int,
                    through_seq: int | None = None) -> list[StoredEvent]:
        """All events in storage order, with seq greater than after_seq (and at most
        through_seq)."""

    @abstractmethod
    def last_event_seq(self) -> int:
        """The highest storage sequence number so far (0: none)."""

    @abstractmethod
    def record_consents(self, customer_id: str,
                        decisions: Sequence[Consent]) -> list[Consent] | None:
        """Keep the decisions a customer has not made already (same purpose, channel,
        status, time, source, basis and proof) and return the current consents; None when
        the customer has no profile."""

    @abstractmethod
    def consent_history(self, customer_id: str, offset: int,
                        limit: int) -> list[Consent] | None:
        """A customer's decisions, newest first; None when the customer has no profile."""

    @abstractmethod
    def set_scores(self, entries: Sequence[CustomerScores]) -> list[ScoreWrite]:
        """In one transaction: keep each score unless the customer's stored score of that
        name was computed later (or is the same); a merged-away id writes to its survivor.
        One result per entry, in order; an unknown customer is ``not_found``."""

    @abstractmethod
    def record_erasure(self, erasure: Erasure, actor: str, change_seq: int) -> None:
        """Add an entry to the erasure audit log (who, which customer, when, counts)."""

    @abstractmethod
    def erasure_log(self) -> list[tuple[Erasure, str]]:
        """The erasure audit log, oldest first, with who asked for each."""

    @abstractmethod
    def put_audience(self, audience: Audience) -> AudienceState:
        """In one transaction: define or redefine an audience and evaluate it over every
        candidate customer; its state with how many joined and left."""

    @abstractmethod
    def get_audience(self, name: str) -> AudienceState | None: ...

    @abstractmethod
    def list_audiences(self) -> list[AudienceState]:
        """Every audience, by name, with its member count."""

    @abstractmethod
    def delete_audience(self, name: str) -> bool:
        """Delete an audience with its members and changes; False when there is none."""

    @abstractmethod
    def refresh_audiences(self, names: Sequence[str] | None = None) -> list[AudienceState]:
        """Evaluate audiences (all when None) again, so memberships whose window closed
        end; each with how many joined and left."""

    @abstractmethod
    def audience_members(self, name: str, after_customer: str,
                         limit: int) -> list[Member] | None:
        """Members by customer id after ``after_customer``, with their identifiers; None
        when there is no such audience."""

    @abstractmethod
    def audience_changes(self, name: str, after_seq: int,
                         limit: int) -> list[AudienceChange] | None:
        """Joins and leaves in order after ``after_seq``; None when there is no such
        audience."""

    @abstractmethod
    def close(self) -> None: ...

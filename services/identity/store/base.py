"""The identity graph's storage interface: records, links, customers, and their change log.

- A *record* is one distinct observation of a person: its source, normalised identifiers and
  features. Its id is derived from its content, so observing it again finds it again.
- A *link* joins two records, with its provenance (the rule that made it, when, by whom) and,
  once revoked, when and why.
- A *customer* is a cluster of linked records with a stable id: issued once, never reused. A
  merged customer keeps its row, redirected to the survivor, so every id ever handed out
  still resolves.
- Every change to a customer (a record created it or joined it, two customers merged) gets
  the next number in an ordered *change log* that consumers (the profile service) follow.

Writes happen in :meth:`IdentityStore.transaction`, on a working set of the graph loaded for
the batch (``graph.py``); they become durable together, with their change log entries,
before the block ends, or not at all. Backends: DuckDB (``duckdb.py``, one process) and
PostgreSQL (``postgres.py``, several replicas).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from omnicdp.core.vocabulary import PRIORITY
from omnicdp.services.identity.model import (
    Change,
    Erased,
    Relinked,
    Reviewed,
    ReviewItem,
    Separation,
    StoredLink,
    StoredRecord,
    Unmerged,
)

if TYPE_CHECKING:
    from omnicdp.services.identity.store.graph import GraphTransaction

T = TypeVar("T")


@dataclass(frozen=True)
class Customer:
    customer_id: str
    created_at: datetime
    merged_into: str | None


@dataclass(frozen=True)
class IdentifierMatch:
    """A live customer holding one of the identifiers searched for."""

    id_type: str
    value: str
    customer_id: str
    last_seen: datetime
    customer_created_at: datetime


@dataclass(frozen=True)
class IdentifierRow:
    id_type: str
    value: str
    customer_id: str
    first_seen: datetime
    last_seen: datetime


class IdentityStore(ABC):
    """Records, links, customers and the change log; see the module documentation."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[GraphTransaction]:
        """A unit of work on a working set of the graph: committed with its change log
        entries before the block ends (``graph.change_seq`` is then the log's position),
        or, if the block raises, not at all."""

    @abstractmethod
    def run_transaction(self, work: Callable[[GraphTransaction], T]) -> tuple[T, int]:
        """Run ``work`` on a fresh working set and commit it; its result and the change log
        position after it. A backend that aborts a transaction on a conflict with a
        concurrent one runs ``work`` again from the start."""

    @abstractmethod
    def get_customer(self, customer_id: str) -> Customer | None:
        """The customer row as stored (a merged customer has ``merged_into`` set)."""

    @abstractmethod
    def resolve_redirects(self, customer_id: str) -> str | None:
        """The live customer an id stands for today, following merges; ``None`` if unknown."""

    @abstractmethod
    def merged_customer_ids_of(self, customer_ids: Sequence[str]) -> dict[str, list[str]]:
        """For each live customer, the ids that redirect to it, oldest first."""

    @abstractmethod
    def count_customers(self, include_merged: bool = False) -> int: ...

    @abstractmethod
    def find_matches(self, identifiers: Mapping[str, str]) -> list[IdentifierMatch]:
        """Live customers holding any of the normalised identifiers, ordered by identifier
        priority, then most recently seen with the value, then oldest customer."""

    @abstractmethod
    def identifier_rows(self, customer_id: str) -> list[IdentifierRow]:
        """Identifiers stored for exactly this customer id (no redirects), by priority."""

    @abstractmethod
    def records_of(self, customer_id: str) -> list[StoredRecord]:
        """The records of the customer an id stands for, oldest first."""

    @abstractmethod
    def links_of(self, record_ids: Sequence[str]) -> list[StoredLink]:
        """Every link (active or revoked) touching one of the records."""

    @abstractmethod
    def separations_of(self, customer_id: str) -> list[Separation]:
        """The customers this one is kept apart from, oldest decision first."""

    @abstractmethod
    def get_records(self, record_ids: Sequence[str]) -> list[StoredRecord]:
        """The records that exist among ``record_ids``, each with its live customer."""

    @abstractmethod
    def review_items(self, low: float, high: float, limit: int,
                     offset: int = 0) -> list[ReviewItem]:
        """Active model links and near misses with ``low <= probability < high`` that no
        reviewer decided yet, least certain first."""

    @abstractmethod
    def review(self, record_a: str, record_b: str, accept: bool, actor: str, reason: str,
               probability: float | None = None) -> Reviewed:
        """Store a reviewer's decision as a label and apply it: accept merges the records'
        customers (unless a one-per-person identifier forbids it), reject revokes the links
        that hold them together, splits the customer between them and keeps the parts
        apart."""

    @abstractmethod
    def review_labels(self) -> list[tuple[str, str, bool]]:
        """Every reviewer's decision: (record_a, record_b, accepted)."""

    @abstractmethod
    def history(self) -> tuple[list[tuple[str, str, str, dict, dict]], list[tuple[str, str, str]],
                               dict[str, set[str]]]:
        """Everything a relink reads: every record (id, customer, source, features,
        identifiers), every active link (a, b, rule), and the customers kept apart."""

    @abstractmethod
    def apply_relink(self, clusters: Sequence[Sequence[str]],
                     new_links: Sequence[tuple[str, str, float, str]],
                     revoked: Sequence[tuple[str, str]], model_version: str,
                     actor: str) -> Relinked:
        """Make the customers hold ``clusters`` of records: split customers whose records
        fall in several (the part with most records keeps the id), merge customers that
        share one (the oldest id survives), revoke ``revoked`` model links and add
        ``new_links``; all through the change log, in one transaction."""

    @abstractmethod
    def unmerge(self, customer_id: str, record_ids: Sequence[str], actor: str,
                reason: str) -> Unmerged:
        """Split a customer by record sets, revoking the links between the parts; the part
        with more records keeps the id, the other gets a new one."""

    @abstractmethod
    def split_placeholder(self, id_type: str, value: str, reason: str) -> int:
        """Revoke the links an identifier found not identifying made, and split what they
        held together; the change log position after it."""

    @abstractmethod
    def erase(self, customer_id: str, actor: str, reason: str) -> Erased:
        """Delete the customer's records, features, identifiers and links; keep hashed
        tombstones and an audit entry without personal data."""

    @abstractmethod
    def is_erased(self, id_type: str, value: str) -> bool:
        """Whether a normalised identifier belonged to an erased customer."""

    @abstractmethod
    def changes(self, after_seq: int, limit: int) -> list[Change]:
        """Change log entries with ``seq > after_seq``, in order."""

    @abstractmethod
    def last_change_seq(self) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    def merged_customer_ids(self, customer_id: str) -> list[str]:
        """Ids that redirect to this customer, oldest first."""
        return self.merged_customer_ids_of([customer_id]).get(customer_id, [])

    def customer_identifiers(self, customer_id: str) -> dict[str, list[str]]:
        """Identifiers of the customer an id stands for (following merges), by priority;
        :class:`~omnicdp.core.errors.NotFound` for an id that was never issued."""
        from omnicdp.core.errors import NotFound

        live_id = self.resolve_redirects(customer_id)
        if live_id is None:
            raise NotFound(f"customer {customer_id} does not exist",
                           metadata={"customer_id": customer_id})
        identifiers: dict[str, list[str]] = {}
        for row in self.identifier_rows(live_id):
            identifiers.setdefault(row.id_type, []).append(row.value)
        return identifiers

    def find_customers(self, id_type: str, value: str) -> list[str]:
        """Live customers holding a normalised identifier, most recently seen with it first."""
        return [match.customer_id for match in self.find_matches({id_type: value})]

    def lookup(self, id_type: str, value: str) -> str | None:
        """The live customer most recently seen with a normalised identifier, if any."""
        customers = self.find_customers(id_type, value)
        return customers[0] if customers else None

    def __enter__(self) -> IdentityStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def new_customer_id() -> str:
    """``cus_`` and 24 lower-case hex characters of a random UUID."""
    return "cus_" + uuid.uuid4().hex[:24]


def sort_identifier_rows(rows: list[IdentifierRow]) -> list[IdentifierRow]:
    return sorted(rows, key=lambda row: (PRIORITY.get(row.id_type, len(PRIORITY)), row.value))

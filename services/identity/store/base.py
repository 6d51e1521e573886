"""The identity graph's storage interface: customers, their identifiers, and merges.

A customer id is issued once and never reused; a merged customer keeps its row, redirected
to the survivor, so an id handed out once resolves forever. Every method is safe to call
from several threads; writes inside :meth:`IdentityStore.transaction` become durable
together, before the block returns, or not at all. Backends: DuckDB (``duckdb.py``).
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime


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
    """Customers and normalised identifiers; see the module documentation."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """A unit of work: its reads see its writes, no other thread sees them before it is
        committed, and it is committed before the block ends (or undone if it raises)."""

    @abstractmethod
    def create_customer(self, created_at: datetime) -> str:
        """Issue a new customer id; ``created_at`` decides who survives a later merge."""

    @abstractmethod
    def get_customer(self, customer_id: str) -> Customer | None:
        """The customer row as stored (a merged customer has ``merged_into`` set)."""

    @abstractmethod
    def resolve_redirects(self, customer_id: str) -> str | None:
        """The live customer an id stands for today, following merges; ``None`` if unknown."""

    @abstractmethod
    def merged_customer_ids(self, customer_id: str) -> list[str]:
        """Ids that redirect to this customer, oldest first."""

    @abstractmethod
    def count_customers(self, include_merged: bool = False) -> int: ...

    @abstractmethod
    def merge(self, survivor_id: str, loser_id: str) -> None:
        """Fold ``loser_id`` into ``survivor_id``: redirect it and move its identifiers."""

    @abstractmethod
    def attach_identifiers(self, customer_id: str, identifiers: Mapping[str, str],
                           seen_at: datetime) -> None:
        """Record that the customer was seen with these normalised identifiers."""

    @abstractmethod
    def find_matches(self, identifiers: Mapping[str, str]) -> list[IdentifierMatch]:
        """Live customers holding any of the normalised identifiers, ordered by identifier
        priority, then most recently seen with the value, then oldest customer."""

    @abstractmethod
    def identifiers_of(self, customer_ids: Iterable[str]) -> dict[str, dict[str, set[str]]]:
        """Identifiers stored for exactly these customer ids (no redirects), by id and type."""

    @abstractmethod
    def identifier_rows(self, customer_id: str) -> list[IdentifierRow]:
        """Identifiers stored for exactly this customer id (no redirects), by priority."""

    @abstractmethod
    def customer_identifiers(self, customer_id: str) -> dict[str, list[str]]:
        """Identifiers of the customer an id stands for (following merges), by priority;
        :class:`~omnicdp.core.errors.NotFound` for an id that was never issued."""

    @abstractmethod
    def close(self) -> None: ...

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

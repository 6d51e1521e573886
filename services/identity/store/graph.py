"""One transaction's view of the identity graph: what a batch of records needs, loaded from
the store when first asked for, changed in memory, and handed to the backend as a delta.

Nothing outlives the transaction: memory is bounded by the batch, not by the number of
customers, and a restart reloads nothing. A backend provides the loads (``GraphSource``) and
writes the ``Delta`` in the same database transaction that the loads read in, so the
working set is as complete as the database: for every identifier it has *loaded*, it knows
every live customer holding it; for every customer it has loaded, every identifier.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, Protocol

from omnicdp.core.digests import sha256_hex
from omnicdp.core.errors import NotFound
from omnicdp.core.sql import aware_utc, naive_utc
from omnicdp.core.vocabulary import PRIORITY
from omnicdp.services.identity.store.base import IdentifierMatch, new_customer_id

Key = tuple[str, str]  # (id_type, normalised value)


def key_hash(id_type: str, value: str) -> int:
    """A signed 64-bit hash of an identifier: the indexed lookup key in every backend."""
    digest = hashlib.blake2b(f"{id_type}\0{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def name_digest(kind: str, name: str) -> str:
    """A first name or birth date as the placeholder guard keeps it: only whether two are
    the same matters, so the name itself is not stored."""
    return sha256_hex(f"{kind}:{name}")


class Seen(NamedTuple):
    """When a customer was first and last seen with an identifier, and the latest record
    that carried it (the end a link to this customer is drawn to)."""

    first: datetime
    last: datetime
    record_id: str


class CustomerRow(NamedTuple):
    created_at: datetime
    merged_into: str | None
    # Customers a person said are someone else (an unmerge): never merged with this one.
    apart: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NewRecord:
    record_id: str
    customer_id: str
    source: str
    features: Mapping[str, str]
    identifiers: Mapping[str, str]
    seen_at: datetime
    # Hashed keys under which a model's candidate search finds the record (``matching.py``).
    blocking: tuple[int, ...] = ()


@dataclass(frozen=True)
class NewLink:
    record_a: str
    record_b: str
    rule: str
    created_at: datetime
    created_by: str | None = None  # None: the deterministic rules
    probability: float | None = None
    weights: str | None = None  # a model's per-comparison weights, as JSON


@dataclass(frozen=True)
class LinkTo:
    """A link from a new record to a stored one, and what made it."""

    other: str
    rule: str
    created_by: str | None = None  # None: the deterministic rules
    probability: float | None = None
    weights: str | None = None


@dataclass(frozen=True)
class StoredCandidate:
    """A record found by a blocking key: its customer, features and identifiers."""

    record_id: str
    customer_id: str
    features: Mapping[str, str]
    identifiers: Mapping[str, str]


@dataclass(frozen=True)
class ChangeEntry:
    """A change to a customer, in the order it happened; the backend numbers them."""

    kind: str  # created | linked | merged
    customer_id: str
    other_customer_id: str | None = None
    record_id: str | None = None


#: Identifier types whose values a household or a cashier may share by mistake or on
#: purpose; they stop identifying once seen with too many different names or birth dates.
WATCHED_TYPES = frozenset({"email", "phone"})
NAME_KINDS = ("first_name", "date_of_birth")


@dataclass
class Delta:
    """What a transaction changed, for the backend to write."""

    new_customers: dict[str, datetime] = field(default_factory=dict)
    merges: list[tuple[str, str]] = field(default_factory=list)  # (survivor, loser), in order
    # Rows to insert: an identifier new to its customer (first seen, or moved to it by a
    # merge); never a row the store holds.
    identifiers: dict[tuple[str, str, str], Seen] = field(default_factory=dict)
    # Rows the store holds that were seen again (or met a merged customer's row): only their
    # times and latest record advance.
    sightings: dict[tuple[str, str, str], Seen] = field(default_factory=dict)
    new_records: dict[str, NewRecord] = field(default_factory=dict)
    seen_records: dict[str, datetime] = field(default_factory=dict)  # existing -> last seen
    links: list[NewLink] = field(default_factory=list)
    changes: list[ChangeEntry] = field(default_factory=list)
    # (id_type, value, kind, name digest) seen for the first time (``name_digest``)
    names: list[tuple[str, str, str, str]] = field(default_factory=list)
    # (customer, other) pairs kept apart, inherited by a merge's survivor (both directions)
    separations: set[tuple[str, str]] = field(default_factory=set)
    placeholders: dict[Key, str] = field(default_factory=dict)  # found now -> why
    # (record, other record) the model scored just below its threshold -> (p, model version)
    near_misses: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.new_customers or self.merges or self.identifiers or self.sightings
                    or self.new_records or self.seen_records or self.links or self.changes
                    or self.names or self.placeholders or self.separations
                    or self.near_misses)


class GraphSource(Protocol):
    """The loads a backend answers inside its open database transaction."""

    def holders(self, keys: Sequence[Key]) -> list[tuple[str, str, str]]:
        """(id_type, value, customer_id) of every live customer holding one of the keys."""

    def customers(self, customer_ids: Sequence[str]
                  ) -> tuple[dict[str, CustomerRow], list[tuple[str, str, str, Seen]]]:
        """The customers' rows, and every identifier they hold: (type, value, customer, seen)."""

    def records(self, record_ids: Sequence[str]) -> dict[str, str]:
        """The live customer of each record that exists."""

    def names(self, keys: Sequence[Key]) -> tuple[list[tuple[str, str, str, str]], set[Key]]:
        """The names seen with these identifiers, (type, value, kind, name digest), and
        which of them are known placeholders."""

    def candidates(self, keys: Sequence[int], per_key: int) -> dict[int, list[StoredCandidate]]:
        """Stored records under each of the hashed blocking keys (the first ``per_key`` by
        record id), with their customers as stored."""

    def erased_among(self, keys: Sequence[Key]) -> set[Key]:
        """Which of these identifiers an erased customer held (their tombstones)."""


class GraphTransaction:
    """The working set of one transaction (see the module documentation)."""

    def __init__(self, source: GraphSource) -> None:
        self._source = source
        self._customers: dict[str, CustomerRow] = {}
        self._holders: dict[Key, dict[str, Seen]] = {}
        self._keys_of: dict[str, set[Key]] = {}
        self._complete_keys: set[Key] = set()
        self._records: dict[str, str | None] = {}  # record -> customer (None: does not exist)
        self._unannounced: set[str] = set()  # created here, no record stored in them yet
        self._names: dict[Key, dict[str, set[str]]] = {}  # key -> kind -> name digests
        self._placeholders: set[Key] = set()
        self._blocked: dict[int, list[StoredCandidate]] = {}  # blocking key -> stored records
        self.delta = Delta()
        self.change_seq = 0  # set by the backend when the delta is committed

    # -- loading -------------------------------------------------------------------------

    def prefetch(self, keys: Iterable[Key],
                 records: Iterable[tuple[str, Iterable[Key]]] = ()) -> None:
        """Load what these identifiers and records (with their identifiers) need, in a few
        queries."""
        records = [(record_id, list(record_keys)) for record_id, record_keys in records]
        keys = [*keys, *(key for _, record_keys in records for key in record_keys)]
        missing = sorted({k for k in keys if k not in self._complete_keys})
        if missing:
            holders = self._source.holders(missing)
            self._load_customers({customer_id for _, _, customer_id in holders})
            self._complete_keys.update(missing)
            watched = [k for k in missing if k[0] in WATCHED_TYPES]
            if watched:
                names, placeholders = self._source.names(watched)
                for id_type, value, kind, name in names:
                    self._names.setdefault((id_type, value), {}).setdefault(kind, set()).add(name)
                self._placeholders |= placeholders
        # A stored record's customer holds every identifier of the record, so a record with
        # an identifier nobody holds is new: only the others are looked up.
        wanted = set()
        for record_id, record_keys in records:
            if record_id in self._records:
                continue
            if all(self._holders.get(key) for key in record_keys):
                wanted.add(record_id)
            else:
                self._records[record_id] = None
        wanted = sorted(wanted)
        if wanted:
            found = self._source.records(wanted)
            for record_id in wanted:
                self._records[record_id] = found.get(record_id)

    def erased_among(self, keys: Iterable[Key]) -> set[Key]:
        """Which of these identifiers belonged to an erased customer (suppression)."""
        wanted = sorted(set(keys))
        return self._source.erased_among(wanted) if wanted else set()

    def prefetch_candidates(self, keys: Iterable[int], per_key: int) -> None:
        """Load the stored records under these blocking keys in one query (a batch's new
        records together, rather than two queries a record)."""
        missing = sorted(set(keys) - self._blocked.keys())
        if missing:
            found = self._source.candidates(missing, per_key)
            for key in missing:
                self._blocked[key] = found.get(key, [])

    def candidates(self, keys: Sequence[int], per_key: int) -> list[StoredCandidate]:
        """Records under any of the hashed blocking keys, stored (the first ``per_key`` of a
        key) or added in this transaction, each with the customer it is in now."""
        wanted = set(keys)
        self.prefetch_candidates(wanted, per_key)
        found = {c.record_id: c for key in wanted for c in self._blocked[key]}
        for record in self.delta.new_records.values():
            if not wanted.isdisjoint(record.blocking):
                found[record.record_id] = StoredCandidate(
                    record.record_id, record.customer_id, record.features, record.identifiers)
        out = []
        for candidate in found.values():
            customer_id = self.final_customer(self._records.get(candidate.record_id)
                                              or candidate.customer_id)
            self._records.setdefault(candidate.record_id, customer_id)
            out.append(candidate if customer_id == candidate.customer_id
                       else StoredCandidate(candidate.record_id, customer_id,
                                            candidate.features, candidate.identifiers))
        return sorted(out, key=lambda c: c.record_id)

    def customer_created_at(self, customer_id: str) -> datetime:
        """When the customer was created, as :meth:`find_matches` tells it (aware UTC)."""
        return aware_utc(self._customer(customer_id).created_at)

    def is_placeholder(self, key: Key) -> bool:
        """Whether an identifier (prefetched) was found not identifying."""
        return key in self._placeholders

    def names_seen(self, key: Key, kind: str = "first_name") -> int:
        """How many different names (or birth dates) an e-mail or phone was seen with, up
        to the placeholder threshold (after :meth:`observe_names`)."""
        return len(self._names.get(key, {}).get(kind, ()))

    def _load_customers(self, customer_ids: Iterable[str]) -> None:
        wanted = sorted(c for c in customer_ids if c not in self._customers)
        if not wanted:
            return
        rows, identifiers = self._source.customers(wanted)
        self._customers.update(rows)
        for id_type, value, customer_id, seen in identifiers:
            key = (id_type, value)
            self._holders.setdefault(key, {})[customer_id] = seen
            self._keys_of.setdefault(customer_id, set()).add(key)

    # -- reads ---------------------------------------------------------------------------

    def find_matches(self, identifiers: Mapping[str, str]) -> list[IdentifierMatch]:
        """Live customers holding any of the identifiers, by identifier priority, then most
        recently seen with the value, then oldest customer."""
        self.prefetch(identifiers.items())
        matches = []
        for key in identifiers.items():
            if key in self._placeholders:
                continue  # not identifying: it links no one
            for customer_id, seen in self._holders.get(key, {}).items():
                row = self._customers[customer_id]
                if row.merged_into is None:
                    matches.append(IdentifierMatch(key[0], key[1], customer_id,
                                                   aware_utc(seen.last), aware_utc(row.created_at)))
        matches.sort(key=lambda m: (PRIORITY.get(m.id_type, len(PRIORITY)),
                                    -m.last_seen.timestamp(), m.customer_created_at,
                                    m.customer_id))
        return matches

    def identifiers_of(self, customer_ids: Iterable[str]) -> dict[str, dict[str, set[str]]]:
        ids = sorted(set(customer_ids))
        self._load_customers(ids)
        result: dict[str, dict[str, set[str]]] = {}
        for customer_id in ids:
            sets: dict[str, set[str]] = {}
            for id_type, value in self._keys_of.get(customer_id, ()):
                sets.setdefault(id_type, set()).add(value)
            result[customer_id] = sets
        return result

    def record_customer(self, record_id: str, keys: Iterable[Key]) -> str | None:
        """The live customer of an existing record (with these identifiers), or None for a
        record not seen before."""
        self.prefetch((), [(record_id, keys)])
        customer_id = self._records[record_id]
        return None if customer_id is None else self.final_customer(customer_id)

    def observe_names(self, identifiers: Mapping[str, str], features: Mapping[str, str],
                      threshold: int) -> None:
        """Note the record's first name and birth date against its shared-prone identifiers;
        one seen with ``threshold`` different names (or dates) becomes a placeholder. Names
        are kept up to the threshold only, as digests (``name_digest``)."""
        for key in identifiers.items():
            if key[0] not in WATCHED_TYPES or key in self._placeholders:
                continue
            self.prefetch([key])
            for kind in NAME_KINDS:
                name = features.get(kind)
                seen = self._names.setdefault(key, {}).setdefault(kind, set())
                if not name or (digest := name_digest(kind, name)) in seen:
                    continue
                seen.add(digest)
                self.delta.names.append((key[0], key[1], kind, digest))
                if len(seen) >= threshold:
                    self._placeholders.add(key)
                    self.delta.placeholders[key] = (
                        f"{key[0]} seen with {len(seen)} different {kind.replace('_', ' ')}s")
                    break

    def link_target(self, customer_id: str, key: Key) -> str | None:
        """The record of the customer that most recently carried the identifier."""
        seen = self._holders.get(key, {}).get(customer_id)
        return seen.record_id if seen is not None else None

    def _customer(self, customer_id: str) -> CustomerRow:
        self._load_customers([customer_id])
        row = self._customers.get(customer_id)
        if row is None:
            raise NotFound(f"customer {customer_id} does not exist",
                           metadata={"customer_id": customer_id})
        return row

    # -- writes --------------------------------------------------------------------------

    def create_customer(self, created_at: datetime) -> str:
        customer_id = new_customer_id()
        row = CustomerRow(naive_utc(created_at), None)
        self._customers[customer_id] = row
        self.delta.new_customers[customer_id] = row.created_at
        self._unannounced.add(customer_id)
        return customer_id

    def merge(self, survivor_id: str, loser_id: str) -> None:
        """Fold ``loser_id`` into ``survivor_id``: redirect it and move its identifiers."""
        if survivor_id == loser_id:
            raise ValueError("cannot merge a customer into itself")
        for customer_id in (survivor_id, loser_id):
            if self._customer(customer_id).merged_into is not None:
                raise ValueError(f"customer {customer_id} was already merged")
        loser, survivor = self._customers[loser_id], self._customers[survivor_id]
        if survivor_id in loser.apart or loser_id in survivor.apart:
            raise ValueError(f"customers {survivor_id} and {loser_id} are kept apart")
        self._customers[loser_id] = CustomerRow(loser.created_at, survivor_id, loser.apart)
        self._customers[survivor_id] = survivor._replace(apart=survivor.apart | loser.apart)
        for other in loser.apart - survivor.apart:
            self.delta.separations |= {(survivor_id, other), (other, survivor_id)}
            if other in self._customers:
                row = self._customers[other]
                self._customers[other] = row._replace(apart=row.apart | {survivor_id})
        for customer_id, row in list(self._customers.items()):
            if row.merged_into == loser_id:
                self._customers[customer_id] = row._replace(merged_into=survivor_id)
        for key in list(self._keys_of.get(loser_id, ())):
            holders = self._holders[key]
            moved = holders.pop(loser_id)
            kept = holders.get(survivor_id)
            survivor_row, loser_row = (key[0], key[1], survivor_id), (key[0], key[1], loser_id)
            if kept is None:
                self.delta.identifiers[survivor_row] = moved
            else:
                latest = moved.record_id if moved.last > kept.last else kept.record_id
                moved = Seen(min(kept.first, moved.first), max(kept.last, moved.last), latest)
                # The survivor's row exists (or is new in this transaction): seen again.
                rows = (self.delta.identifiers if survivor_row in self.delta.identifiers
                        else self.delta.sightings)
                rows[survivor_row] = moved
            holders[survivor_id] = moved
            self._keys_of.setdefault(survivor_id, set()).add(key)
            # The loser's stored rows go with it as a whole (the backend deletes them).
            self.delta.identifiers.pop(loser_row, None)
            self.delta.sightings.pop(loser_row, None)
        self._keys_of.pop(loser_id, None)
        for record_id, customer_id in self._records.items():
            if customer_id == loser_id:
                self._records[record_id] = survivor_id
        self.delta.merges.append((survivor_id, loser_id))
        self.delta.changes.append(ChangeEntry("merged", survivor_id, loser_id))

    def attach_identifiers(self, customer_id: str, identifiers: Mapping[str, str],
                           seen_at: datetime, record_id: str) -> None:
        """The customer was seen with these identifiers in this record at ``seen_at``."""
        seen = naive_utc(seen_at)
        for key in identifiers.items():
            holders = self._holders.setdefault(key, {})
            old = holders.get(customer_id)
            if old is None:
                new = Seen(seen, seen, record_id)
            else:
                new = Seen(min(old.first, seen), max(old.last, seen),
                           record_id if seen >= old.last else old.record_id)
            if new != old:
                holders[customer_id] = new
                self._keys_of.setdefault(customer_id, set()).add(key)
                row = (key[0], key[1], customer_id)
                if old is None or row in self.delta.identifiers:
                    self.delta.identifiers[row] = new
                else:
                    self.delta.sightings[row] = new

    def add_record(self, record: NewRecord, links: Sequence[LinkTo]) -> None:
        """Store a record observed for the first time in ``record.customer_id``, linked to
        existing records as ``links`` say; or, for a known record, note that it was seen."""
        if self._records.get(record.record_id) is not None:
            previous = self.delta.seen_records.get(record.record_id)
            self.delta.seen_records[record.record_id] = max(
                naive_utc(record.seen_at), previous or datetime.min)
        else:
            self._records[record.record_id] = record.customer_id
            self.delta.new_records[record.record_id] = record
            kind = "created" if record.customer_id in self._unannounced else "linked"
            self._unannounced.discard(record.customer_id)
            self.delta.changes.append(ChangeEntry(kind, record.customer_id,
                                                  record_id=record.record_id))
        for link in links:
            if link.other != record.record_id:
                self.delta.links.append(NewLink(record.record_id, link.other, link.rule,
                                                naive_utc(record.seen_at), link.created_by,
                                                link.probability, link.weights))

    def final_customer(self, customer_id: str) -> str:
        """Where a customer of this transaction ended up after its merges."""
        row = self._customers.get(customer_id)
        while row is not None and row.merged_into is not None:
            customer_id = row.merged_into
            row = self._customers.get(customer_id)
        return customer_id

    # -- what a cache of committed state needs (``cache.GraphCache``) -------------------

    def knows_all_holders(self, key: Key) -> bool:
        """Whether every customer holding ``key`` is in the working set."""
        return key in self._complete_keys

    def holders_of(self, key: Key) -> set[str]:
        return set(self._holders.get(key, ()))

    def cache_entry(self, customer_id: str
                    ) -> tuple[CustomerRow, tuple[tuple[str, str, Seen], ...]]:
        """A loaded customer as stored: its row (redirected to where it ended up) and every
        identifier it holds."""
        row = self._customers[customer_id]
        final = self.final_customer(customer_id)
        held = tuple((t, v, self._holders[(t, v)][customer_id])
                     for t, v in self._keys_of.get(customer_id, ()))
        return row._replace(merged_into=final if final != customer_id else None), held

    def apart(self, customer_id: str) -> frozenset[str]:
        """The customers this one must never be merged with."""
        return self._customer(customer_id).apart

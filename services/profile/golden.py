"""The golden record: what a customer's events add up to, kept up to date as they arrive.

A ``GoldenRecord`` is folded event by event at ingestion (``add_event``), two records are
combined when identity merges their customers (``combine``: the same result as folding both
histories, so a merge never reads events), and a split part is folded again from its own
events. Lookups read it as stored.

Traits keep their candidate values (value, source, first and last seen, times seen), so a
per-trait strategy can choose among them at any time and a merge keeps every candidate:

- ``most_recent`` (default): the value seen last;
- ``oldest``: the value seen first;
- ``most_frequent``: the value seen most often;
- ``trusted_source``: the value from the most trusted source (``TraitPolicy.trusted_sources``,
  first is most trusted; unlisted sources come after), the most recent among equals.

Values are cleaned before they count (``clean_trait``): whitespace trimmed, names and cities
written in one case, country codes and postcodes upper-case; empty values are no value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from omnicdp.services.profile.settings import STRATEGY_NAMES

STRATEGIES = STRATEGY_NAMES
#: Candidate values kept per trait; past it the least seen (then the least recent) goes.
MAX_CANDIDATES = 16
ORDER_COMPLETED = "Order Completed"
OFFLINE_CHANNELS = frozenset({"store", "call_center"})

_NAME_TRAITS = frozenset({"first_name", "last_name", "middle_name", "name", "city", "region"})
_UPPER_TRAITS = frozenset({"country", "postcode"})
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class TraitPolicy:
    """How each trait's value is chosen among its candidates."""

    strategies: Mapping[str, str] = field(default_factory=dict)
    trusted_sources: tuple[str, ...] = ()
    default: str = "most_recent"

    def __post_init__(self) -> None:
        for trait, strategy in {**self.strategies, "(default)": self.default}.items():
            if strategy not in STRATEGIES:
                raise ValueError(f"trait {trait}: unknown strategy {strategy!r}; one of "
                                 f"{', '.join(STRATEGIES)}")
        if "trusted_source" in self.strategies.values() and not self.trusted_sources:
            raise ValueError("the trusted_source strategy needs the sources in order of trust")

    @classmethod
    def parse(cls, strategies: str, trusted_sources: str = "") -> TraitPolicy:
        """From ``trait=strategy,...`` (``*=strategy`` sets the default) and
        ``source,source,...``; ``ValueError`` naming what is wrong."""
        chosen: dict[str, str] = {}
        default = "most_recent"
        for item in filter(None, (part.strip() for part in strategies.split(","))):
            trait, sep, strategy = item.partition("=")
            if not sep or not trait.strip():
                raise ValueError(
                    f"{item!r}: expected trait=strategy, e.g. first_name=most_frequent")
            if trait.strip() == "*":
                default = strategy.strip()
            else:
                chosen[trait.strip()] = strategy.strip()
        sources = tuple(s.strip() for s in trusted_sources.split(",") if s.strip())
        return cls(chosen, sources, default)

    def strategy(self, trait: str) -> str:
        return self.strategies.get(trait, self.default)


def _title(word: str) -> str:
    return "-".join(part[:1].upper() + part[1:].lower() for part in word.split("-"))


def clean_trait(name: str, value: Any) -> Any:
    """The value as the golden record keeps it, or None for no value."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not isinstance(value, str):
        return value if value != {} and value != [] else None
    text = _SPACES.sub(" ", value).strip()
    if not text:
        return None
    if name in _NAME_TRAITS and (text.islower() or text.isupper()):
        # One case for names typed in one case (IVANOV, anna); mixed case is kept as typed.
        return " ".join(_title(word) for word in text.split(" "))
    if name in _UPPER_TRAITS:
        return text.upper()
    if name == "date_of_birth":
        try:
            return date.fromisoformat(text[:10]).isoformat()
        except ValueError:
            return None
    return text


@dataclass
class Candidate:
    value: Any
    source: str
    first: datetime
    last: datetime
    count: int = 1
    key: tuple[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Computed once: candidates are compared and sorted by it on every event.
        self.key = (_value_key(self.value), self.source)


def _value_key(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "\0" + json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


@dataclass
class IdentifierSeen:
    sources: set[str]
    first: datetime
    last: datetime


@dataclass
class GoldenRecord:
    customer_id: str
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    event_count: int = 0
    identifiers: dict[tuple[str, str], IdentifierSeen] = field(default_factory=dict)
    candidates: dict[str, list[Candidate]] = field(default_factory=dict)
    events_by_channel: dict[str, int] = field(default_factory=dict)
    orders_online: int = 0
    orders_store: int = 0
    revenue: float = 0.0
    # Each identifier's and each trait's part of the storage form, as last serialised: a
    # record is written again after every event, and a customer's identifiers grow with
    # their history (an anonymous id per web session), so only what changed is serialised
    # again (``identifiers_json``, ``candidates_json``).
    _identifier_parts: dict[tuple[str, str], str] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    _candidate_parts: dict[str, str] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    # -- building --------------------------------------------------------------------------

    def add_event(self, *, channel: str, event: str, source: str, at: datetime,
                  traits: Mapping[str, Any], properties: Mapping[str, Any],
                  identifiers: Iterable[tuple[str, str]]) -> None:
        self._seen(at, at)
        self.event_count += 1
        self.events_by_channel[channel] = self.events_by_channel.get(channel, 0) + 1
        if event == ORDER_COMPLETED:
            if channel in OFFLINE_CHANNELS:
                self.orders_store += 1
            else:
                self.orders_online += 1
            revenue = properties.get("revenue")
            if isinstance(revenue, int | float) and not isinstance(revenue, bool) \
                    and math.isfinite(revenue):
                self.revenue = round(self.revenue + float(revenue), 6)
        for id_type, value in identifiers:
            self._add_identifier(id_type, value, IdentifierSeen({source} if source else set(),
                                                                at, at))
        for name, raw in traits.items():
            value = clean_trait(name, raw)
            if value is not None and value != "":
                self._add_candidate(name, Candidate(value, source, at, at))

    def combine(self, other: GoldenRecord) -> None:
        """Add another customer's record (a merge): as if both histories were one."""
        if other.first_seen is not None:
            self._seen(other.first_seen, other.last_seen or other.first_seen)
        self.event_count += other.event_count
        for channel, count in other.events_by_channel.items():
            self.events_by_channel[channel] = self.events_by_channel.get(channel, 0) + count
        self.orders_online += other.orders_online
        self.orders_store += other.orders_store
        self.revenue = round(self.revenue + other.revenue, 6)
        for key, seen in other.identifiers.items():
            self._add_identifier(*key, IdentifierSeen(set(seen.sources), seen.first, seen.last))
        for name, candidates in other.candidates.items():
            for candidate in candidates:
                self._add_candidate(name, Candidate(candidate.value, candidate.source,
                                                    candidate.first, candidate.last,
                                                    candidate.count))

    def _seen(self, first: datetime, last: datetime) -> None:
        self.first_seen = first if self.first_seen is None else min(self.first_seen, first)
        self.last_seen = last if self.last_seen is None else max(self.last_seen, last)

    def _add_identifier(self, id_type: str, value: str, seen: IdentifierSeen) -> None:
        self._identifier_parts.pop((id_type, value), None)
        known = self.identifiers.get((id_type, value))
        if known is None:
            self.identifiers[(id_type, value)] = seen
            return
        known.sources |= seen.sources
        known.first = min(known.first, seen.first)
        known.last = max(known.last, seen.last)

    def _add_candidate(self, name: str, new: Candidate) -> None:
        self._candidate_parts.pop(name, None)
        candidates = self.candidates.setdefault(name, [])
        key = new.key
        for candidate in candidates:
            if candidate.key == key:
                candidate.count += new.count
                candidate.first = min(candidate.first, new.first)
                candidate.last = max(candidate.last, new.last)
                return
        candidates.append(new)
        if len(candidates) > MAX_CANDIDATES:
            candidates.remove(min(candidates, key=lambda c: (c.count, c.last, c.key)))

    # -- reading ---------------------------------------------------------------------------

    def traits(self, policy: TraitPolicy) -> dict[str, Any]:
        return {name: choose(candidates, policy.strategy(name), policy.trusted_sources).value
                for name, candidates in sorted(self.candidates.items()) if candidates}

    def identifier_list(self) -> list[tuple[str, str]]:
        """(type, value), by type, then first seen, then value."""
        return [key for key, _ in sorted(self.identifiers.items(),
                                         key=lambda kv: (kv[0][0], kv[1].first, kv[0][1]))]

    def counters(self) -> dict[str, Any]:
        return {"events_by_channel": dict(sorted(self.events_by_channel.items())),
                "orders_online": self.orders_online, "orders_store": self.orders_store,
                "revenue": self.revenue}

    # -- storage form ----------------------------------------------------------------------

    def identifiers_json(self) -> str:
        """``[[type, value, sources, first, last], ...]`` by (type, value), as ``json.dumps``
        writes it, from the parts kept since they last changed."""
        parts = self._identifier_parts
        for key, seen in self.identifiers.items():
            if key not in parts:
                parts[key] = json.dumps([*key, sorted(seen.sources), seen.first.isoformat(),
                                         seen.last.isoformat()], ensure_ascii=False)
        return "[" + ", ".join(parts[key] for key in sorted(self.identifiers)) + "]"

    def candidates_json(self) -> str:
        """``{trait: [[value, source, first, last, count], ...]}`` by trait, then value and
        source, as ``json.dumps`` writes it, from the parts kept since they last changed."""
        parts = self._candidate_parts
        for name, cands in self.candidates.items():
            if name not in parts:
                parts[name] = json.dumps(name, ensure_ascii=False) + ": " + json.dumps(
                    [[c.value, c.source, c.first.isoformat(), c.last.isoformat(), c.count]
                     for c in sorted(cands, key=lambda c: c.key)],
                    ensure_ascii=False, default=str)
        return "{" + ", ".join(parts[name] for name in sorted(self.candidates)) + "}"

    def counters_json(self) -> str:
        return json.dumps(self.counters())

    @classmethod
    def from_json(cls, customer_id: str, first_seen: datetime | None,
                  last_seen: datetime | None, event_count: int, identifiers: Any,
                  candidates: Any, counters: Any) -> GoldenRecord:
        record = cls(customer_id, first_seen, last_seen, int(event_count))
        for t, v, sources, first, last in _decoded(identifiers) or []:
            record.identifiers[(t, v)] = IdentifierSeen(
                set(sources), _moment(first), _moment(last))
        for name, rows in (_decoded(candidates) or {}).items():
            record.candidates[name] = [Candidate(value, source, _moment(first), _moment(last),
                                                 int(count))
                                       for value, source, first, last, count in rows]
        counts = _decoded(counters) or {}
        record.events_by_channel = dict(counts.get("events_by_channel", {}))
        record.orders_online = int(counts.get("orders_online", 0))
        record.orders_store = int(counts.get("orders_store", 0))
        record.revenue = float(counts.get("revenue", 0.0))
        return record


def choose(candidates: list[Candidate], strategy: str,
           trusted_sources: tuple[str, ...] = ()) -> Candidate:
    """The candidate a strategy picks; ties go to the most recent, then a fixed order."""
    if strategy == "oldest":
        return min(candidates, key=lambda c: (c.first, c.key))
    if strategy == "most_frequent":
        return max(candidates, key=lambda c: (c.count, c.last, c.key))
    if strategy == "trusted_source":
        def trust(c: Candidate) -> int:
            return (trusted_sources.index(c.source) if c.source in trusted_sources
                    else len(trusted_sources))
        best = min(trust(c) for c in candidates)
        candidates = [c for c in candidates if trust(c) == best]
    return max(candidates, key=lambda c: (c.last, c.key))


def _decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)

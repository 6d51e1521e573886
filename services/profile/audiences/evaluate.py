"""Whether a customer belongs to an audience, from what the store reads for it: the golden
record's traits and counters, the scores, the current consents and the events the
audience's event conditions can count (``CustomerFacts``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from omnicdp.services.profile.audiences.rules import (
    Audience,
    Condition,
    ConsentRequirement,
    EventCondition,
    FieldCondition,
)
from omnicdp.services.profile.model import Consent


@dataclass(frozen=True)
class EventFact:
    """An event as conditions read it (naive UTC time, as stored)."""

    name: str
    channel: str
    at: datetime
    properties: Mapping[str, Any]


@dataclass
class CustomerFacts:
    customer_id: str
    traits: Mapping[str, Any] = field(default_factory=dict)
    counters: Mapping[str, float] = field(default_factory=dict)
    scores: Mapping[str, float] = field(default_factory=dict)
    consents: Sequence[Consent] = ()  # the current decisions
    events: Sequence[EventFact] = ()


def counters_of(counters: Mapping[str, Any], event_count: int) -> dict[str, float]:
    """The counters conditions name, from the golden record's."""
    online, store = int(counters.get("orders_online", 0)), int(counters.get("orders_store", 0))
    return {"event_count": event_count, "orders": online + store, "orders_online": online,
            "orders_store": store, "revenue": float(counters.get("revenue", 0.0))}


def consent_granted(consents: Iterable[Consent], requirement: ConsentRequirement) -> bool:
    """Whether the customer's current decisions grant the purpose on the channel: the
    channel's own decision when there is one, else the purpose's every-channel decision."""
    by_channel = {c.channel: c for c in consents if c.purpose == requirement.purpose}
    decision = (by_channel.get(requirement.channel) if requirement.channel else None) \
        or by_channel.get("")
    return decision is not None and decision.granted


def event_window(audiences: Iterable[Audience], now: datetime
                 ) -> tuple[frozenset[str], datetime | None]:
    """The event names the audiences' conditions count and the earliest time they look
    back to (None: all time), so a store reads no other event."""
    names: set[str] = set()
    since: datetime | None = now
    for audience in audiences:
        for condition in audience.event_conditions:
            names.add(condition.name)
            if condition.within_days is None:
                since = None
            elif since is not None:
                since = min(since, now - timedelta(days=condition.within_days))
    return frozenset(names), since


def tests_properties(audiences: Iterable[Audience]) -> bool:
    """Whether a rule of the audiences tests event properties (else none need reading)."""
    return any(c.where for audience in audiences for c in audience.event_conditions)


def _holds(condition: Condition, facts: CustomerFacts, now: datetime) -> bool:
    if isinstance(condition, EventCondition):
        since = (now - timedelta(days=condition.within_days)
                 if condition.within_days is not None else None)
        count = sum(1 for e in facts.events
                    if (since is None or e.at >= since)
                    and condition.matches(e.name, e.channel, e.properties))
        return condition.count_holds(count)
    assert isinstance(condition, FieldCondition)
    source = {"trait": facts.traits, "score": facts.scores,
              "counter": facts.counters}[condition.kind]
    value = source.get(condition.test.path)
    found = [] if value is None else value if isinstance(value, list) else [value]
    return condition.test.holds(found)


def is_member(audience: Audience, facts: CustomerFacts, now: datetime) -> bool:
    if audience.consent and not consent_granted(facts.consents, audience.consent):
        return False
    return (all(_holds(c, facts, now) for c in audience.include)
            and not any(_holds(c, facts, now) for c in audience.exclude))


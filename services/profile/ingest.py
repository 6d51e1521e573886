"""Event ingestion: validate each event alone, drop duplicates, link to customers, store.

A rejected event never blocks the others in its batch. Nothing is acknowledged before the
store has committed it, and a retried batch is stored once (message_id is the key).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from omnicdp.core import jsonvalues
from omnicdp.core.errors import FieldViolation, InvalidArgument
from omnicdp.core.vocabulary import CHANNELS, EVENT_TYPES, IDENTIFIER_TYPES, MAX_BATCH_EVENTS
from omnicdp.services.identity.client import IdentityRecord, ResolvedBatch
from omnicdp.services.profile import consents
from omnicdp.services.profile.membership import MembershipFollower
from omnicdp.services.profile.model import EventIn, IngestResult, StoredEvent
from omnicdp.services.profile.store.base import ProfileStore

log = logging.getLogger(__name__)

MAX_MESSAGE_ID = 128
MAX_CLOCK_SKEW = timedelta(days=1)
ERASED_PERSON = FieldViolation(
    "identifiers", "an identifier belongs to a person whose data was erased: the event is "
    "not stored (CDP_ERASED_EVENTS=reject)")
ERASED_PERSON_KEPT_OUT = FieldViolation(
    "identifiers", "an identifier belongs to a person whose data was erased: accepted, but "
    "neither stored nor built into a profile (CDP_ERASED_EVENTS=accept)")


class IdentityResolver(Protocol):
    """The identity service as the profile service needs it (``IdentityClient`` in
    production)."""

    def resolve_batch(self, records: Sequence[IdentityRecord]) -> ResolvedBatch:
        """Resolve records of raw identifiers, one result each, in order."""


def validate_event(event: EventIn, now: datetime) -> list[FieldViolation]:
    """Everything wrong with one event, field by field (identifier formats are the identity
    service's to judge)."""
    problems: list[FieldViolation] = []
    if not event.message_id:
        problems.append(FieldViolation("message_id", "required: a client-chosen unique id"))
    elif len(event.message_id) > MAX_MESSAGE_ID:
        problems.append(FieldViolation("message_id", f"at most {MAX_MESSAGE_ID} characters"))
    if event.type not in EVENT_TYPES:
        problems.append(FieldViolation("type", f"required, one of {', '.join(EVENT_TYPES)}"))
    elif event.type == "track" and not event.event:
        problems.append(
            FieldViolation("event", "required for track events, e.g. 'Order Completed'"))
    if event.channel not in CHANNELS:
        problems.append(FieldViolation("channel", f"required, one of {', '.join(CHANNELS)}"))
    if event.timestamp is not None and event.timestamp > now + MAX_CLOCK_SKEW:
        problems.append(FieldViolation("timestamp", "more than a day in the future"))
    elif event.timestamp is not None and event.timestamp < jsonvalues.MIN_TIMESTAMP:
        problems.append(FieldViolation("timestamp", "before 1970-01-01T00:00:00Z"))
    if not any(event.identifiers.get(name) for name in IDENTIFIER_TYPES):
        problems.append(FieldViolation(
            "identifiers", f"at least one identifier is required: {', '.join(IDENTIFIER_TYPES)}"))
    for name, value in event.identifiers.items():
        problem = jsonvalues.identifier_problem(str(value))
        if problem:
            problems.append(FieldViolation(f"identifiers.{name}", problem))
    for name in ("message_id", "event", "source", "sent_by"):
        problem = jsonvalues.text_problem(getattr(event, name) or "")
        if problem:
            problems.append(FieldViolation(name, problem))
    problems += jsonvalues.value_violations(event.traits, "traits", 1)
    problems += jsonvalues.value_violations(event.properties, "properties", 1)
    problems += consents.event_problems(event.event, event.properties)
    revenue = event.properties.get("revenue")
    revenue_problem = None if revenue is None else jsonvalues.revenue_problem(revenue)
    if revenue_problem and not any(p.field == "properties.revenue" for p in problems):
        problems.append(FieldViolation("properties.revenue", revenue_problem))
    return problems


class Ingestor:
    def __init__(self, store: ProfileStore, identity: IdentityResolver,
                 membership: MembershipFollower, erased_events: str = "reject") -> None:
        self._store = store
        self._identity = identity
        self._membership = membership
        self._reject_erased = erased_events == "reject"

    def ingest(self, events: Sequence[EventIn], now: datetime | None = None) -> list[IngestResult]:
        """Validate, drop duplicates, resolve, store; nothing is acknowledged before both the
        identity decision and the event are durable, and the membership mapping has caught
        up with the decision (so the event reads under its customer's current id)."""
        if len(events) > MAX_BATCH_EVENTS:
            raise InvalidArgument(f"a batch holds at most {MAX_BATCH_EVENTS} events",
                                  [FieldViolation("events", f"{len(events)} events sent")])
        now = now or datetime.now(UTC)
        results: list[IngestResult | None] = [None] * len(events)
        # A retried event is resolved again (resolving a record twice changes nothing) and
        # found a duplicate when stored: one lookup of the message ids, not two.
        pending: list[int] = []
        seen: set[str] = set()
        for i, event in enumerate(events):
            problems = validate_event(event, now)
            if problems:
                results[i] = IngestResult(event.message_id, "rejected", violations=tuple(problems))
            elif event.message_id in seen:
                results[i] = IngestResult(event.message_id, "duplicate")
            else:
                seen.add(event.message_id)
                pending.append(i)

        resolved = self._identity.resolve_batch([
            IdentityRecord(events[i].message_id, events[i].identifiers,
                           events[i].timestamp or now,
                           source=events[i].source or events[i].channel,
                           traits=events[i].traits)
            for i in pending]) if pending else ResolvedBatch([], 0)
        to_store: list[StoredEvent] = []
        identifier_rows = []
        merged_into: dict[str, str] = {}  # loser -> survivor, for the acknowledgements
        suppressed = 0
        for i, resolution in zip(pending, resolved.resolutions, strict=True):
            event = events[i]
            if resolution.suppressed:
                suppressed += 1
                results[i] = (
                    IngestResult(event.message_id, "rejected", violations=(ERASED_PERSON,))
                    if self._reject_erased else
                    IngestResult(event.message_id, "accepted", warnings=(ERASED_PERSON_KEPT_OUT,)))
                continue
            if resolution.violations or not resolution.customer_id:
                results[i] = IngestResult(event.message_id, "rejected",
                                          violations=tuple(resolution.violations))
                continue
            merged_into.update({loser: resolution.customer_id
                                for loser in resolution.merged_customer_ids})
            seen_at = event.timestamp or now
            record_id = resolution.identity_record_id
            identifier_rows += [(record_id, t, v, seen_at)
                                for t, v in resolution.identifiers.items()]
            to_store.append(StoredEvent(
                message_id=event.message_id, customer_id=resolution.customer_id,
                type=event.type, channel=event.channel, event=event.event, source=event.source,
                timestamp=seen_at, received_at=now, identifiers=dict(event.identifiers),
                traits=dict(event.traits), properties=dict(event.properties),
                record_id=record_id, sent_by=event.sent_by))
        if to_store:
            self._membership.catch_up(resolved.change_seq)
        stored = self._store.append(to_store, identifier_rows)

        def current(customer_id: str) -> str:
            # A later record of the batch may merge the customer an earlier one was linked to.
            while customer_id in merged_into and merged_into[customer_id] != customer_id:
                customer_id = merged_into[customer_id]
            return customer_id

        customer_of = {e.message_id: current(e.customer_id) for e in to_store}
        warnings_of = {r.record_id: tuple(r.warnings) for r in resolved.resolutions}
        for i in pending:
            if results[i] is None:
                message_id = events[i].message_id
                status = "accepted" if message_id in stored else "duplicate"
                results[i] = IngestResult(message_id, status, customer_of[message_id],
                                          warnings=warnings_of.get(message_id, ()))
        for i, result in enumerate(results):  # repeats within the batch: the first's customer
            if result and result.status == "duplicate" and not result.customer_id:
                results[i] = replace(result, customer_id=customer_of.get(result.message_id, ""))
        log.info("ingested batch of %d: %d stored, %d of erased persons", len(events),
                 len(stored), suppressed)
        return [r for r in results if r is not None]

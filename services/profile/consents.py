"""Consent per purpose and channel: decisions checked, recorded, and the current one chosen.

A decision (``Consent``) says, for a purpose (``CONSENT_PURPOSES``) on a channel (or on every
channel, ``""``), that the customer granted, denied or withdrew consent at a given time,
with the legal basis and where its proof is kept. Decisions arrive through
``UpdateConsents`` (``PUT /v1/profiles/{id}/consents``) or as partners' track events named
``Consent Updated`` whose properties carry ``purpose``, ``status`` and optionally
``channel``, ``legal_basis`` and ``proof_reference`` (the event's source and time are the
decision's). Every decision is kept; the current one per purpose and channel is the latest
by decision time (a late-arriving older decision changes the history, not the state).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from omnicdp.core import jsonvalues, paging
from omnicdp.core.errors import FieldViolation, InvalidArgument, NotFound
from omnicdp.core.vocabulary import (
    CHANNELS,
    CONSENT_EVENT,
    CONSENT_PURPOSES,
    CONSENT_STATUSES,
    LEGAL_BASES,
)
from omnicdp.services.profile.model import Consent, StoredEvent
from omnicdp.services.profile.store.base import ProfileStore

MAX_DECISIONS = 100
MAX_CLOCK_SKEW_FOR_CONSENT = timedelta(days=1)
MAX_TEXT = 256


def decision_problems(purpose: Any, channel: Any, status: Any, legal_basis: Any,
                      proof_reference: Any, source: Any, prefix: str) -> list[FieldViolation]:
    """What is wrong with one decision, fields named under ``prefix``."""
    problems = []
    if purpose not in CONSENT_PURPOSES:
        problems.append(FieldViolation(f"{prefix}purpose",
                                       f"required, one of {', '.join(CONSENT_PURPOSES)}"))
    if channel not in ("", None, *CHANNELS):
        problems.append(FieldViolation(f"{prefix}channel",
                                       f"one of {', '.join(CHANNELS)}, or none for every "
                                       "channel"))
    if status not in CONSENT_STATUSES:
        problems.append(FieldViolation(f"{prefix}status",
                                       f"required, one of {', '.join(CONSENT_STATUSES)}"))
    if legal_basis not in ("", None, *LEGAL_BASES):
        problems.append(FieldViolation(f"{prefix}legal_basis",
                                       f"one of {', '.join(LEGAL_BASES)}"))
    for name, value in (("proof_reference", proof_reference), ("source", source)):
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            problems.append(FieldViolation(f"{prefix}{name}",
                                           f"a string of at most {MAX_TEXT} characters"))
        elif (problem := jsonvalues.text_problem(value)) is not None:
            problems.append(FieldViolation(f"{prefix}{name}", problem))
    return problems


def event_problems(event_name: str, properties: Mapping[str, Any]) -> list[FieldViolation]:
    """What is wrong with a ``Consent Updated`` event's properties (none for other events)."""
    if event_name != CONSENT_EVENT:
        return []
    return decision_problems(properties.get("purpose"), properties.get("channel"),
                             properties.get("status"), properties.get("legal_basis"),
                             properties.get("proof_reference"), None, "properties.")


def from_event(event: StoredEvent) -> Consent | None:
    """The decision a stored event carries, or None."""
    if event.event != CONSENT_EVENT:
        return None
    return carried(event.properties, event.timestamp, event.source, event.received_at)


def carried(props: Mapping[str, Any], at: datetime, source: str,
            received_at: datetime) -> Consent:
    """The decision of a ``Consent Updated`` event with these properties, time and source."""
    return Consent(purpose=props["purpose"], channel=props.get("channel") or "",
                   status=props["status"], updated_at=at, source=source,
                   legal_basis=props.get("legal_basis") or "consent",
                   proof_reference=props.get("proof_reference") or "",
                   recorded_at=received_at)


def current(decisions: Iterable[Consent]) -> list[Consent]:
    """The latest decision per purpose and channel (by decision time, then recording)."""
    latest: dict[tuple[str, str], Consent] = {}
    for decision in decisions:
        key = (decision.purpose, decision.channel)
        known = latest.get(key)
        if known is None or _order(decision) > _order(known):
            latest[key] = decision
    return [latest[key] for key in sorted(latest)]


def _order(decision: Consent) -> tuple:
    return (decision.updated_at, decision.recorded_at or decision.updated_at,
            decision.status, decision.source)


class ConsentBook:
    """Consent decisions of customers, over the profile store."""

    def __init__(self, store: ProfileStore) -> None:
        self._store = store

    def update(self, customer_id: str, decisions: Sequence[Consent], now: datetime,
               default_source: str = "") -> list[Consent]:
        """Record decisions (unset times are ``now``) and return the current consents."""
        if not customer_id:
            raise InvalidArgument("customer_id is required",
                                  [FieldViolation("customer_id", "required")])
        if not decisions or len(decisions) > MAX_DECISIONS:
            raise InvalidArgument(f"send 1 to {MAX_DECISIONS} consent decisions", [
                FieldViolation("consents", f"{len(decisions)} sent")])
        problems: list[FieldViolation] = []
        for i, d in enumerate(decisions):
            problems += decision_problems(d.purpose, d.channel, d.status, d.legal_basis,
                                          d.proof_reference, d.source, f"consents[{i}].")
            if d.updated_at is not None and d.updated_at > now + MAX_CLOCK_SKEW_FOR_CONSENT:
                problems.append(FieldViolation(f"consents[{i}].updated_at",
                                               "more than a day in the future"))
        if problems:
            raise InvalidArgument("invalid consent decisions", problems)
        ready = [replace(d, updated_at=d.updated_at or now, recorded_at=now,
                         legal_basis=d.legal_basis or "consent",
                         source=d.source or default_source) for d in decisions]
        recorded = self._store.record_consents(customer_id, ready)
        if recorded is None:
            raise _not_found(customer_id)
        return recorded

    def history(self, customer_id: str, page_size: int,
                page_token: str) -> tuple[list[Consent], str]:
        """A page of decisions, newest first, and the next page's token."""
        size = paging.page_size(page_size)
        position = paging.decode_token("consents", page_token) or {}
        if position and position.get("c") != customer_id:
            raise InvalidArgument("page_token belongs to another customer",
                                  [FieldViolation("page_token", "token of another list")])
        offset = int(position.get("o", 0))
        decisions = self._store.consent_history(customer_id, offset, size + 1)
        if decisions is None:
            raise _not_found(customer_id)
        token = (paging.encode_token("consents", {"c": customer_id, "o": offset + size})
                 if len(decisions) > size else "")
        return decisions[:size], token


def _not_found(customer_id: str) -> NotFound:
    return NotFound(f"no profile with customer_id {customer_id}", reason="PROFILE_NOT_FOUND",
                    metadata={"customer_id": customer_id})

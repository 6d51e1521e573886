"""Erasure on request (152-FZ, GDPR art. 17): everything the profile service and the identity
service hold of a person goes, and an audit entry without personal data stays.

The identity service erases the customer (``EraseCustomer``: records, identifiers and
links deleted; SHA-256 tombstones kept of the identifiers no other customer holds, which
suppress the person's later events; an ``erased`` change logged). The profile service
applies that change as it applies every change, before answering: the customer's events,
identifier rows, golden record, consents and scores are deleted in one transaction (so an
erasure made directly at the identity service reaches the profile too). The audit entry
records who asked, the customer id, when, and how much was erased: counts, never values.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from omnicdp.core import jsonvalues
from omnicdp.core.errors import FieldViolation, InvalidArgument, NotFound
from omnicdp.services.identity.client import Erased
from omnicdp.services.profile.membership import MembershipFollower
from omnicdp.services.profile.model import Erasure
from omnicdp.services.profile.store.base import ProfileStore

log = logging.getLogger(__name__)
MAX_TEXT = 256


class IdentityEraser(Protocol):
    """The identity service as erasure needs it (``IdentityClient``)."""

    def erase(self, customer_id: str, actor: str, reason: str) -> Erased: ...


class Eraser:
    def __init__(self, store: ProfileStore, identity: IdentityEraser,
                 membership: MembershipFollower) -> None:
        self._store = store
        self._identity = identity
        self._membership = membership

    def erase(self, customer_id: str, actor: str, reason: str, now: datetime) -> Erasure:
        problems = []
        for name, value, required in (("customer_id", customer_id, True),
                                      ("actor", actor, True), ("reason", reason, True)):
            if required and not value:
                problems.append(FieldViolation(name, "required (for the audit log; no "
                                                     "personal data, e.g. a ticket number)"))
            elif len(value) > MAX_TEXT:
                problems.append(FieldViolation(name, f"at most {MAX_TEXT} characters"))
            elif value and (problem := jsonvalues.text_problem(value)):
                problems.append(FieldViolation(name, problem))
        if problems:
            raise InvalidArgument("invalid erasure request", problems)
        profile = self._store.get_profile(customer_id)
        if profile is None:
            raise NotFound(f"no profile with customer_id {customer_id}",
                           reason="PROFILE_NOT_FOUND", metadata={"customer_id": customer_id})
        live = profile.customer_id
        consents = self._store.consent_history(live, 0, 1_000_000) or []
        erased = self._identity.erase(live, actor, reason)
        self._membership.catch_up(erased.change_seq)
        erasure = Erasure(customer_id=live, events=profile.event_count,
                          identifiers=len(profile.identifiers), consents=len(consents),
                          records=erased.records_erased, erased_at=now)
        self._store.record_erasure(erasure, actor, erased.change_seq)
        log.info("erased customer %s for %s: %d events, %d identifiers, %d consents, "
                 "%d identity records", live, actor, erasure.events, erasure.identifiers,
                 erasure.consents, erasure.records)
        return erasure

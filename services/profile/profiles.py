"""Reading profiles and journeys: lookup by any identifier, pages of events."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from omnicdp.core import paging
from omnicdp.core.errors import FieldViolation, InvalidArgument, NotFound
from omnicdp.core.identifiers import normalize_identifier
from omnicdp.core.vocabulary import IDENTIFIER_TYPES
from omnicdp.services.profile.model import Profile, StoredEvent
from omnicdp.services.profile.store.base import ProfileStore

#: A page holds at most this many bytes of events, half the gRPC message limit (16 MiB), so a
#: page of large events is shorter rather than too large to send.
MAX_PAGE_BYTES = 8 * 1024 * 1024
SizeOf = Callable[[StoredEvent], int]


def json_size(event: StoredEvent) -> int:
    """An event's size as JSON, for callers without an exact measure."""
    return 256 + len(json.dumps([event.identifiers, event.traits, event.properties],
                                ensure_ascii=False, default=str).encode())


def _page(events: list[StoredEvent], size: int, size_of: SizeOf,
          max_bytes: int) -> tuple[list[StoredEvent], bool]:
    """The first ``size`` events (of ``size + 1`` read) that fit in ``max_bytes`` (at least
    one), and whether more follow."""
    kept: list[StoredEvent] = []
    total = 0
    for event in events[:size]:
        total += size_of(event)
        if kept and total > max_bytes:
            return kept, True
        kept.append(event)
    return kept, len(events) > size


def read_profile(store: ProfileStore, customer_id: str) -> Profile:
    """The profile under the id the customer is known by now; NotFound when it has none."""
    if not customer_id:
        raise InvalidArgument("customer_id is required",
                              [FieldViolation("customer_id", "required")])
    profile = store.get_profile(customer_id)
    if profile is None:
        raise NotFound(f"no profile with customer_id {customer_id}",
                       reason="PROFILE_NOT_FOUND", metadata={"customer_id": customer_id})
    return profile


class ProfileReader:
    def __init__(self, store: ProfileStore, default_region: str = "RU") -> None:
        self._store = store
        self._default_region = default_region

    def get(self, customer_id: str) -> Profile:
        return read_profile(self._store, customer_id)

    def lookup(self, id_type: str, value: str) -> Profile:
        if id_type not in IDENTIFIER_TYPES:
            raise InvalidArgument("unknown identifier type", [
                FieldViolation("type", f"one of {', '.join(IDENTIFIER_TYPES)}")])
        if not value:
            raise InvalidArgument("value is required", [FieldViolation("value", "required")])
        # Normalised as ingestion normalised it, and found in this service's own mapping of
        # records to customers (it follows the identity service's change log): no call to
        # the identity service. A placeholder or blocked value was never stored: not found.
        try:
            normalized = normalize_identifier(id_type, value, self._default_region)
        except InvalidArgument as error:  # named identifiers.<type>; here it is value
            raise InvalidArgument(error.message, [
                FieldViolation("value", v.description) for v in error.violations],
                reason=error.reason) from error
        profile = self._store.lookup_profile(id_type, normalized) if normalized else None
        if profile is None:
            raise NotFound(f"no profile has this {id_type}", reason="PROFILE_NOT_FOUND",
                           metadata={"type": id_type})
        return profile

    def journey(self, customer_id: str, page_size: int, page_token: str,
                size_of: SizeOf = json_size,
                max_bytes: int = MAX_PAGE_BYTES) -> tuple[list[StoredEvent], str]:
        profile = self.get(customer_id)
        size = paging.page_size(page_size)
        position = paging.decode_token("journey", page_token)
        after = None
        if position is not None:
            if position.get("c") != profile.customer_id:
                raise InvalidArgument("page_token belongs to another customer",
                                      [FieldViolation("page_token", "token of another list")])
            after = (datetime.fromtimestamp(position["t"], UTC), position["s"])
        events, more = _page(self._store.list_customer_events(profile.customer_id, after,
                                                               size + 1),
                             size, size_of, max_bytes)
        token = ""
        if more:
            last = events[-1]
            token = paging.encode_token("journey", {
                "c": profile.customer_id, "t": last.timestamp.timestamp(), "s": last.seq})
        return events, token

    def all_events(self, page_size: int, page_token: str, size_of: SizeOf = json_size,
                   max_bytes: int = MAX_PAGE_BYTES) -> tuple[list[StoredEvent], str, int | None]:
        """A page of every stored event, the next page's token, and the listing's snapshot:
        the last event stored when its first page was read, beyond which no page goes."""
        size = paging.page_size(page_size)
        position = paging.decode_token("events", page_token)
        if position is None:
            position = {"s": 0, "u": self._store.last_event_seq()}
        through = position.get("u")  # None: a token from before snapshots
        events, more = _page(self._store.list_events(int(position["s"]), size + 1, through),
                             size, size_of, max_bytes)
        token = ""
        if more:
            token = paging.encode_token("events", {"s": events[-1].seq, "u": through})
        return events, token, through

"""Audiences over the profile store: definitions checked, members and changes paged, exports
streamed with identifiers raw or hashed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from omnicdp.core import paging
from omnicdp.core.errors import DomainError, FieldViolation, InvalidArgument, NotFound
from omnicdp.services.profile.audiences import rules
from omnicdp.services.profile.audiences.export import Member, identifiers_for_export
from omnicdp.services.profile.model import AudienceChange, AudienceState
from omnicdp.services.profile.store.base import ProfileStore

log = logging.getLogger(__name__)
EXPORT_PAGE = 1000


class AudienceBook:
    def __init__(self, store: ProfileStore) -> None:
        self._store = store

    def put(self, name: str, definition: Mapping[str, Any]) -> AudienceState:
        """Define (or redefine) an audience and evaluate it over every customer."""
        return self._store.put_audience(rules.parse(name, definition))

    def get(self, name: str) -> AudienceState:
        state = self._store.get_audience(_name(name))
        if state is None:
            raise _not_found(name)
        return state

    def list(self, page_size: int, page_token: str) -> tuple[list[AudienceState], str]:
        size = paging.page_size(page_size)
        after = (paging.decode_token("audiences", page_token) or {}).get("n", "")
        audiences = [a for a in self._store.list_audiences() if a.audience.name > after]
        token = (paging.encode_token("audiences", {"n": audiences[size - 1].audience.name})
                 if len(audiences) > size else "")
        return audiences[:size], token

    def delete(self, name: str) -> None:
        if not self._store.delete_audience(_name(name)):
            raise _not_found(name)

    def refresh(self, names: Sequence[str]) -> list[AudienceState]:
        """Evaluate the named audiences (all when none are named) again."""
        for name in names:
            self.get(name)
        return self._store.refresh_audiences(list(names) or None)

    def members(self, name: str, page_size: int, page_token: str,
                hashed: bool = False) -> tuple[list[Member], str]:
        size = paging.page_size(page_size)
        position = _position("members", page_token, name)
        found = self._store.audience_members(_name(name), position.get("c", ""), size + 1)
        if found is None:
            raise _not_found(name)
        page = [_exported(m, hashed) for m in found[:size]]
        token = (paging.encode_token("members", {"a": name, "c": page[-1].customer_id})
                 if len(found) > size else "")
        return page, token

    def export(self, name: str, hashed: bool) -> Iterator[Member]:
        """Every member, page after page (each page its own read)."""
        token = ""
        while True:
            page, token = self.members(name, EXPORT_PAGE, token, hashed)
            yield from page
            if not token:
                return

    def changes(self, name: str, page_size: int,
                page_token: str) -> tuple[list[AudienceChange], str]:
        size = paging.page_size(page_size)
        position = _position("audience_changes", page_token, name)
        found = self._store.audience_changes(_name(name), int(position.get("s", 0)), size + 1)
        if found is None:
            raise _not_found(name)
        token = (paging.encode_token("audience_changes", {"a": name, "s": found[size - 1].seq})
                 if len(found) > size else "")
        return found[:size], token


def _position(kind: str, page_token: str, name: str) -> dict[str, Any]:
    """Where a page of one audience's list starts (``{}``: at the beginning)."""
    position = paging.decode_token(kind, page_token) or {}
    if position and position.get("a") != name:
        raise InvalidArgument("page_token belongs to another audience",
                              [FieldViolation("page_token", "token of another list")])
    return position


def _exported(member: Member, hashed: bool) -> Member:
    return replace(member, identifiers=identifiers_for_export(member.identifiers, hashed),
                   hashed=hashed)


def _name(name: str) -> str:
    if not name:
        raise InvalidArgument("name is required", [FieldViolation("name", "required")])
    return name


def _not_found(name: str) -> NotFound:
    return NotFound(f"no audience named {name}", reason="AUDIENCE_NOT_FOUND",
                    metadata={"audience": name})


class PeriodicRefresh:
    """Every ``seconds``, every audience evaluated again (memberships "within N days" end
    without new events), in a background thread; ``seconds`` 0: never."""

    def __init__(self, book: AudienceBook, seconds: float) -> None:
        self._book, self._seconds = book, seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._seconds > 0:
            self._thread = threading.Thread(target=self._run, name="audience-refresh",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._seconds):
            try:
                states = self._book.refresh([])
            except DomainError as error:
                log.warning("refreshing audiences failed: %s", error)
                continue
            log.info("audiences refreshed: %s", ", ".join(
                f"{s.audience.name} +{s.joined} -{s.left} = {s.members}" for s in states)
                or "none defined")

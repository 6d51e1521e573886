"""Which customer each identity record belongs to, following the identity change log.

The profile service never rewrites an event's record. Membership is a mapping kept by
applying the identity service's change log in order, with the log position stored in the
same transaction as the change (``ProfileStore.apply_changes``), so it can always resume:

- before an ingested batch is acknowledged, the log is applied at least up to the position
  at which identity committed that batch (``catch_up``), so an acknowledged event is read
  under its customer's current id, however merges raced with it;
- in the background, a stream of the log (``WatchChanges``) applies changes made by others
  (other replicas' batches, unmerges, erasures) as they are committed.

Both apply idempotently: an entry at or below the stored position is skipped.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

from omnicdp.core.errors import DomainError
from omnicdp.services.identity.client import Change
from omnicdp.services.profile.store.base import ProfileStore

log = logging.getLogger(__name__)

PAGE = 1000
_APPLY_BATCH = 500
_RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


class ChangeStream(Protocol):
    def __iter__(self) -> Iterator[Change]: ...

    def cancel(self) -> None: ...


class ChangeLog(Protocol):
    """The identity service's change log, as this module reads it (``IdentityClient``)."""

    def changes(self, after_seq: int, page_size: int = 0) -> tuple[list[Change], int]: ...

    def watch(self, after_seq: int) -> ChangeStream: ...


class MembershipFollower:
    def __init__(self, store: ProfileStore, log_source: ChangeLog) -> None:
        self._store = store
        self._log = log_source
        self._apply_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stream: ChangeStream | None = None

    def catch_up(self, target_seq: int) -> int:
        """Apply the log at least up to ``target_seq``; the position reached."""
        cursor = self._store.change_cursor()
        while cursor < target_seq:
            changes, last_seq = self._log.changes(cursor, PAGE)
            if not changes:
                break  # nothing committed beyond cursor (a gap up to target_seq)
            cursor = self._apply(changes)
            if cursor >= last_seq:
                break
        return cursor

    def _apply(self, changes: Sequence[Change]) -> int:
        with self._apply_lock:
            return self._store.apply_changes(changes)

    # -- following in the background -----------------------------------------------------

    def start(self) -> None:
        """Follow the log's stream until ``stop``: one thread reads, one applies batches."""
        pending: queue.Queue[Change] = queue.Queue(maxsize=10 * _APPLY_BATCH)
        self._threads = [
            threading.Thread(target=self._read, args=(pending,), name="membership-read",
                             daemon=True),
            threading.Thread(target=self._drain, args=(pending,), name="membership-apply",
                             daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()
        for thread in self._threads:
            thread.join(timeout=5)

    def _read(self, pending: queue.Queue[Change]) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._stream = self._log.watch(self._store.change_cursor())
                for change in self._stream:
                    failures = 0
                    pending.put(change)
                    if self._stop.is_set():
                        return
            except DomainError as error:
                if self._stop.is_set():
                    return
                wait = _RETRY_SECONDS[min(failures, len(_RETRY_SECONDS) - 1)]
                failures += 1
                log.warning("identity change log: %s; resuming in %.1f s", error, wait)
                self._stop.wait(wait)

    def _drain(self, pending: queue.Queue[Change]) -> None:
        while not self._stop.is_set():
            try:
                batch = [pending.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < _APPLY_BATCH:
                try:
                    batch.append(pending.get_nowait())
                except queue.Empty:
                    break
            try:
                self._apply(batch)
            except DomainError as error:
                log.warning("applying identity changes failed: %s", error)

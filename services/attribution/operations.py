"""Reports as long-running operations: started at once, made in the background whatever the
caller's deadline, kept for a while for the caller to fetch (AIP-151's pattern without its
generic message)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from omnicdp.core.errors import FieldViolation, InvalidArgument, NotFound
from omnicdp.services.attribution.report import AttributionReport

PREFIX = "operations/"


@dataclass(frozen=True)
class Operation:
    name: str
    create_time: datetime
    future: Future

    @property
    def done(self) -> bool:
        return self.future.done()

    def report(self) -> AttributionReport:
        """The report of a done operation; raises the error that ended it."""
        return self.future.result(timeout=0)


class Operations:
    """At most ``workers`` reports made at once (each reads every event: more would only
    compete for the same cores); done operations are kept ``ttl_seconds`` after they
    started, and at most ``keep`` of them."""

    def __init__(self, workers: int = 1, keep: int = 100, ttl_seconds: float = 3600) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers,
                                            thread_name_prefix="attribution-report")
        self._operations: OrderedDict[str, tuple[Operation, float]] = OrderedDict()
        self._keep, self._ttl = keep, ttl_seconds
        self._lock = threading.Lock()

    def start(self, job: Callable[[], AttributionReport]) -> Operation:
        operation = Operation(f"{PREFIX}{uuid.uuid4().hex}", datetime.now(UTC),
                              self._executor.submit(job))
        with self._lock:
            self._expire()
            self._operations[operation.name] = (operation, time.monotonic())
        return operation

    def get(self, name: str) -> Operation:
        if not name.startswith(PREFIX) or len(name) == len(PREFIX):
            raise InvalidArgument(f"{name!r} is not an operation name; they look like "
                                  f"{PREFIX}ID", [FieldViolation("name", f"{PREFIX}ID")])
        with self._lock:
            self._expire()
            found = self._operations.get(name)
        if found is None:
            raise NotFound(f"no attribution operation {name} (finished ones are kept for "
                           f"{self._ttl / 3600:g} h)", reason="OPERATION_NOT_FOUND")
        return found[0]

    def _expire(self) -> None:
        now = time.monotonic()
        for name, (operation, started) in list(self._operations.items()):
            if operation.done and now - started > self._ttl:
                del self._operations[name]
        for name, (operation, _) in list(self._operations.items()):  # oldest first
            if len(self._operations) <= self._keep:
                break
            if operation.done:
                del self._operations[name]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

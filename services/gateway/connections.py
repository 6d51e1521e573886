"""HTTP connections that cannot be held for free: uvicorn's h11 protocol with a deadline for
a request's headers and a cap on open connections.

uvicorn closes a connection idle between requests (keep-alive timeout) but resets that
timer on every byte, and has no deadline for headers: a client trickling a byte every few
seconds holds a connection, a file descriptor and memory for ever. Here a connection must
deliver a request's complete headers within ``header_timeout`` of opening (or of its
previous response) or it is closed; beyond ``max_connections`` new connections are closed
at once. Bodies are timed by the handler that reads them (``routes.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol


def timed_protocol(header_timeout: float, max_connections: int) -> type[H11Protocol]:
    """An h11 protocol class with these limits, for ``uvicorn.Config(http=...)``."""

    class TimedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_timer: asyncio.TimerHandle | None = None
            self._timed_cycle: Any = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._timed_cycle = self.cycle
            self._header_timer = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expire(self) -> None:
            self._header_timer = None
            if self.cycle is self._timed_cycle and not self.transport.is_closing():
                self.transport.close()  # no complete request headers in time

        def handle_events(self) -> None:
            super().handle_events()
            if self._header_timer is not None and self.cycle is not self._timed_cycle:
                self._disarm()  # a request's headers arrived

        def on_response_complete(self) -> None:
            super().on_response_complete()
            idle = self.cycle is None or self.cycle.response_complete  # else pipelined
            if idle and not self.transport.is_closing():
                self._arm()  # the next request's headers are due in time too

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return TimedH11Protocol

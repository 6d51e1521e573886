"""HTTP connections that cannot be held for free: uvicorn's httptools protocol with a
deadline for a request's headers and a cap on open connections.

uvicorn closes a connection idle between requests (keep-alive timeout) but resets that
timer on every byte, and has no deadline for headers: a client trickling a byte every few
seconds holds a connection, a file descriptor and memory for ever. Here a connection must
deliver a request's complete headers within ``header_timeout`` of opening (or of its
previous response) or it is closed; beyond ``max_connections`` new connections are closed
at once. Bodies are timed by the handler that reads them (``routes.py``).

The parser is httptools (llhttp, in C), not h11: parsing in Python was about a fifth of the
gateway's CPU for a profile lookup.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def timed_protocol(header_timeout: float, max_connections: int) -> type[HttpToolsProtocol]:
    """An httptools protocol class with these limits, for ``uvicorn.Config(http=...)``."""

    class TimedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expire(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()  # no complete request headers in time

        def on_headers_complete(self) -> None:
            self._disarm()  # a request's headers arrived (pipelined ones too)
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            pipelined = bool(self.pipeline)  # a queued request's headers arrived already
            super().on_response_complete()
            if not pipelined and not self.transport.is_closing():
                self._arm()  # the next request's headers are due in time too

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return TimedHttpToolsProtocol

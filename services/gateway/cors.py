"""CORS for the Segment spec's endpoints only: analytics.js posts there from the retailer's
own pages, with a write key that is public by nature. The rest of the API takes secret keys
and is no browser's to call, so it answers no cross-origin request."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from starlette.middleware.cors import CORSMiddleware

#: What the browser libraries send: their write key (Basic), a text/plain or JSON body,
#: gzip, and analytics.js's retry counter.
ALLOWED_HEADERS = ("authorization", "content-type", "content-encoding", "x-retry-count")


class CorsOnPaths:
    """ASGI middleware: Starlette's CORS (preflight included) for ``origins`` on ``paths``;
    every other path is passed through untouched."""

    def __init__(self, app: Any, paths: Collection[str], origins: Sequence[str]) -> None:
        self.app = app
        self.paths = paths
        self.cors = CORSMiddleware(app, allow_origins=list(origins), allow_methods=["POST"],
                                   allow_headers=list(ALLOWED_HEADERS), max_age=600)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)

"""Runs the gateway: loads the API keys, connects to the services through their clients,
serves HTTP with uvicorn (graceful shutdown on SIGTERM/SIGINT), traces every request
(where tracing is on)."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass

import uvicorn
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.trace import Span

from omnicdp.core.telemetry import tracing
from omnicdp.services.gateway import segment
from omnicdp.services.gateway.admission import RateLimiter
from omnicdp.services.gateway.connections import timed_protocol
from omnicdp.services.gateway.keys import ApiKeys, KeyFileError
from omnicdp.services.gateway.routes import Backends, create_app
from omnicdp.services.gateway.settings import Settings

#: Span attributes that, on the Segment endpoints, describe the retailer's visitor (the
#: browser's user agent and address, as analytics.js sends from it): not kept without a
#: consent model, in traces as in events.
_VISITOR_ATTRIBUTES = ("http.user_agent", "user_agent.original", "net.peer.ip",
                       "net.sock.peer.addr", "client.address", "http.client_ip")


def scrub_span(span: Span, scope: dict) -> None:
    """Keep personal data out of traces: query strings carry identifiers
    (``profiles:lookup?type=email&value=...``), and on the Segment endpoints the user agent
    and address are the visitor's."""
    if span is None or not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    if scope.get("path", "") in segment.PATHS:
        for name in _VISITOR_ATTRIBUTES:
            if name in attributes:
                span.set_attribute(name, "redacted")
    if not scope.get("query_string"):
        return
    span.set_attribute("http.target", scope.get("path", ""))
    if "url.query" in attributes:
        span.set_attribute("url.query", "redacted")
    if "http.url" in attributes:
        span.set_attribute("http.url", str(attributes["http.url"]).split("?", 1)[0])


@dataclass
class HttpHost:
    """The gateway's uvicorn server; stops gracefully on SIGTERM/SIGINT (uvicorn's own
    handlers), then closes the clients."""

    server: uvicorn.Server
    backends: Backends
    listening_fd: int = -1

    def run_until_signal(self) -> None:
        try:
            if self.listening_fd >= 0:  # a socket its supervisor holds across restarts
                self.server.run(sockets=[socket.socket(fileno=self.listening_fd)])
            else:
                self.server.run()
        finally:
            self.backends.close()


def build(settings: Settings) -> HttpHost:
    # Handlers run in threads; a shorter switch interval hands the GIL back to the event
    # loop sooner, so probes and light requests are not queued behind heavy pages.
    sys.setswitchinterval(0.001)
    try:
        keys = ApiKeys.load(settings.api_keys)
    except KeyFileError as error:
        raise SystemExit(str(error)) from error
    backends = Backends.connect(settings.profile_addr, settings.identity_addr,
                                settings.attribution_addr, settings.deadline_seconds,
                                settings.audience_deadline_seconds)
    limiter = RateLimiter(settings.redis_url, settings.rate_limit_prefix)
    app = create_app(keys, backends, settings.max_body_bytes, settings.body_timeout_seconds,
                     limiter, settings.max_in_flight, settings.max_in_flight_per_key,
                     settings.cors_origin_list)
    if tracing():  # off without an exporter, as the gRPC services' (telemetry.setup_tracing)
        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz",
                                           server_request_hook=scrub_span)
    server = uvicorn.Server(uvicorn.Config(
        app, host=settings.http_host, port=settings.http_port, log_level="warning",
        access_log=False, timeout_graceful_shutdown=int(settings.grace_seconds),
        http=timed_protocol(settings.header_timeout_seconds, settings.max_connections),
        timeout_keep_alive=max(1, round(settings.idle_timeout_seconds))))
    return HttpHost(server, backends, settings.http_fd)

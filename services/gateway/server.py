"""Runs the gateway: loads the API keys, connects to the services, serves HTTP with uvicorn
(graceful shutdown on SIGTERM/SIGINT), traces every request."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.trace import Span

from omnicdp.runtime import config
from omnicdp.runtime.telemetry import configure_logging, setup_tracing, shutdown_tracing
from services.gateway.app import Backends, create_app
from services.gateway.keys import ApiKeys, KeyFileError


@dataclass(frozen=True)
class GatewaySettings:
    http_host: str = config.setting("127.0.0.1", "CDP_HTTP_HOST", "HTTP interface to bind")
    http_port: int = config.setting(8080, "CDP_HTTP_PORT", "HTTP port (0 picks a free one)")
    api_keys: Path = config.setting(Path(".cdp/api-keys.yaml"), "CDP_API_KEYS",
                                    "API keys file (YAML)")
    profile_addr: str = config.setting("127.0.0.1:50052", "CDP_PROFILE_ADDR",
                                       "host:port of the profile service")
    identity_addr: str = config.setting("127.0.0.1:50051", "CDP_IDENTITY_ADDR",
                                        "host:port of the identity service")
    attribution_addr: str = config.setting("127.0.0.1:50053", "CDP_ATTRIBUTION_ADDR",
                                           "host:port of the attribution service")
    deadline_seconds: float = config.setting(10.0, "CDP_DEADLINE_SECONDS",
                                             "deadline of every gRPC call")
    max_body_bytes: int = config.setting(1024 * 1024, "CDP_MAX_BODY_BYTES",
                                         "largest request body accepted")
    grace_seconds: float = config.setting(10.0, "CDP_GRACE_SECONDS",
                                          "seconds in-flight requests get on shutdown")


def scrub_query(span: Span, scope: dict) -> None:
    """Query strings carry identifiers (``profiles:lookup?type=email&value=...``): keep them
    out of traces, which are not a place for personal data."""
    if span is None or not span.is_recording() or not scope.get("query_string"):
        return
    attributes = getattr(span, "attributes", None) or {}
    span.set_attribute("http.target", scope.get("path", ""))
    if "url.query" in attributes:
        span.set_attribute("url.query", "redacted")
    if "http.url" in attributes:
        span.set_attribute("http.url", str(attributes["http.url"]).split("?", 1)[0])


def main(args: argparse.Namespace) -> int:
    configure_logging("cdp-gateway")
    setup_tracing("cdp-gateway")
    settings = config.load(GatewaySettings, args)
    logging.getLogger(__name__).info("starting gateway: %s", config.describe(settings))
    try:
        keys = ApiKeys.load(settings.api_keys)
    except KeyFileError as error:
        raise SystemExit(str(error)) from error
    backends = Backends.connect(settings.profile_addr, settings.identity_addr,
                                settings.attribution_addr, settings.deadline_seconds)
    app = create_app(keys, backends, settings.max_body_bytes)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz",
                                       server_request_hook=scrub_query)
    server = uvicorn.Server(uvicorn.Config(
        app, host=settings.http_host, port=settings.http_port, log_level="warning",
        access_log=False, timeout_graceful_shutdown=int(settings.grace_seconds)))
    try:
        server.run()
    finally:
        backends.close()
        shutdown_tracing()
    return 0

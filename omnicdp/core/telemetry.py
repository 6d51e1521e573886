"""OpenTelemetry set-up from the standard ``OTEL_*`` environment variables.

Honoured: OTEL_TRACES_EXPORTER (otlp, console, none; default otlp when an OTLP endpoint is
set, else none), OTEL_EXPORTER_OTLP_ENDPOINT / _TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL /
_TRACES_PROTOCOL (grpc or http/protobuf), OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES and
the OTEL_BSP_* batch settings. W3C trace context is the propagator (the SDK default).
"""

from __future__ import annotations

import logging
import os

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

log = logging.getLogger(__name__)
_provider: TracerProvider | None = None


def _otlp_exporter() -> SpanExporter:
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )
        return HttpExporter()
    raise SystemExit(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use grpc or http/protobuf")


def _exporter_names() -> list[str]:
    configured = os.environ.get("OTEL_TRACES_EXPORTER")
    if configured is None:
        has_endpoint = any(os.environ.get(v) for v in (
            "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        return ["otlp"] if has_endpoint else []
    return [n.strip() for n in configured.split(",") if n.strip() and n.strip() != "none"]


def service_resource(default_service_name: str) -> Resource:
    detected = OTELResourceDetector().detect()
    name = (os.environ.get("OTEL_SERVICE_NAME") or detected.attributes.get(SERVICE_NAME)
            or default_service_name)
    return Resource.create({SERVICE_NAME: name})


def setup_tracing(default_service_name: str) -> TracerProvider | None:
    """Install the global tracer provider once per process and return it. With no exporter
    (``none``) tracing is off in the process: no provider, and its servers, channels and
    HTTP app are not instrumented (``tracing``), since spans no one exports, and the
    instrumentation's per-call wrapping, cost a fifth of a profile lookup's server time. A
    process with tracing off neither records spans nor passes a caller's trace context on:
    turn tracing on in every process of a deployment, or in none."""
    global _provider
    if _provider is not None:
        return _provider
    names = _exporter_names()
    if not names:
        return None
    provider = TracerProvider(resource=service_resource(default_service_name))
    for name in names:
        if name == "otlp":
            exporter = _otlp_exporter()
        elif name == "console":
            exporter = ConsoleSpanExporter()
        else:
            raise SystemExit(f"OTEL_TRACES_EXPORTER={name!r}: use otlp, console or none")
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def tracing() -> bool:
    """Whether this process exports spans (``setup_tracing`` installed a provider)."""
    return _provider is not None


def shutdown_tracing() -> None:
    """Flush and stop exporting; called on graceful shutdown."""
    if _provider is not None:
        _provider.shutdown()


def configure_logging(service: str) -> None:
    """Plain, one-line logs on stderr. Callers log ids, never raw identifiers (no PII)."""
    level = os.environ.get("CDP_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s",
    )

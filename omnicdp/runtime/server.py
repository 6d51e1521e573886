"""The one gRPC server bootstrap every service uses.

It gives each service grpc.health.v1 health checking, reflection, OpenTelemetry server spans
(health checks filtered out), domain-error to status mapping with google.rpc details, a
maximum message size, keepalive settings, and graceful shutdown: health goes NOT_SERVING
first, then in-flight calls get ``grace`` seconds to finish.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from opentelemetry.instrumentation.grpc import filters, server_interceptor

from omnicdp import errors
from omnicdp.runtime.telemetry import shutdown_tracing

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
ERROR_DOMAIN = "omnicdp.io"

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Ping idle clients so dead peers are noticed behind load balancers.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_connection_idle_ms", 15 * 60_000),
    # A second server on a taken port must fail, not silently share it.
    ("grpc.so_reuseport", 0),
]

_CODES: list[tuple[type[errors.DomainError], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
]


def status_for(error: errors.DomainError) -> status_pb2.Status:
    """A google.rpc.Status with one ErrorInfo and, for bad requests, the field violations."""
    code = next((c for kind, c in _CODES if isinstance(error, kind)), grpc.StatusCode.INTERNAL)
    details = []
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN,
                                       metadata=error.metadata)
    details.append(info)
    if error.violations:
        details.append(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ]))
    packed = []
    for detail in details:
        message = any_pb2.Any()
        message.Pack(detail)
        packed.append(message)
    return status_pb2.Status(code=getattr(code_pb2, code.name), message=error.message,
                             details=packed)


@dataclass(frozen=True)
class _PushbackStatus(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple


class DomainErrorInterceptor(grpc.ServerInterceptor):
    """Turns domain errors raised by servicers into rich gRPC statuses."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        if handler.unary_unary:
            return handler._replace(unary_unary=self._wrap_unary(handler.unary_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=self._wrap_stream(handler.unary_stream))
        return handler

    @staticmethod
    def _abort(context: grpc.ServicerContext, error: errors.DomainError) -> None:
        status = rpc_status.to_status(status_for(error))
        if isinstance(error, errors.Unavailable):
            # A dependency of ours is down and we already retried it: pushback tells the
            # caller's retry policy not to multiply the attempts (gRPC retry design, A6).
            status = _PushbackStatus(status.code, status.details,
                                     (*status.trailing_metadata, ("grpc-retry-pushback-ms", "-1")))
        context.abort_with_status(status)

    def _wrap_unary(self, behavior: Callable) -> Callable:
        def wrapper(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return behavior(request, context)
            except errors.DomainError as error:
                self._abort(context, error)
        return wrapper

    def _wrap_stream(self, behavior: Callable) -> Callable:
        def wrapper(request: Any, context: grpc.ServicerContext) -> Iterable:
            try:
                yield from behavior(request, context)
            except errors.DomainError as error:
                self._abort(context, error)
        return wrapper


@dataclass(frozen=True)
class Registration:
    """A servicer and the generated ``add_XServicer_to_server`` that mounts it."""

    add_to_server: Callable[[Any, grpc.Server], None]
    servicer: Any
    service_name: str  # full name, e.g. "cdp.profile.v1.ProfileService"


class ServiceHost:
    """A gRPC server with the shared bootstrap, usable in-process (tests) or as a process."""

    def __init__(self, name: str, registrations: list[Registration], address: str,
                 grace_seconds: float = 10.0, max_workers: int = 16,
                 on_stop: Callable[[], None] | None = None) -> None:
        self.name = name
        self.address = address
        self.grace_seconds = grace_seconds
        self._on_stop = on_stop
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self.health = health.HealthServicer()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name),
            interceptors=[
                server_interceptor(filter_=filters.negate(filters.health_check())),
                DomainErrorInterceptor(),
            ],
            options=SERVER_OPTIONS,
        )
        for registration in registrations:
            registration.add_to_server(registration.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [r.service_name for r in registrations]
        reflection.enable_server_reflection(
            [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME], self.server)
        self._service_names = names
        self.port = 0

    def start(self) -> int:
        try:
            self.port = self.server.add_insecure_port(self.address)
        except RuntimeError as error:
            raise SystemExit(f"{self.name}: cannot listen on {self.address}: is the port "
                             "in use? Choose another with --address or CDP_ADDRESS") from error
        self.server.start()
        for service in ["", *self._service_names]:
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("%s listening on port %d", self.name, self.port)
        return self.port

    def stop(self, grace: float | None = None) -> None:
        """Health to NOT_SERVING, then let in-flight calls finish within the grace period."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            self.health.enter_graceful_shutdown()
            self.server.stop(self.grace_seconds if grace is None else grace).wait()
            if self._on_stop is not None:
                self._on_stop()
            self._stopped.set()
        log.info("%s stopped", self.name)

    def wait(self) -> None:
        self._stopped.wait()

    def run_until_signal(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully and flush telemetry."""
        def handle(signum: int, _frame: object) -> None:
            log.info("%s received %s, shutting down", self.name, signal.Signals(signum).name)
            threading.Thread(target=self.stop, name="shutdown", daemon=True).start()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        self.start()
        self.wait()
        shutdown_tracing()

"""The one gRPC server bootstrap every service uses, and ``serve``, the one entry point.

It gives each service grpc.health.v1 health checking, reflection, OpenTelemetry server spans
(health checks filtered out), domain errors turned into statuses by the one table in
``omnicdp.core.status``, the caller's deadline passed on to the calls the handler makes, a
maximum message size, keepalive settings, and graceful shutdown: health goes NOT_SERVING
first, then in-flight calls get ``grace`` seconds to finish.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import traceback
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import server_interceptor

from omnicdp.core import errors, settings, status
from omnicdp.core.channels import MAX_MESSAGE_BYTES, serving_deadline, traced_call
from omnicdp.core.telemetry import (
    configure_logging,
    setup_tracing,
    shutdown_tracing,
    tracing,
)

log = logging.getLogger(__name__)

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


def _abort(context: grpc.ServicerContext, error: BaseException, method: str) -> None:
    if not isinstance(error, errors.DomainError):
        if context.code() not in (None, grpc.StatusCode.OK):
            raise error  # the handler aborted the call itself
        log.error("%s failed with %s:\n%s", method, type(error).__name__,
                  "".join(traceback.format_tb(error.__traceback__)))
        error = errors.Internal()
    context.abort_with_status(status.to_rpc_status(error))


def _guard_unary(behavior: Callable, method: str) -> Callable:
    def guarded(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            with serving_deadline(context.time_remaining()):
                return behavior(request, context)
        except Exception as error:  # noqa: BLE001 (every failure becomes a status)
            _abort(context, error, method)
    return guarded


def _guard_stream(behavior: Callable, method: str) -> Callable:
    def guarded(request: Any, context: grpc.ServicerContext) -> Iterable:
        try:
            with serving_deadline(context.time_remaining()):
                yield from behavior(request, context)
        except Exception as error:  # noqa: BLE001
            _abort(context, error, method)
    return guarded


def guarded(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    """A handler run under the caller's deadline, whose failures become statuses: domain
    errors by the table, anything else INTERNAL without its text (exception messages of
    drivers can hold personal data; the log gets the type and the stack)."""
    if handler.unary_unary:
        return handler._replace(unary_unary=_guard_unary(handler.unary_unary, method))
    if handler.unary_stream:
        return handler._replace(unary_stream=_guard_stream(handler.unary_stream, method))
    return handler


class _GuardingServer:
    """What a generated ``add_XServicer_to_server`` is given instead of the server: it
    mounts the service's handlers guarded (``guarded``), once at start. An interceptor did
    the same on every call, and gRPC's interceptor pipeline cost a tenth of a profile
    lookup's server time."""

    def __init__(self, server: grpc.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        """Ignored: the generated code passes the same handlers to the call below."""

    def add_registered_method_handlers(self, service: str,
                                       handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        mounted = {name: guarded(handler, f"/{service}/{name}")
                   for name, handler in handlers.items()}
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, mounted),))
        self._server.add_registered_method_handlers(service, mounted)


@dataclass(frozen=True)
class Registration:
    """A servicer and the generated ``add_XServicer_to_server`` that mounts it."""

    add_to_server: Callable[[Any, grpc.Server], None]
    servicer: Any
    service_name: str  # full name, e.g. "omnicdp.profile.v1.ProfileService"


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
            # Traced only where spans are exported (``telemetry.setup_tracing``).
            interceptors=[server_interceptor(filter_=traced_call)] if tracing() else [],
            options=SERVER_OPTIONS,
        )
        for registration in registrations:
            registration.add_to_server(registration.servicer, _GuardingServer(self.server))
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


class Host(Protocol):
    """What ``serve`` runs: a gRPC ServiceHost, or the gateway's HTTP server."""

    def run_until_signal(self) -> None: ...


S = TypeVar("S")


def serve(service: str, settings_class: type[S], build: Callable[[S], Host],
          args: argparse.Namespace | None = None) -> int:
    """Run one service until SIGTERM/SIGINT: logging, tracing (before any server exists, so
    it is instrumented), settings from flags and ``CDP_*``, the service's ``build``."""
    name = f"cdp-{service}"
    os.umask(0o077)  # data files and logs readable by their owner only
    configure_logging(name)
    setup_tracing(name)
    loaded = settings.load(settings_class, args)
    log.info("starting %s: %s", name, settings.describe(loaded))
    try:
        build(loaded).run_until_signal()
    finally:
        shutdown_tracing()
    return 0

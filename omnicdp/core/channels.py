"""Client channels to other services: traced, retried on UNAVAILABLE only, with deadlines.

Every service's ``client.py`` calls through :func:`unary` or :func:`stream`. They give each
call a deadline: the client's own (``DEFAULT_DEADLINE`` unless it knows better), shortened
to what is left of the deadline of the request being served, so a caller's deadline holds
across every hop (the server bootstrap records it, see :func:`serving_deadline`). A failed
call comes back as the domain error the far side raised (``omnicdp.core.status``).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.instrumentation.grpc import client_interceptor
from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

from omnicdp.core import errors, status, telemetry

DEFAULT_DEADLINE = 10.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

Response = TypeVar("Response")

_SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{}],
        "retryPolicy": {
            "maxAttempts": 4,
            "initialBackoff": "0.1s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})

# Absolute time.monotonic() by which the request being served must be answered.
_serving_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "omnicdp_serving_deadline", default=None)


@contextlib.contextmanager
def serving_deadline(seconds_left: float | None) -> Iterator[None]:
    """While serving a request with ``seconds_left`` to go, calls it makes end in time."""
    token = _serving_deadline.set(
        None if seconds_left is None else time.monotonic() + seconds_left)
    try:
        yield
    finally:
        _serving_deadline.reset(token)


def timeout(own: float = DEFAULT_DEADLINE) -> float:
    """Seconds the next call may take: its own deadline, or less if the caller's is nearer."""
    deadline = _serving_deadline.get()
    if deadline is None:
        return own
    left = deadline - time.monotonic()
    if left <= 0:
        raise errors.DeadlineExceeded("the caller's deadline passed before the call was made")
    return min(own, left)


_HEALTH_METHODS = "/grpc.health.v1.Health/"


def traced_call(details: Any) -> bool:
    """Whether a call is traced: every one but health checks. OpenTelemetry's own filters
    test the call's details against gRPC's ``typing.Protocol`` classes, an ``isinstance``
    that took a sixth of a profile lookup's server time; this reads the method name."""
    method = getattr(details, "method", None) or getattr(details, "full_method", "")
    if isinstance(method, bytes):
        method = method.decode()
    return not method.startswith(_HEALTH_METHODS)


def open_channel(target: str, traced: bool = True) -> grpc.Channel:
    """A channel to another service, traced where tracing is on (``telemetry.tracing``).
    ``traced=False`` for long-lived streams, which are no request to trace, and whose calls
    can then be cancelled from another thread."""
    channel = grpc.insecure_channel(target, options=[
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        # A channel that failed to connect fails every call at once until it tries again:
        # gRPC's first wait is 1 s, longer than the retries above, so a service started a
        # moment before its peer answered UNAVAILABLE for a second (seen in CI: the first
        # event after `cdp up`). Trying again after 0.1 s lets the retries find the peer.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 5000),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 60_000),
    ])
    if not traced or not telemetry.tracing():
        return channel
    return intercept_channel(
        channel, client_interceptor(filter_=traced_call))


def unary(method: Callable[..., Response], request: Any, peer: str,
          deadline: float = DEFAULT_DEADLINE) -> Response:
    """Call a unary RPC of the ``peer`` service; failures raise domain errors."""
    try:
        return method(request, timeout=timeout(deadline))
    except grpc.RpcError as error:
        raise status.from_rpc_error(error, peer) from None


def stream(method: Callable[..., Any], request: Any, peer: str,
           deadline: float = DEFAULT_DEADLINE) -> Iterator[Any]:
    """Call a server-streaming RPC; the deadline covers the whole stream."""
    yield from stream_call(method(request, timeout=timeout(deadline)), peer)


def stream_call(call: Iterator[Any], peer: str) -> Iterator[Any]:
    """The messages of a streaming call already made; failures raise domain errors."""
    try:
        yield from call
    except grpc.RpcError as error:
        raise status.from_rpc_error(error, peer) from None


def health(channel: grpc.Channel, timeout_seconds: float = 2.0) -> str:
    """The peer's overall serving status name, or the status code that stopped the check."""
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=timeout_seconds)
    except grpc.RpcError as error:
        return error.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


class ServiceClient:
    """Base of every service's ``client.py``: one channel to the ``PEER`` service, its
    generated stub, and calls with deadlines whose failures are domain errors."""

    PEER: ClassVar[str]
    STUB: ClassVar[Callable[[grpc.Channel], Any]]

    def __init__(self, target: str, deadline: float = DEFAULT_DEADLINE) -> None:
        self._target = target
        self._channel = open_channel(target)
        self._stub = self.STUB(self._channel)
        self._deadline = deadline
        self._untraced: grpc.Channel | None = None

    def _unary(self, method: str, request: Any, deadline: float | None = None) -> Any:
        """Call ``method``; ``deadline`` for a call that may take longer than the others."""
        return unary(getattr(self._stub, method), request, self.PEER,
                     self._deadline if deadline is None else deadline)

    def _stream(self, method: str, request: Any) -> Iterator[Any]:
        return stream(getattr(self._stub, method), request, self.PEER, self._deadline)

    def health(self) -> str:
        """The service's serving status (``SERVING``), or the code that stopped the check."""
        return health(self._channel)

    def _open_stream(self, method: str, request: Any) -> Any:
        """A long-lived server stream on an untraced channel: the call object itself, with
        no deadline, cancellable from any thread."""
        if self._untraced is None:
            self._untraced = open_channel(self._target, traced=False)
        return getattr(self.STUB(self._untraced), method)(request)

    def close(self) -> None:
        self._channel.close()
        if self._untraced is not None:
            self._untraced.close()

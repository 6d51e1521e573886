"""Client channels to other services: traced, retried on UNAVAILABLE, with sane limits.

Every call made on these channels must still pass its own ``timeout=`` (a deadline);
``DEFAULT_DEADLINE`` is the value callers use when nothing tighter is known.
"""

from __future__ import annotations

import json

import grpc
from opentelemetry.instrumentation.grpc import client_interceptor, filters
from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

from omnicdp.runtime.server import MAX_MESSAGE_BYTES

DEFAULT_DEADLINE = 10.0

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


def open_channel(target: str) -> grpc.Channel:
    channel = grpc.insecure_channel(target, options=[
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 60_000),
    ])
    return intercept_channel(
        channel, client_interceptor(filter_=filters.negate(filters.health_check())))

"""What the gateway's tests share: API keys, an event to vary, the auth header. The
``client`` fixture (conftest.py) serves the gateway in front of the real services."""

from __future__ import annotations

WRITER, READER, SLOW = "writer-secret", "reader-secret", "slow-secret"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ev(message_id: str, **overrides) -> dict:
    body = {"message_id": message_id, "type": "track", "event": "Order Completed",
            "channel": "web", "timestamp": "2026-03-01T10:00:00Z",
            "identifiers": {"email": "maria@example.ru"}, "properties": {"revenue": 990.0}}
    body.update(overrides)
    return body

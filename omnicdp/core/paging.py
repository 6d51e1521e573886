"""Opaque page tokens and page-size caps for List RPCs (AIP-158)."""

from __future__ import annotations

import base64
import json
from typing import Any

from omnicdp.core.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size must not be negative",
                              [FieldViolation("page_size", "0 (default) to 1000")])
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(kind: str, position: dict[str, Any]) -> str:
    raw = json.dumps({"k": kind, **position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(kind: str, token: str) -> dict[str, Any] | None:
    """The position in a token made by encode_token for the same kind; None for no token."""
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if data.pop("k") != kind:
            raise ValueError(kind)
        return data
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument("page_token is not a token this list returned", [
            FieldViolation("page_token", "pass next_page_token from the previous page")
        ]) from exc

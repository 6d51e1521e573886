"""SHA-256 hex digests of text: how omnicdp keeps what it must recognise but not hold (an
API key, an erased person's identifier, a placeholder and the names seen with it) and how
ad platforms match hashed e-mails and phones."""

from __future__ import annotations

import hashlib


def sha256_hex(value: str) -> str:
    """The SHA-256 hex digest of a text's UTF-8 bytes."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()

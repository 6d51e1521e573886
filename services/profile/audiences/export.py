"""Members as partners receive them: identifiers raw, or hashed as ad platforms match them.

Ad platforms (customer lists, custom audiences) match on the SHA-256 hex digest of the
e-mail lower-cased and trimmed and of the phone in E.164. The golden record holds every
identifier already normalised by the identity service (e-mails lower-cased and trimmed,
Gmail's dots and +tags dropped; phones in E.164), so hashing is only the digest: no second
normaliser here. A hashed export carries e-mails and phones only; the other identifiers
(cookies, device and loyalty ids) mean nothing to an ad platform and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from omnicdp.core.digests import sha256_hex

HASHED_TYPES = ("email", "phone")


@dataclass(frozen=True)
class Member:
    """One member of an audience: since when, and its identifiers (type, value), hashed
    or not."""

    customer_id: str
    since: datetime
    identifiers: tuple[tuple[str, str], ...] = ()
    hashed: bool = False


def identifiers_for_export(identifiers: Iterable[tuple[str, str]],
                           hashed: bool) -> tuple[tuple[str, str], ...]:
    """The identifiers of a member as exported: all of them raw, or the e-mails and phones
    as SHA-256 hex digests."""
    if not hashed:
        return tuple(identifiers)
    return tuple((id_type, sha256_hex(value)) for id_type, value in identifiers
                 if id_type in HASHED_TYPES)

"""Normalisation of customer identifiers, and the placeholder values that never link.

Every identifier is reduced to one canonical string before it is stored or compared, so
that ``8-916-123-45-67`` and ``+7 (916) 123-45-67`` are the same phone and
``Ivan.Petrov+shop@googlemail.com`` is the same mailbox as ``ivanpetrov@gmail.com``.

Values that people type when they have nothing to type (``null``, ``0000``,
``noemail@mail.ru``, ``+7 999 999-99-99``) are placeholders: normalisation returns
``None`` for them, so they are ignored for linking rather than rejected. Two strangers whose
only shared value is a cashier's ``noemail@mail.ru`` must stay two customers.

Malformed values (an e-mail without a domain, a phone that is not a number) raise
:class:`~omnicdp.core.errors.InvalidArgument` naming the field, ``identifiers.<type>``.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping

import phonenumbers

from omnicdp.core.errors import FieldViolation, InvalidArgument
from omnicdp.core.vocabulary import IDENTIFIER_TYPES, MAX_IDENTIFIER_LENGTH, PRIORITY

# Segment's blocked values, plus the strings that pandas and other serialisers produce for a
# missing value (``nan``, ``nil``). Compared case-insensitively.
_BLOCKED_VALUES = frozenset(
    {"-1", "null", "none", "undefined", "anonymous", "unknown", "n/a", "nan", "nil"}
)
_ZEROS_AND_DASHES = re.compile(r"[0-]*")

# Local parts that cashiers and sign-up forms use when the customer gives no e-mail.
_PLACEHOLDER_EMAIL_LOCAL_PARTS = frozenset(
    {
        "noemail",
        "no-email",
        "no_email",
        "no.email",
        "nomail",
        "no-mail",
        "no_mail",
        "none",
        "no",
        "null",
        "test",
        "net",
        "123",
        "0",
        "noreply",
        "no-reply",
        "donotreply",
        "do-not-reply",
    }
)
# ``a@a.ru``, ``x@x.com``, ``test@test.ru``, ``net@net.ru``: local part equal to the
# domain's first label.
_PLACEHOLDER_EMAIL_SELF_DOMAINS = frozenset({"a", "x", "test", "net", "mail", "email"})
# RFC 2606 / RFC 6761 names reserved for examples and tests.
_PLACEHOLDER_EMAIL_DOMAINS = frozenset({"example.com", "example.org", "example.net"})
_RESERVED_TLDS = frozenset({"example", "test", "invalid", "localhost"})

_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_EMAIL_LOCAL = re.compile(r"[^\s@,;:<>()\[\]\\\"]+")
_EMAIL_LABEL = re.compile(r"[^\W_](?:[\w-]*[^\W_])?")
_EMAIL_TLD = re.compile(r"(?:[^\W\d_]{2,}|xn--[a-z0-9-]+)")

# A phone whose national number is a run of consecutive digits is typed, not dialled.
_ASCENDING_DIGITS = "01234567890123456789"
_DESCENDING_DIGITS = "98765432109876543210"
_MIN_SEQUENTIAL_PHONE_DIGITS = 6
# ``+7 916 000-00-00``: an operator code followed by seven identical digits.
_REPEATED_SUBSCRIBER_DIGITS = 7


def normalize_identifier(id_type: str, raw: str, default_region: str = "RU",
                         country: str | None = None) -> str | None:
    """The canonical form of one identifier, or ``None`` when it is empty or a placeholder.

    Raises :class:`InvalidArgument` (one violation on ``identifiers.<id_type>``) when the
    type is unknown or the value is malformed. ``default_region`` is the ISO country whose
    national phone formats are accepted without a ``+`` prefix.
    """
    field = f"identifiers.{id_type}"
    if id_type not in PRIORITY:
        raise _invalid(
            field,
            f"unknown identifier type {id_type!r}; expected one of " + ", ".join(IDENTIFIER_TYPES),
        )
    if not isinstance(raw, str):
        raise _invalid(field, f"must be a string, got {type(raw).__name__}")
    return _normalize(id_type, raw, default_region, country)


@functools.lru_cache(maxsize=200_000)  # bounded; raw values recur (a cookie, a phone)
def _normalize(id_type: str, raw: str, default_region: str, country: str | None) -> str | None:
    field = f"identifiers.{id_type}"
    value = raw.strip()
    if not value or _is_blocked(value):
        return None
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise _invalid(
            field, f"is {len(value)} characters long; at most {MAX_IDENTIFIER_LENGTH} allowed"
        )

    if id_type == "email":
        normalized = _normalize_email(field, value)
    elif id_type == "phone":
        normalized = _normalize_phone(field, value, _regions(country, default_region))
    elif id_type == "loyalty_id":
        normalized = re.sub(r"[\s-]+", "", value).upper()
    else:
        normalized = value

    if not normalized or is_placeholder(id_type, normalized):
        return None
    return normalized


class BlockedValues:
    """A retailer's own placeholders, beside the built-in ones: regular expressions that a
    whole normalised value matches (case-insensitively), for one identifier type or all.

    Given as text, one per line: ``PATTERN`` for every type or ``TYPE:PATTERN`` for one
    (e.g. ``email:.*@store\\.example\\.ru``, ``phone:\\+74950000000``); blank lines and lines
    starting with ``#`` are skipped."""

    def __init__(self, patterns: Mapping[str | None, list[re.Pattern[str]]] | None = None) -> None:
        self._patterns = dict(patterns or {})

    @classmethod
    def parse(cls, text: str, origin: str = "blocked values") -> BlockedValues:
        patterns: dict[str | None, list[re.Pattern[str]]] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            id_type, _, pattern = line.partition(":")
            if id_type not in IDENTIFIER_TYPES or not pattern:
                id_type, pattern = None, line
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error as error:
                raise ValueError(f"{origin}, line {number}: {error}") from None
            patterns.setdefault(id_type, []).append(compiled)
        return cls(patterns)

    def blocks(self, id_type: str, normalized: str) -> bool:
        return any(p.fullmatch(normalized) for key in (id_type, None)
                   for p in self._patterns.get(key, ()))

    def __bool__(self) -> bool:
        return bool(self._patterns)


NO_BLOCKED_VALUES = BlockedValues()


def normalize_usable_identifiers(
    ids: Mapping[str, str | None], default_region: str = "RU", country: str | None = None,
    blocked: BlockedValues = NO_BLOCKED_VALUES,
) -> tuple[dict[str, str], list[FieldViolation]]:
    """The record's usable identifiers, normalised and in priority order, and what was
    wrong with the others (malformed values, unknown types). Placeholders, built in or
    ``blocked``, are left out silently."""
    normalized: dict[str, str] = {}
    violations: list[FieldViolation] = []
    for id_type, raw in ids.items():
        if raw is None:
            continue
        try:
            value = normalize_identifier(id_type, raw, default_region, country)
        except InvalidArgument as error:
            violations.extend(error.violations)
            continue
        if value is not None and not (blocked and blocked.blocks(id_type, value)):
            normalized[id_type] = value
    return dict(sorted(normalized.items(), key=lambda item: PRIORITY[item[0]])), violations


def is_placeholder(id_type: str, normalized: str) -> bool:
    """Whether a normalised value is a stand-in that must never link two customers."""
    if _is_blocked(normalized):
        return True
    if id_type == "email":
        return _is_placeholder_email(normalized)
    if id_type == "phone":
        return _is_placeholder_phone(normalized)
    return False


def _invalid(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(f"{field} {description}", [FieldViolation(field, description)])


def _is_blocked(value: str) -> bool:
    value = value.strip()
    return value.casefold() in _BLOCKED_VALUES or _ZEROS_AND_DASHES.fullmatch(value) is not None


def _normalize_email(field: str, value: str) -> str:
    email = unicodedata.normalize("NFKC", value).lower()
    expected = "expected local@domain.tld without spaces, e.g. ivan.petrov@mail.ru"
    local, at, domain = email.rpartition("@")
    if not at or not _is_valid_local_part(local) or not _is_valid_domain(domain):
        raise _invalid(field, f"is not a valid e-mail address; {expected}")
    if domain in _GMAIL_DOMAINS:
        # Gmail ignores dots and delivers local+anything to local.
        domain = "gmail.com"
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            raise _invalid(field, f"has an empty Gmail user name; {expected}")
    return f"{local}@{domain}"


def _is_valid_local_part(local: str) -> bool:
    return (
        0 < len(local) <= 64
        and _EMAIL_LOCAL.fullmatch(local) is not None
        and not local.startswith(".")
        and not local.endswith(".")
        and ".." not in local
    )


def _is_valid_domain(domain: str) -> bool:
    labels = domain.split(".")
    return (
        len(labels) >= 2
        and all(_EMAIL_LABEL.fullmatch(label) for label in labels)
        and _EMAIL_TLD.fullmatch(labels[-1]) is not None
    )


def _is_placeholder_email(email: str) -> bool:
    local, _, domain = email.rpartition("@")
    labels = domain.split(".")
    return (
        local in _PLACEHOLDER_EMAIL_LOCAL_PARTS
        or (local == labels[0] and local in _PLACEHOLDER_EMAIL_SELF_DOMAINS)
        or domain in _PLACEHOLDER_EMAIL_DOMAINS
        or labels[-1] in _RESERVED_TLDS
        or _ZEROS_AND_DASHES.fullmatch(local) is not None
    )


def _regions(country: str | None, default_region: str) -> tuple[str, ...]:
    """Where a phone without ``+`` is read: the record's country when phonenumbers knows it
    (a Belarusian ``80 29 ...``, a German ``0170 ...``), then the default region."""
    code = (country or "").strip().upper()
    if code in phonenumbers.SUPPORTED_REGIONS and code != default_region:
        return code, default_region
    return (default_region,)


def _normalize_phone(field: str, value: str, regions: tuple[str, ...]) -> str:
    expected = "expected a phone number such as +7 916 123-45-67 or 8 916 123-45-67"
    problem = f"is not a phone number; {expected}"
    for region in regions:
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            continue
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        # Placeholders are checked before validity: +7 000 000-00-00 is ignored, not an error.
        if _is_placeholder_phone(e164) or phonenumbers.is_valid_number(number):
            return e164
        problem = f"is not a valid phone number; {expected}"
    raise _invalid(field, problem)


def _is_placeholder_phone(e164: str) -> bool:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    national = phonenumbers.national_significant_number(number)
    if not national:
        return True
    if len(set(national)) == 1:
        return True
    if len(national) >= _MIN_SEQUENTIAL_PHONE_DIGITS and (
        national in _ASCENDING_DIGITS or national in _DESCENDING_DIGITS
    ):
        return True
    subscriber = national[-_REPEATED_SUBSCRIBER_DIGITS:]
    return len(national) > _REPEATED_SUBSCRIBER_DIGITS and len(set(subscriber)) == 1

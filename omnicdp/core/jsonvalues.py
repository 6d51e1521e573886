"""The limits every JSON value of an event must keep (traits, properties, every string), and
the check that names each field breaking one.

They exist because each layer below has a harder limit that fails a whole batch: protobuf's
``Struct`` nests at most 32 objects or 48 arrays and holds numbers as doubles, UTF-8 cannot
carry a lone surrogate, PostgreSQL's ``jsonb`` refuses NUL, and sums of doubles overflow.
The gateway declares the same figures in its OpenAPI document and the README.
"""

from __future__ import annotations

import math
import unicodedata
from datetime import UTC, datetime
from typing import Any

from omnicdp.core.errors import FieldViolation

#: Objects and arrays nest at most this deep inside ``traits`` and ``properties`` (each of
#: them is level 1).
MAX_NESTING_DEPTH = 16
#: Every number lies within +-(2**53 - 1): integers stay exact as the doubles they are stored
#: as, and no sum of a batch's numbers can overflow.
MAX_ABS_NUMBER = 2**53 - 1
#: ``properties.revenue`` is a number from 0 to this (a trillion in the order's currency), so
#: no report's sum of revenues can overflow.
MAX_REVENUE = 1_000_000_000_000
#: Event timestamps from the Unix epoch on (the upper bound is a day after receipt).
MIN_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
#: At most this many violations are reported per event.
MAX_VIOLATIONS = 20

NUMBER_RANGE = f"a finite number within +-{MAX_ABS_NUMBER} (2^53 - 1)"
_FIELD_PART = 64  # characters of a key shown in a field path


class OutOfRange:
    """What the JSON parser makes of a literal no event may hold (``NaN``, ``Infinity``, an
    integer of hundreds of digits), so that only the event holding it is rejected."""

    def __repr__(self) -> str:
        return "OutOfRange()"


OUT_OF_RANGE = OutOfRange()


def text_problem(text: str) -> str | None:
    """Why a string cannot be stored, or None: a lone surrogate is not UTF-8, and NUL is
    refused by PostgreSQL and truncates C strings."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (\\ud800-\\udfff): not valid UTF-8"
    if "\x00" in text:
        return "contains a NUL character"
    return None


def identifier_problem(value: str) -> str | None:
    """Why a string cannot be an identifier, or None: besides :func:`text_problem`, no
    control or invisible formatting character (a zero-width space makes two e-mails that
    look the same differ)."""
    problem = text_problem(value)
    if problem:
        return problem
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in value):
        return "contains a control or invisible formatting character"
    return None


def printable(text: str) -> str:
    """``text`` safe to put in a response (lone surrogates escaped), at most 64 characters."""
    shown = text if len(text) <= _FIELD_PART else text[:_FIELD_PART] + "..."
    return shown.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def value_violations(value: Any, field: str, depth: int = 0) -> list[FieldViolation]:
    """Every field of a JSON value (as ``json.loads`` or a protobuf ``Struct`` gives it)
    breaking a limit; ``depth`` is the nesting level of ``value`` itself (0 for an event,
    1 for its ``traits``)."""
    if _clean(value, depth):
        return []
    found: list[FieldViolation] = []
    _walk(value, field, depth, found)
    return found[:MAX_VIOLATIONS]


def _clean(value: Any, depth: int) -> bool:
    """True only if ``_walk`` would find nothing: the common case, checked without building
    a field path for every key (half of the gateway's checks of an event). Anything unusual
    (another type, a non-ASCII string) is answered by the exact test or left to ``_walk``."""
    kind = type(value)
    if kind is str:
        return "\x00" not in value and (value.isascii() or text_problem(value) is None)
    if value is None or kind is bool:
        return True
    if kind is int:
        return -MAX_ABS_NUMBER <= value <= MAX_ABS_NUMBER
    if kind is float:
        return math.isfinite(value) and -MAX_ABS_NUMBER <= value <= MAX_ABS_NUMBER
    if depth > MAX_NESTING_DEPTH:
        return False
    if kind is dict:
        return all(type(key) is str and _clean(key, 0) and _clean(item, depth + 1)
                   for key, item in value.items())
    if kind is list:
        return all(_clean(item, depth + 1) for item in value)
    return False


def _walk(value: Any, field: str, depth: int, found: list[FieldViolation]) -> None:
    if len(found) >= MAX_VIOLATIONS:
        return
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            found.append(FieldViolation(field, problem))
    elif isinstance(value, int):
        if abs(value) > MAX_ABS_NUMBER:
            found.append(FieldViolation(field, NUMBER_RANGE))
    elif isinstance(value, float):
        if not math.isfinite(value) or abs(value) > MAX_ABS_NUMBER:
            found.append(FieldViolation(field, NUMBER_RANGE))
    elif isinstance(value, dict | list):
        if depth > MAX_NESTING_DEPTH:
            found.append(FieldViolation(field, f"nested deeper than {MAX_NESTING_DEPTH} levels "
                                               "of objects and arrays"))
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                _walk(item, f"{field}[{i}]", depth + 1, found)
            return
        for key, item in value.items():
            key = str(key)
            problem = text_problem(key)
            path = f"{field}.{printable(key)}" if field else printable(key)
            if problem:
                found.append(FieldViolation(path, f"key {problem}"))
            _walk(item, path, depth + 1, found)
    else:  # OUT_OF_RANGE, or anything that is not JSON
        found.append(FieldViolation(field, NUMBER_RANGE))


def revenue_problem(revenue: Any) -> str | None:
    """Why ``properties.revenue`` is not a revenue, or None."""
    if (isinstance(revenue, bool) or not isinstance(revenue, int | float)
            or not math.isfinite(revenue) or not 0 <= revenue <= MAX_REVENUE):
        return f"a number from 0 to {MAX_REVENUE}"
    return None

"""Durations and named windows as people write them on a command line or in a query string:
``2`` or ``2d`` (days), ``36h``, ``90m``; a window is ``NAME=DURATION`` (or ``NAME:DURATION``)."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhm]?)\s*$")
_UNITS = {"": "days", "d": "days", "h": "hours", "m": "minutes"}


def parse_duration(text: str) -> timedelta:
    """Raises ValueError naming the accepted forms."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; give days (2 or 2d), hours (36h) or "
                         "minutes (90m)")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def parse_window(text: str) -> tuple[str, timedelta]:
    """``NAME=DURATION`` or ``NAME:DURATION`` (the last separator splits)."""
    cut = max(text.rfind("="), text.rfind(":"))
    name = text[:cut].strip() if cut > 0 else ""
    if not name:
        raise ValueError(f"{text!r}: give NAME=DURATION, e.g. email=2d")
    return name, parse_duration(text[cut + 1:])

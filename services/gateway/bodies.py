"""Request bodies: parsed so that no JSON, however hostile, fails more than the event that
holds it.

``json.loads`` raises RecursionError past about a thousand levels of nesting and ValueError
on integers of thousands of digits, and reads ``NaN``/``Infinity``; each would fail the
whole batch. Here containers nested deeper than :data:`MAX_PARSE_DEPTH` are cut to ``null``
before parsing (the event that held them is still rejected, for nesting beyond
``MAX_NESTING_DEPTH``, which is far shallower), and out-of-range literals become
``OUT_OF_RANGE``, which the event's check reports with the field named.
"""

from __future__ import annotations

import json
import re
from typing import Any

from omnicdp.core.jsonvalues import MAX_NESTING_DEPTH, OUT_OF_RANGE

#: Deeper containers are cut before parsing: well past what an event may hold (an event
#: sits at level 3 of a batch, its properties' contents from level 5), well short of
#: Python's recursion limit.
MAX_PARSE_DEPTH = MAX_NESTING_DEPTH + 16
_MAX_INTEGER_DIGITS = 20

# A JSON string (skipped whole, escapes included) or a bracket.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPENING = frozenset(b"[{")


class MalformedBody(ValueError):
    """The body is not JSON; the message says where, without echoing the input."""


def cut_deep_containers(body: bytes, max_depth: int = MAX_PARSE_DEPTH) -> bytes:
    """``body`` with every container nested deeper than ``max_depth`` replaced by ``null``."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return body
    pieces: list[bytes] = []
    depth, cut_from, kept_to = 0, -1, 0
    for token in _TOKEN.finditer(body):
        first = body[token.start()]
        if first == 0x22:  # a string
            continue
        if first in _OPENING:
            depth += 1
            if depth == max_depth + 1:
                cut_from = token.start()
        else:
            if depth == max_depth + 1 and cut_from >= 0:
                pieces += [body[kept_to:cut_from], b"null"]
                kept_to, cut_from = token.end(), -1
            depth -= 1
    if kept_to == 0:
        return body
    pieces.append(body[kept_to:])
    return b"".join(pieces)


def _parse_int(literal: str) -> Any:
    return int(literal) if len(literal) <= _MAX_INTEGER_DIGITS else OUT_OF_RANGE


def _parse_constant(_literal: str) -> Any:  # NaN, Infinity, -Infinity
    return OUT_OF_RANGE


def parse(body: bytes) -> Any:
    """The JSON document in ``body``; raises :class:`MalformedBody`."""
    try:
        text = cut_deep_containers(body).decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedBody(f"the body is not UTF-8 (byte {error.start})") from None
    try:
        return json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant)
    except json.JSONDecodeError as error:
        raise MalformedBody(f"not valid JSON: {error.msg} at line {error.lineno} "
                            f"column {error.colno}") from None
    except (RecursionError, ValueError):
        raise MalformedBody("not valid JSON") from None

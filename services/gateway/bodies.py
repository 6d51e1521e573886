"""Request bodies: read as they stream in (size and time limits), decoded (gzip), and parsed
so that no JSON, however hostile, fails more than the event that holds it.

``json.loads`` raises RecursionError past about a thousand levels of nesting and ValueError
on integers of thousands of digits, and reads ``NaN``/``Infinity``; each would fail the
whole batch. Here containers nested deeper than :data:`MAX_PARSE_DEPTH` are cut to ``null``
before parsing (the event that held them is still rejected, for nesting beyond
``MAX_NESTING_DEPTH``, which is far shallower), and out-of-range literals become
``OUT_OF_RANGE``, which the event's check reports with the field named.
"""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from typing import Any

from starlette.requests import Request

from omnicdp.core.jsonvalues import MAX_NESTING_DEPTH, OUT_OF_RANGE
from omnicdp.services.gateway.problems import ProblemError

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


async def read(request: Request, max_bytes: int, timeout: float) -> bytes:
    """The body, read as it streams in: past ``max_bytes`` it is refused at once (a chunked
    body has no Content-Length to check first), and a body that takes longer than
    ``timeout`` seconds is refused too."""
    too_large = ProblemError(413, "PAYLOAD_TOO_LARGE", f"at most {max_bytes} bytes")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        raise ProblemError(408, "REQUEST_TIMEOUT",
                           f"the body must arrive within {timeout:g} seconds") from None
    return b"".join(chunks)


def decode(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """``body`` as sent before its ``Content-Encoding``: none (``identity``) or ``gzip``, as
    the analytics SDKs send it. The limit holds for the decompressed body too, checked as it
    inflates, so a small bomb never grows in memory."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise ProblemError(415, "UNSUPPORTED_CONTENT_ENCODING",
                           "Content-Encoding must be gzip or absent",
                           headers={"Accept-Encoding": "gzip"})
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
    try:
        inflated = inflater.decompress(body, max_bytes + 1)
        complete = inflater.eof and not inflater.unconsumed_tail
    except zlib.error:
        raise ProblemError(400, "MALFORMED_BODY", "the body is not valid gzip") from None
    if len(inflated) > max_bytes:
        raise ProblemError(413, "PAYLOAD_TOO_LARGE",
                           f"at most {max_bytes} bytes once decompressed")
    if not complete:
        raise ProblemError(400, "MALFORMED_BODY", "the gzip body is truncated")
    return inflated


async def read_json(request: Request, max_bytes: int, timeout: float) -> Any:
    """The request's JSON document: read within the limits, gzip decoded, parsed; a body
    that is no JSON is refused with 400 ``MALFORMED_JSON``."""
    body = decode(await read(request, max_bytes, timeout),
                  request.headers.get("content-encoding"), max_bytes)
    try:
        return parse(body)
    except MalformedBody as error:
        raise ProblemError(400, "MALFORMED_JSON", str(error)) from None

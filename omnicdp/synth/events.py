"""EVENTs in the gateway's HTTP format (PRODUCT.md), collected with their true person.

Only the identifiers a channel would really know are set, raw as the partner sends them;
``traits`` appear on identify events, ``properties`` on tracks, pages and screens.
"""

from __future__ import annotations

import heapq
import json
import random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from operator import attrgetter
from pathlib import Path
from typing import IO

from omnicdp.core.vocabulary import CHANNELS, EVENT_TYPES, IDENTIFIER_TYPES, TRAIT_FIELDS
from omnicdp.synth.records import SourceRecord
from omnicdp.synth.timeline import DAY

# Which partner sends each channel's events.
SOURCE_BY_CHANNEL = {
    "web": "website", "email": "esp-mailer", "push": "push-provider", "sms": "sms-gateway",
    "messenger": "messenger-bot", "ads": "ad-platform", "store": "pos-vendor",
    "call_center": "call-center", "crm": "crm",
}
APP_SOURCES = {"ios": "ios-app", "android": "android-app"}

# Track events that are marketing touches, for the attribution table.
TOUCH_EVENTS = ("Email Opened", "Email Clicked", "Push Opened", "SMS Sent", "Message Read",
                "Ad Impression", "Ad Clicked")
ORDER_COMPLETED = "Order Completed"

_RECORD_IDENTIFIERS = tuple(
    k for k in IDENTIFIER_TYPES if k in ("email", "phone", "user_id", "loyalty_id", "crm_id"))


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_TIMESTAMP_KEY = b',"timestamp":"'
MESSAGE_ID_LENGTH = 28  # "msg_" and 24 hex digits


@dataclass(slots=True)
class LoggedEvent:
    """One EVENT, kept as its UTF-8 JSON without the timestamp, which is inserted at
    ``split`` when written (a million dicts, or str with Cyrillic in them, would cost
    gigabytes)."""

    t: int  # seconds from the window start
    person_id: str
    event: str | None
    channel: str
    text: bytes
    split: int
    revenue: float | None = None  # for Order Completed
    order_id: str | None = None

    @property
    def message_id(self) -> str:
        return self.text[15:15 + MESSAGE_ID_LENGTH].decode()  # after '{"message_id":"'

    def json_line(self, timestamp: bytes) -> bytes:
        """The EVENT as one line of JSON, ``\\n`` included."""
        return b"".join((self.text[:self.split], _TIMESTAMP_KEY, timestamp, b'"',
                         self.text[self.split:], b"\n"))

    def to_run_line(self) -> bytes:
        # JSON text never holds a raw tab or newline, so both can delimit.
        return b"\t".join((
            str(self.t).encode(), self.person_id.encode(), (self.event or "").encode(),
            self.channel.encode(), b"" if self.revenue is None else repr(self.revenue).encode(),
            (self.order_id or "").encode(), str(self.split).encode(), self.text)) + b"\n"

    @classmethod
    def from_run_line(cls, line: bytes) -> LoggedEvent:
        t, person_id, event, channel, revenue, order_id, split, text = \
            line[:-1].split(b"\t", 7)
        return cls(int(t), person_id.decode(), event.decode() or None, channel.decode(), text,
                   int(split), float(revenue) if revenue else None, order_id.decode() or None)


class MessageIds:
    """``msg_`` and 24 hex digits, unique by construction: a counter sent through a keyed
    bijection of 96-bit integers, so the ids look random and no set of used ones is kept."""

    _MASK = (1 << 96) - 1
    _MIX = 0x9E3779B97F4A7C15F39CC061  # odd, so multiplying by it is a bijection

    def __init__(self, rng: random.Random) -> None:
        self._multiplier = rng.getrandbits(96) | 1
        self._key = rng.getrandbits(96)
        self._count = 0

    def next(self) -> str:
        self._count += 1
        x = (self._count * self._multiplier) & self._MASK
        x ^= x >> 48
        x = ((x * self._MIX) & self._MASK) ^ self._key
        return f"msg_{x:024x}"


class EventLog:
    """Every event of the simulation, with the person who caused it.

    Events outside the window are dropped when emitted. Past ``spill_after`` events the log
    sorts what it holds and spills it as a run to a temporary file in ``spill_dir``;
    :meth:`sorted_events` merges the runs, so memory stays flat however many customers.
    """

    def __init__(self, rng: random.Random, start: date, days: int,
                 spill_dir: Path | None = None, spill_after: int = 200_000) -> None:
        self._message_ids = MessageIds(rng)
        self._window = days * DAY
        self._origin = datetime.combine(start, time())
        self._day_prefix: dict[int, str] = {}
        self._spill_dir = spill_dir
        self._spill_after = spill_after
        self._buffer: list[LoggedEvent] = []
        self._runs: list[IO[bytes]] = []
        self.count = 0

    def emit(self, person_id: str, t: int, type_: str, channel: str, identifiers: dict[str, str],
             *, event: str | None = None, source: str | None = None,
             traits: dict[str, str] | None = None,
             properties: dict[str, object] | None = None) -> bool:
        """Log one EVENT. False, and nothing logged, when ``t`` is outside the window or no
        identifier is known (a partner cannot send such an event)."""
        identifiers = {k: v for k, v in identifiers.items() if v}
        if not identifiers or not 0 <= t < self._window:
            return False
        assert type_ in EVENT_TYPES and channel in CHANNELS, (type_, channel)
        parts = [f'{{"message_id":"{self._message_ids.next()}","type":"{type_}"']
        if event is not None:
            parts.append(f',"event":{_dumps(event)}')
        source = source or SOURCE_BY_CHANNEL[channel]
        parts.append(f',"channel":"{channel}","source":{_dumps(source)}')
        split = len("".join(parts).encode())
        parts += [',"identifiers":', _dumps(identifiers)]
        if traits:
            parts += [',"traits":', _dumps(traits)]
        if properties:
            parts += [',"properties":', _dumps(properties)]
        parts.append("}")
        logged = LoggedEvent(t, person_id, event, channel, "".join(parts).encode(), split)
        if event == ORDER_COMPLETED and properties:
            revenue = properties["revenue"]
            assert isinstance(revenue, float)
            logged.revenue, logged.order_id = revenue, str(properties["order_id"])
        self._buffer.append(logged)
        self.count += 1
        if self._spill_dir is not None and len(self._buffer) >= self._spill_after:
            self._spill(self._spill_dir)
        return True

    def identify_from_record(self, record: SourceRecord, channel: str,
                             extra: dict[str, str] | None = None,
                             source: str | None = None) -> bool:
        """The identify a source sends when it captures a record: the record's identifiers
        (plus the channel's own, e.g. the cookie) and its traits."""
        identifiers = {k: record.fields[k] for k in _RECORD_IDENTIFIERS if k in record.fields}
        identifiers.update(extra or {})
        traits = {k: record.fields[k] for k in TRAIT_FIELDS if k in record.fields}
        return self.emit(record.person_id, record.t, "identify", channel, identifiers,
                         source=source, traits=traits)

    def _spill(self, spill_dir: Path) -> None:
        self._buffer.sort(key=_by_time)
        # Open until close(): a run is read back by the merge in sorted_events().
        run = tempfile.TemporaryFile(dir=spill_dir, prefix=".events-run-")  # noqa: SIM115
        run.writelines(logged.to_run_line() for logged in self._buffer)
        run.seek(0)
        self._runs.append(run)
        self._buffer = []

    def sorted_events(self) -> Iterator[LoggedEvent]:
        """Every event, oldest first; events at the same second keep the order in which they
        were emitted (each run is stably sorted and the merge prefers earlier runs)."""
        self._buffer.sort(key=_by_time)
        runs = [map(LoggedEvent.from_run_line, run) for run in self._runs]
        return heapq.merge(*runs, iter(self._buffer), key=_by_time)

    def close(self) -> None:
        for run in self._runs:
            run.close()
        self._runs = []

    def timestamp(self, t: int) -> str:
        """RFC 3339, UTC, whole seconds: ``2026-01-03T12:34:56Z``."""
        day, second = divmod(t, DAY)
        prefix = self._day_prefix.get(day)
        if prefix is None:
            prefix = (self._origin + timedelta(days=day)).strftime("%Y-%m-%dT")
            self._day_prefix[day] = prefix
        hours, rest = divmod(second, 3600)
        return f"{prefix}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}Z"


_by_time = attrgetter("t")

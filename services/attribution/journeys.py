"""Attribution events, the windows that decide which touches count, and journeys.

A journey is what one conversion is attributed over: the customer's touches since their
previous conversion that still qualify when the conversion happens. Touches left after a
customer's last conversion (or all touches of a customer who never converted) form one
non-converting journey, which only the Markov model uses.

Rules (PRODUCT.md, "Attribution event table"):

* A touch at the same instant as a conversion, or before it, belongs to that conversion;
  a touch after it belongs to the next one.
* A click-type touch (any touch whose event is not a view, including a touch with no event
  name) qualifies if it is at most ``lookback_days`` before the conversion.
* A view-type touch (its event name is in ``view_events``, compared case-insensitively)
  qualifies only within its channel's post-view window, e.g. a store purchase at most two
  days after an ``Email Opened``. Channels without a configured window use
  ``default_post_view_window``.
* Touches since the previous conversion that do not qualify are dropped; they are in no
  journey.

Every journey carries the audience segment of its customer at its end (customer problem 3):

* ``active_buyer``: the customer converted before (an earlier conversion in the data);
* ``new_contact``: no earlier conversion, and the journey ends at most ``new_contact_days``
  after the customer's first event (touch or conversion);
* ``never_bought``: no earlier conversion and not new.

A converting journey ends at its conversion, a non-converting one at its last touch.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from omnicdp.core.errors import FieldViolation, InvalidArgument, NotFound

TOUCH = "touch"
CONVERSION = "conversion"
EventKind = Literal["touch", "conversion"]

NEW_CONTACT = "new_contact"
NEVER_BOUGHT = "never_bought"
ACTIVE_BUYER = "active_buyer"
SEGMENTS: tuple[str, ...] = (NEW_CONTACT, NEVER_BOUGHT, ACTIVE_BUYER)

REQUIRED_COLUMNS: tuple[str, ...] = ("customer_id", "timestamp", "kind", "channel", "value")
OPTIONAL_COLUMNS: tuple[str, ...] = ("event",)

DEFAULT_POST_VIEW_WINDOWS: Mapping[str, timedelta] = {
    "email": timedelta(days=2),
    "ads": timedelta(days=1),
    "push": timedelta(days=1),
    "sms": timedelta(days=1),
    "messenger": timedelta(days=1),
}

# Events that only show a message; one the customer acted on (Ad Clicked, Email Link
# Clicked, Push Opened) is a click and counts within the lookback window.
DEFAULT_VIEW_EVENTS: frozenset[str] = frozenset({
    "Email Sent",
    "Email Delivered",
    "Email Opened",
    "Ad Impression",
    "Ad Viewed",
    "Push Sent",
    "Push Delivered",
    "SMS Sent",
    "SMS Delivered",
    "Message Sent",
    "Message Delivered",
    "Message Read",
})


@dataclass(frozen=True)
class AttributionEvent:
    """One row of the attribution event table.

    ``channel`` is the touch's channel, or for a conversion where it happened (``web``,
    ``store``); ``value`` is a conversion's revenue (ignored for touches); ``event`` names
    the touch (``Email Opened``, ``Ad Clicked``) and decides whether it is a view or a
    click. A naive ``timestamp`` is taken as UTC; aware ones are converted to UTC.
    """

    customer_id: str
    timestamp: datetime
    kind: EventKind
    channel: str
    value: float = 0.0
    event: str | None = None

    def __post_init__(self) -> None:
        if not self.customer_id:
            raise InvalidArgument("customer_id must not be empty",
                                  [FieldViolation("customer_id", "must not be empty")])
        if self.kind not in (TOUCH, CONVERSION):
            raise InvalidArgument(
                f"kind must be 'touch' or 'conversion', got {self.kind!r}",
                [FieldViolation("kind", "must be 'touch' or 'conversion'")])
        if not self.channel:
            raise InvalidArgument("channel must not be empty",
                                  [FieldViolation("channel", "must not be empty")])
        if not isinstance(self.timestamp, datetime):
            raise InvalidArgument(
                f"timestamp must be a datetime, got {type(self.timestamp).__name__}",
                [FieldViolation("timestamp", "must be a datetime")])
        if not math.isfinite(self.value):
            raise InvalidArgument(f"value must be a finite number, got {self.value!r}",
                                  [FieldViolation("value", "must be a finite number")])
        object.__setattr__(self, "timestamp", _as_utc(self.timestamp))
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "event", self.event or None)

    @property
    def is_conversion(self) -> bool:
        return self.kind == CONVERSION


@dataclass(frozen=True)
class AttributionConfig:
    """Windows and model parameters; the defaults follow PRODUCT.md and Google's definitions."""

    lookback_days: float = 30
    post_view_windows: Mapping[str, timedelta] = field(
        default_factory=lambda: dict(DEFAULT_POST_VIEW_WINDOWS), hash=False)
    view_events: frozenset[str] = DEFAULT_VIEW_EVENTS
    default_post_view_window: timedelta = timedelta(days=1)
    time_decay_half_life: timedelta = timedelta(days=7)
    new_contact_days: float = 30
    _view_keys: frozenset[str] = field(init=False, repr=False, compare=False,
                                       default=frozenset())

    def __post_init__(self) -> None:
        if not self.lookback_days > 0:
            raise InvalidArgument(
                f"lookback_days must be positive, got {self.lookback_days}",
                [FieldViolation("lookback_days", "must be a positive number of days")])
        if not self.time_decay_half_life > timedelta(0):
            raise InvalidArgument(
                "time_decay_half_life must be positive",
                [FieldViolation("time_decay_half_life", "must be a positive duration")])
        if self.new_contact_days < 0:
            raise InvalidArgument(
                f"new_contact_days must not be negative, got {self.new_contact_days}",
                [FieldViolation("new_contact_days", "must be zero or more days")])
        windows = dict(self.post_view_windows)
        for channel, window in [*windows.items(), ("(default)", self.default_post_view_window)]:
            if window < timedelta(0):
                raise InvalidArgument(
                    f"post-view window of {channel} must not be negative",
                    [FieldViolation(f"post_view_windows.{channel}", "must be zero or more")])
        object.__setattr__(self, "post_view_windows", windows)
        object.__setattr__(self, "view_events", frozenset(self.view_events))
        object.__setattr__(self, "_view_keys",
                           frozenset(name.casefold() for name in self.view_events))

    @property
    def lookback(self) -> timedelta:
        return timedelta(days=self.lookback_days)

    def is_view(self, touch: AttributionEvent) -> bool:
        return touch.event is not None and touch.event.casefold() in self._view_keys

    def window_of(self, touch: AttributionEvent) -> timedelta:
        """How long before a conversion this touch still counts."""
        if self.is_view(touch):
            return self.post_view_windows.get(touch.channel, self.default_post_view_window)
        return self.lookback

    def qualifies(self, touch: AttributionEvent, conversion: AttributionEvent) -> bool:
        elapsed = conversion.timestamp - touch.timestamp
        return timedelta(0) <= elapsed <= self.window_of(touch)


@dataclass(frozen=True)
class Journey:
    """The qualifying touches (oldest first) that led to one conversion, or a
    non-converting journey (``conversion is None``) with the touches after the last one."""

    customer_id: str
    touches: tuple[AttributionEvent, ...]
    conversion: AttributionEvent | None
    segment: str

    @property
    def converted(self) -> bool:
        return self.conversion is not None

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(touch.channel for touch in self.touches)


def build_journeys(events: Iterable[AttributionEvent],
                   config: AttributionConfig | None = None) -> list[Journey]:
    """Split each customer's events into journeys, one per conversion plus at most one
    non-converting journey per customer. Customers come in first-seen order."""
    config = config or AttributionConfig()
    by_customer: dict[str, list[tuple[int, AttributionEvent]]] = defaultdict(list)
    for position, event in enumerate(events):
        by_customer[event.customer_id].append((position, event))

    journeys: list[Journey] = []
    for customer_id, numbered in by_customer.items():
        # Touches sort before a conversion at the same instant so that they count for it;
        # otherwise input order breaks ties.
        ordered = [event for _, event in sorted(
            numbered, key=lambda item: (item[1].timestamp, item[1].is_conversion, item[0]))]
        journeys.extend(_customer_journeys(customer_id, ordered, config))
    return journeys


def _customer_journeys(customer_id: str, ordered: list[AttributionEvent],
                       config: AttributionConfig) -> Iterator[Journey]:
    first_seen = ordered[0].timestamp
    new_contact_for = timedelta(days=config.new_contact_days)
    converted_before = False
    pending: list[AttributionEvent] = []

    def segment_at(end: datetime) -> str:
        if converted_before:
            return ACTIVE_BUYER
        return NEW_CONTACT if end - first_seen <= new_contact_for else NEVER_BOUGHT

    for event in ordered:
        if not event.is_conversion:
            pending.append(event)
            continue
        touches = tuple(touch for touch in pending if config.qualifies(touch, event))
        yield Journey(customer_id, touches, event, segment_at(event.timestamp))
        converted_before = True
        pending = []
    if pending:
        yield Journey(customer_id, tuple(pending), None, segment_at(pending[-1].timestamp))


def read_events_table(path: str | Path) -> list[AttributionEvent]:
    """Read an attribution event table from CSV or Parquet, chosen by the file extension.

    Columns: ``customer_id, timestamp, kind, channel, value`` and optionally ``event``.
    Timestamps are ISO dates or datetimes; naive ones are UTC. A touch's ``value`` may be
    empty. Raises InvalidArgument naming the row (1 = first data row) and column of every
    bad cell, up to 20 of them.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InvalidArgument(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}; "
            "give an event table as .csv or .parquet",
            [FieldViolation("path", "must end in .csv or .parquet")])
    if not path.is_file():
        raise NotFound(f"{path}: no such file")
    if suffix == ".csv":
        return _read_csv(path)
    return _read_parquet(path)


def _read_csv(path: Path) -> list[AttributionEvent]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        _check_columns(path, reader.fieldnames or [])
        rows = ((f"row {number} (line {reader.line_num})", row)
                for number, row in enumerate(reader, start=1))
        return _parse_rows(path, rows)


def _read_parquet(path: Path) -> list[AttributionEvent]:
    import pyarrow.parquet as pq  # only Parquet callers pay for the import

    table = pq.read_table(path)
    _check_columns(path, table.column_names)
    rows = ((f"row {number}", row) for number, row in enumerate(table.to_pylist(), start=1))
    return _parse_rows(path, rows)


def _check_columns(path: Path, columns: list[str]) -> None:
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise InvalidArgument(
            f"{path}: missing column(s) {', '.join(missing)}; an attribution event table "
            f"has columns {', '.join(REQUIRED_COLUMNS)} and optionally "
            f"{', '.join(OPTIONAL_COLUMNS)}",
            [FieldViolation(name, "required column is missing") for name in missing])


_MAX_REPORTED = 20


def _parse_rows(path: Path, rows: Iterable[tuple[str, Mapping[str, Any]]]
                ) -> list[AttributionEvent]:
    events: list[AttributionEvent] = []
    violations: list[FieldViolation] = []
    bad_rows = 0
    for where, row in rows:
        problems: list[FieldViolation] = []
        customer_id = _cell(row, "customer_id", _required_text, where, problems)
        timestamp = _cell(row, "timestamp", _timestamp, where, problems)
        kind = _cell(row, "kind", _kind, where, problems)
        channel = _cell(row, "channel", _required_text, where, problems)
        value = _cell(row, "value", _required_value if kind == CONVERSION else _value,
                      where, problems)
        event = _text(row.get("event")) or None
        if problems:
            bad_rows += 1
            violations.extend(problems)
            continue
        events.append(AttributionEvent(customer_id, timestamp, kind, channel, value, event))
    if violations:
        first = violations[0]
        more = f" (and {len(violations) - 1} more problem(s) in {bad_rows} row(s))" \
            if len(violations) > 1 else ""
        raise InvalidArgument(f"{path}: {first.field}: {first.description}{more}",
                              violations[:_MAX_REPORTED])
    return events


def _cell(row: Mapping[str, Any], column: str, parse: Callable[[Any], Any], where: str,
          problems: list[FieldViolation]) -> Any:
    try:
        return parse(row.get(column))
    except ValueError as error:
        problems.append(FieldViolation(f"{where}, column {column}", str(error)))
        return None


def _text(raw: Any) -> str:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return ""
    return str(raw).strip()


def _required_text(raw: Any) -> str:
    text = _text(raw)
    if not text:
        raise ValueError("must not be empty")
    return text


def _kind(raw: Any) -> str:
    text = _text(raw).lower()
    if text not in (TOUCH, CONVERSION):
        raise ValueError(f"{_text(raw)!r} is not a kind; use 'touch' or 'conversion'")
    return text


def _value(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a number")
    if isinstance(raw, int | float):
        number = float(raw)
        if math.isnan(number):
            return 0.0
    else:
        text = _text(raw)
        if not text:
            return 0.0
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{number!r} is not a finite number")
    return number


def _required_value(raw: Any) -> float:
    if not _text(raw):
        raise ValueError("a conversion needs its revenue as a number (0 if unknown)")
    return _value(raw)


def _timestamp(raw: Any) -> datetime:
    if isinstance(raw, datetime):
        return _as_utc(raw)
    if isinstance(raw, date):
        return datetime(raw.year, raw.month, raw.day, tzinfo=UTC)
    text = _text(raw)
    if not text:
        raise ValueError("must not be empty; give an ISO date or datetime")
    try:
        return _as_utc(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO date or datetime "
            "(e.g. 2025-03-01 or 2025-03-01T14:30:00Z)") from None


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)

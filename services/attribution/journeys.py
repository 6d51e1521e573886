"""Attribution events, the windows that decide which touches count, and journeys.

A journey is what one conversion is attributed over: the customer's touches since their
previous conversion that still qualify when the conversion happens. The touches left after
a customer's last conversion (or all touches of a customer who never converted) form one
non-converting journey, which the Markov and Shapley models use.

One windowing rule for both kinds (PRODUCT.md, "Attribution event table"). A journey *ends*
at its conversion, or, when it did not convert, at its last touch; a touch is in the
journey when it qualifies at that end:

* A touch at the same instant as a conversion, or before it, belongs to that conversion;
  a touch after it belongs to the next one.
* A click-type touch (any touch whose event is not a view, including a touch with no event
  name) qualifies if it is at most ``lookback_days`` before the journey's end.
* A view-type touch (its event name is in ``view_events``, compared case-insensitively)
  qualifies only within its post-view window: the event's own window when one is set
  (``event_post_view_windows``, e.g. ``Ad Impression``: 1 day), else its channel's
  (``post_view_windows``, e.g. a store purchase at most two days after an e-mail open),
  else ``default_post_view_window``.
* Touches that do not qualify are dropped; they are in no journey. So a non-converting
  journey holds what would have been credited had the customer converted right after
  their last touch, not every touch they ever had.

Segments (customer problem 3) are computed at a moment: at a touch for the credit that touch
earns, at a journey's end for the journey. ``active_buyer`` (a returning buyer): the
customer bought before that moment (an earlier conversion in the data, or a first purchase
the customer's history gives); ``new_contact``: not bought, and first seen at most
``new_contact_days`` before; ``never_bought``: known for longer and never bought. First
seen is the customer's earliest event in the data or in the history given (e.g. the
profile's ``first_seen``), whichever is earlier.

Journeys are built as columns (``JourneySet``): a sort and a few vectorised passes, never one
Python object per event; ``build_journeys`` gives ``Journey`` values for small inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np

from omnicdp.core.errors import FieldViolation, InvalidArgument
from omnicdp.services.attribution.report import PLACES, SEGMENTS
from omnicdp.services.attribution.table import (
    DEFAULT_TIME_ZONE,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    EventTable,
    Progress,
    check_time_zone,
    customer_names,
    read_event_table,
    to_micros,
)

TOUCH = "touch"
CONVERSION = "conversion"
EventKind = Literal["touch", "conversion"]

NEW_CONTACT, NEVER_BOUGHT, ACTIVE_BUYER = SEGMENTS
ONLINE, STORE = PLACES

__all__ = [
    "DEFAULT_POST_VIEW_WINDOWS",
    "DEFAULT_VIEW_EVENTS",
    "OPTIONAL_COLUMNS",
    "PLACES",
    "REQUIRED_COLUMNS",
    "SEGMENTS",
    "AttributionConfig",
    "AttributionEvent",
    "CustomerHistory",
    "EventTable",
    "Journey",
    "JourneySet",
    "build_journey_set",
    "build_journeys",
    "read_customer_history",
    "read_event_table",
    "read_events_table",
]


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
    click. An aware ``timestamp`` is converted to UTC; a naive one is kept naive and read in
    the configuration's business time zone when attributed.
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
        if self.timestamp.tzinfo is not None:
            object.__setattr__(self, "timestamp", self.timestamp.astimezone(UTC))
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "event", self.event or None)

    @property
    def is_conversion(self) -> bool:
        return self.kind == CONVERSION


@dataclass(frozen=True)
class AttributionConfig:
    """Windows and model parameters; the defaults follow PRODUCT.md and Google's definitions.

    ``post_view_windows`` are per channel, ``event_post_view_windows`` per event name
    (case-insensitive, before the channel's). ``time_zone`` is the business time zone of
    dates and naive times. ``offline_places`` are the conversion channels reported as
    ``store`` (the rest are ``online``). ``markov_order`` is the Markov chain's memory (1:
    a state is the last channel; k: the last k channels). Shapley from coalitions is exact
    up to ``shapley_exact_max`` channels, else estimated from ``shapley_samples`` random
    permutations drawn with ``seed``.
    """

    lookback_days: float = 30
    post_view_windows: Mapping[str, timedelta] = field(
        default_factory=lambda: dict(DEFAULT_POST_VIEW_WINDOWS), hash=False)
    view_events: frozenset[str] = DEFAULT_VIEW_EVENTS
    default_post_view_window: timedelta = timedelta(days=1)
    event_post_view_windows: Mapping[str, timedelta] = field(default_factory=dict, hash=False)
    time_decay_half_life: timedelta = timedelta(days=7)
    new_contact_days: float = 30
    time_zone: str = DEFAULT_TIME_ZONE
    offline_places: frozenset[str] = frozenset({"store"})
    markov_order: int = 1
    shapley_exact_max: int = 15
    shapley_samples: int = 2000
    seed: int = 0
    _view_keys: frozenset[str] = field(init=False, repr=False, compare=False,
                                       default=frozenset())

    def __post_init__(self) -> None:
        if not (self.lookback_days > 0 and math.isfinite(self.lookback_days)):
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
        if not 1 <= self.markov_order <= 6:
            raise InvalidArgument(
                f"markov_order must be from 1 to 6, got {self.markov_order}",
                [FieldViolation("markov_order", "must be from 1 to 6")])
        if self.shapley_samples < 1:
            raise InvalidArgument(
                "shapley_samples must be at least 1",
                [FieldViolation("shapley_samples", "must be at least 1")])
        check_time_zone(self.time_zone)
        windows = dict(self.post_view_windows)
        by_event = {name.casefold(): window
                    for name, window in self.event_post_view_windows.items()}
        for name, window in [*[(f"post_view_windows.{c}", w) for c, w in windows.items()],
                             *[(f"event_post_view_windows.{e}", w)
                               for e, w in self.event_post_view_windows.items()],
                             ("default_post_view_window", self.default_post_view_window)]:
            if window < timedelta(0):
                raise InvalidArgument(f"{name} must not be negative",
                                      [FieldViolation(name, "must be zero or more")])
        object.__setattr__(self, "post_view_windows", windows)
        object.__setattr__(self, "event_post_view_windows", by_event)
        object.__setattr__(self, "view_events", frozenset(self.view_events))
        object.__setattr__(self, "offline_places", frozenset(self.offline_places))
        object.__setattr__(self, "_view_keys",
                           frozenset(name.casefold() for name in self.view_events))

    @property
    def lookback(self) -> timedelta:
        return timedelta(days=self.lookback_days)

    def is_view_event(self, event: str | None) -> bool:
        return event is not None and event.casefold() in self._view_keys

    def is_view(self, touch: AttributionEvent) -> bool:
        return self.is_view_event(touch.event)

    def window_of(self, touch: AttributionEvent) -> timedelta:
        """How long before a journey's end this touch still counts."""
        return self.window_for(touch.channel, touch.event)

    def window_for(self, channel: str, event: str | None) -> timedelta:
        if self.is_view_event(event):
            assert event is not None
            by_event = self.event_post_view_windows.get(event.casefold())
            if by_event is not None:
                return by_event
            return self.post_view_windows.get(channel, self.default_post_view_window)
        return self.lookback

    def place_of(self, conversion_channel: str) -> str:
        return STORE if conversion_channel in self.offline_places else ONLINE


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



_DAY_US = 86_400_000_000
_NEVER = np.iinfo(np.int64).max
SEGMENT_CODES = {name: code for code, name in enumerate(SEGMENTS)}


def _micros(span: timedelta) -> int:
    return (span.days * 86_400 + span.seconds) * 1_000_000 + span.microseconds


@dataclass(frozen=True, eq=False)
class CustomerHistory:
    """What a customer's profile knows beyond the event table: when the customer was first
    seen and when they first bought (microseconds UTC; absent customers know nothing)."""

    customer_ids: Sequence[str]
    first_seen: np.ndarray      # int64, _NEVER when unknown
    first_purchase: np.ndarray  # int64, _NEVER when never

    @classmethod
    def from_mapping(cls, rows: Mapping[str, tuple[datetime | None, datetime | None]],
                     time_zone: str = DEFAULT_TIME_ZONE) -> CustomerHistory:
        ids = list(rows)
        return cls(ids,
                   np.array([_NEVER if rows[c][0] is None else to_micros(rows[c][0], time_zone)
                             for c in ids], dtype=np.int64),
                   np.array([_NEVER if rows[c][1] is None else to_micros(rows[c][1], time_zone)
                             for c in ids], dtype=np.int64))

    def aligned(self, customers: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """First seen and first purchase for each of ``customers`` (codes' order)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        names = customers if isinstance(customers, pa.Array) else \
            pa.array(list(customers), pa.string())
        position = pc.index_in(names, value_set=pa.array(list(self.customer_ids), pa.string()))
        found = position.is_valid().to_numpy(zero_copy_only=False)
        where = position.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        first_seen = np.where(found, self.first_seen[where] if len(self.customer_ids) else
                              _NEVER, _NEVER)
        first_purchase = np.where(found, self.first_purchase[where] if len(self.customer_ids)
                                  else _NEVER, _NEVER)
        return first_seen.astype(np.int64), first_purchase.astype(np.int64)


@dataclass(frozen=True, eq=False)
class JourneySet:
    """All journeys of an event table as columns.

    Per journey (``J`` of them, grouped by customer, oldest first): ``customer``,
    ``converted``, ``value`` (revenue, 0 when not converted), ``end`` (conversion time or
    last touch), ``place`` (``PLACES`` index; -1 when not converted), ``segment`` at the end
    (``SEGMENTS`` index), ``first_seen`` of the customer, ``start``/``length`` into the touch
    columns, and ``conversion_row`` (the conversion's row in the table, -1 if none).
    Per qualifying touch (``T``, grouped by journey, oldest first): ``touch_journey``,
    ``touch_channel`` (code into ``channels``), ``touch_time``, ``touch_view``,
    ``touch_event`` (code into ``events``, -1 none), ``touch_segment`` (at the touch) and
    ``touch_row`` (its row in the table).
    """

    channels: Sequence[str]
    events: Sequence[str]
    customers: Sequence[str]
    customer: np.ndarray
    converted: np.ndarray
    value: np.ndarray
    end: np.ndarray
    place: np.ndarray
    segment: np.ndarray
    first_seen: np.ndarray
    start: np.ndarray
    length: np.ndarray
    conversion_row: np.ndarray
    touch_journey: np.ndarray
    touch_channel: np.ndarray
    touch_time: np.ndarray
    touch_view: np.ndarray
    touch_event: np.ndarray
    touch_segment: np.ndarray
    touch_row: np.ndarray
    dropped_touches: int = 0

    def __len__(self) -> int:
        return len(self.customer)

    def subset(self, keep: np.ndarray) -> JourneySet:
        """The journeys where ``keep`` (a bool per journey) holds."""
        keep_touch = keep[self.touch_journey]
        renumber = np.cumsum(keep) - 1
        length = self.length[keep]
        start = np.concatenate(([0], np.cumsum(length)[:-1])).astype(np.int64) \
            if len(length) else np.zeros(0, np.int64)
        return JourneySet(
            self.channels, self.events, self.customers, self.customer[keep],
            self.converted[keep], self.value[keep], self.end[keep], self.place[keep],
            self.segment[keep], self.first_seen[keep], start, length,
            self.conversion_row[keep], renumber[self.touch_journey[keep_touch]],
            self.touch_channel[keep_touch], self.touch_time[keep_touch],
            self.touch_view[keep_touch], self.touch_event[keep_touch],
            self.touch_segment[keep_touch], self.touch_row[keep_touch], 0)


def build_journey_set(table: EventTable, config: AttributionConfig | None = None,
                      history: CustomerHistory | None = None,
                      progress: Progress | None = None) -> JourneySet:
    """Split each customer's events into journeys (see the module docstring for the rule).

    Vectorised: one sort of the table, then array passes; memory is a few arrays of the
    table's length.
    """
    config = config or AttributionConfig()
    if progress:
        progress(f"building journeys from {len(table):,} events")
    n = len(table)
    # lexsort is stable: rows at the same instant keep their input order.
    order = np.lexsort((table.conversion, table.time, table.customer))
    customer = table.customer[order]
    time = table.time[order]
    conversion = table.conversion[order]
    channel = table.channel[order]
    event = table.event[order]

    new_customer = np.ones(n, dtype=bool)
    new_customer[1:] = customer[1:] != customer[:-1]
    after_conversion = np.zeros(n, dtype=bool)
    after_conversion[1:] = conversion[:-1]
    group_start = new_customer | after_conversion
    del after_conversion
    group = np.cumsum(group_start, dtype=np.int32) - 1
    starts = np.flatnonzero(group_start)
    del group_start
    lasts = np.append(starts[1:], n) - 1 if n else starts
    group_converted = conversion[lasts]
    group_end = time[lasts]

    # Conversions strictly before each row, within its customer.
    before = np.cumsum(conversion, dtype=np.int32) - conversion
    customer_rows = np.flatnonzero(new_customer)
    customer_index = np.cumsum(new_customer, dtype=np.int32) - 1
    del new_customer
    converted_before = before - before[customer_rows][customer_index]
    del before, customer_index

    first_seen = np.full(len(table.customers), _NEVER, dtype=np.int64)
    first_seen[customer[customer_rows]] = time[customer_rows]
    first_purchase = np.full(len(table.customers), _NEVER, dtype=np.int64)
    if history is not None:
        known_seen, known_purchase = history.aligned(table.customers)
        first_seen = np.minimum(first_seen, known_seen)
        first_purchase = known_purchase
    new_for = int(round(config.new_contact_days * _DAY_US))

    def segment_at(customers: np.ndarray, moment: np.ndarray, bought: np.ndarray
                   ) -> np.ndarray:
        bought = (bought > 0) | (first_purchase[customers] < moment)
        new = (moment - first_seen[customers]) <= new_for
        return np.where(bought, SEGMENT_CODES[ACTIVE_BUYER],
                        np.where(new, SEGMENT_CODES[NEW_CONTACT],
                                 SEGMENT_CODES[NEVER_BOUGHT])).astype(np.int8)

    # Windows: per event code and per channel code, then per row.
    view_event = np.array([config.is_view_event(name) for name in table.events] + [False],
                          dtype=bool)
    event_window = np.array(
        [_micros(config.event_post_view_windows[name.casefold()])
         if name.casefold() in config.event_post_view_windows else -1
         for name in table.events] + [-1], dtype=np.int64)
    channel_window = np.array(
        [_micros(config.post_view_windows.get(name, config.default_post_view_window))
         for name in table.channels], dtype=np.int64)
    lookback = int(round(config.lookback_days * _DAY_US))
    is_touch = ~conversion
    view = is_touch & view_event[event]  # event -1 reads the trailing False
    window = np.where(view, np.where(event_window[event] >= 0, event_window[event],
                                     channel_window[channel] if len(channel_window)
                                     else 0), lookback)
    qualifies = is_touch & ((group_end[group] - time) <= window)
    del window
    kept = np.flatnonzero(qualifies)
    del qualifies

    touch_journey = group[kept]
    length = np.bincount(touch_journey, minlength=len(starts)).astype(np.int64)
    start = np.concatenate(([0], np.cumsum(length)[:-1])).astype(np.int64) \
        if len(length) else np.zeros(0, np.int64)
    places = np.array([PLACES.index(config.place_of(name)) for name in table.channels],
                      dtype=np.int8)
    journey_customer = customer[starts]
    value = np.where(group_converted, table.value[order[lasts]], 0.0)
    journeys = JourneySet(
        channels=table.channels, events=table.events, customers=table.customers,
        customer=journey_customer, converted=group_converted, value=value, end=group_end,
        place=np.where(group_converted, places[channel[lasts]] if len(places) else 0,
                       -1).astype(np.int8),
        segment=segment_at(journey_customer, group_end, converted_before[starts]),
        first_seen=first_seen[journey_customer], start=start, length=length,
        conversion_row=np.where(group_converted, order[lasts], -1),
        touch_journey=touch_journey, touch_channel=channel[kept], touch_time=time[kept],
        touch_view=view[kept], touch_event=event[kept],
        touch_segment=segment_at(customer[kept], time[kept], converted_before[kept]),
        touch_row=order[kept], dropped_touches=int(is_touch.sum() - len(kept)))
    if progress:
        progress(f"{len(journeys):,} journeys ({int(journeys.converted.sum()):,} converting), "
                 f"{len(kept):,} touches in them, {journeys.dropped_touches:,} outside windows")
    return journeys


def build_journeys(events: Iterable[AttributionEvent],
                   config: AttributionConfig | None = None,
                   history: CustomerHistory | None = None) -> list[Journey]:
    """Journeys as values (for small inputs): one per conversion plus at most one
    non-converting journey per customer. Customers come in first-seen order."""
    config = config or AttributionConfig()
    rows = list(events)
    journeys = build_journey_set(EventTable.from_events(rows, config.time_zone), config,
                                 history)
    out = []
    customers = customer_names(journeys.customers)
    for j in range(len(journeys)):
        begin, count = int(journeys.start[j]), int(journeys.length[j])
        touches = tuple(rows[r] for r in journeys.touch_row[begin:begin + count])
        row = int(journeys.conversion_row[j])
        out.append(Journey(customers[journeys.customer[j]], touches,
                           rows[row] if row >= 0 else None, SEGMENTS[journeys.segment[j]]))
    return out


def read_customer_history(path: str | Path, time_zone: str = DEFAULT_TIME_ZONE
                          ) -> CustomerHistory:
    """A customer table (CSV or Parquet) with ``customer_id`` and either or both of
    ``first_seen`` (when the profile first saw the customer) and ``first_purchase`` (their
    first order, also one before the event table's period), ISO dates or times; an empty
    cell is unknown / never. Dates and naive times are in ``time_zone``."""
    import duckdb

    path = Path(path)
    if path.suffix.lower() not in (".csv", ".parquet", ".pq") or not path.is_file():
        raise InvalidArgument(f"{path}: give an existing .csv or .parquet customer table",
                              [FieldViolation("history", "an existing .csv or .parquet file")])
    check_time_zone(time_zone)
    literal = "'" + str(path).replace("'", "''") + "'"
    source = f"read_csv({literal}, all_varchar = true, header = true)" \
        if path.suffix.lower() == ".csv" else f"read_parquet({literal})"
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = ?", [time_zone])
        columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
        if "customer_id" not in columns or not {"first_seen", "first_purchase"} & set(columns):
            raise InvalidArgument(
                f"{path}: a customer table has customer_id and first_seen and/or "
                "first_purchase", [FieldViolation("history", "columns customer_id, "
                                                  "first_seen, first_purchase")])

        def text(column: str) -> str:
            return f"nullif(trim(CAST({column} AS VARCHAR)), '')" if column in columns \
                else "NULL::VARCHAR"

        def moment(column: str) -> str:
            if column not in columns:
                return "NULL::BIGINT"
            return (f"epoch_us(CASE WHEN typeof({column}) = 'VARCHAR' THEN "
                    f"try_cast({text(column)} AS TIMESTAMPTZ) "
                    f"ELSE try_cast({column} AS TIMESTAMPTZ) END)")
        con.execute(f"""CREATE TEMP VIEW history AS SELECT
                CAST(customer_id AS VARCHAR) AS customer_id,
                {moment('first_seen')} AS first_seen, {text('first_seen')} AS seen_text,
                {moment('first_purchase')} AS first_purchase,
                {text('first_purchase')} AS purchase_text
            FROM {source}""")
        bad = con.execute("""SELECT count(*) FROM history
            WHERE (first_seen IS NULL AND seen_text IS NOT NULL)
               OR (first_purchase IS NULL AND purchase_text IS NOT NULL)""").fetchall()[0][0]
        if bad:
            raise InvalidArgument(f"{path}: {bad} row(s) with a time that is not an ISO date "
                                  "or datetime", [FieldViolation("history", "ISO dates")])
        query = "SELECT customer_id, first_seen, first_purchase FROM history"
        table = con.sql(query).to_arrow_table()
    finally:
        con.close()
    never = np.iinfo(np.int64).max
    return CustomerHistory(
        table.column("customer_id").to_pylist(),
        table.column("first_seen").fill_null(never).to_numpy().astype(np.int64),
        table.column("first_purchase").fill_null(never).to_numpy().astype(np.int64))


def read_events_table(path: str | Path, time_zone: str = DEFAULT_TIME_ZONE
                      ) -> list[AttributionEvent]:
    """The event table as values (small tables); ``read_event_table`` gives columns."""
    return read_event_table(path, time_zone).to_events()

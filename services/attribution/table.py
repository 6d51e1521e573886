"""The attribution event table held as columns (numpy arrays), never one object per event.

A table comes from a CSV or Parquet file (read and checked by DuckDB, so a million-row file
costs a scan, not a million Python objects), from Arrow columns, or, for small inputs and
tests, from ``AttributionEvent`` values. Times are microseconds since the epoch, UTC.

Business time zone: a date-only timestamp (``2025-03-01``) is midnight and a naive one
(``2025-03-01T14:30``) is wall-clock time in ``time_zone`` (Europe/Moscow by default); a
timestamp with an offset or ``Z`` is taken as written. A Parquet ``DATE`` or ``TIMESTAMP``
without a zone is read the same way, a ``TIMESTAMP WITH TIME ZONE`` as is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from omnicdp.core.errors import FieldViolation, InvalidArgument, NotFound

if TYPE_CHECKING:
    import pyarrow as pa

    from omnicdp.services.attribution.journeys import AttributionEvent

REQUIRED_COLUMNS: tuple[str, ...] = ("customer_id", "timestamp", "kind", "channel", "value")
OPTIONAL_COLUMNS: tuple[str, ...] = ("event", "identified")
DEFAULT_TIME_ZONE = "Europe/Moscow"

Progress = Callable[[str], None]

_MAX_REPORTED = 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(
            f"unknown time zone {name!r}; give an IANA name such as Europe/Moscow or UTC",
            [FieldViolation("time_zone", "must be an IANA time zone name")]) from None


def to_micros(moment: datetime | date, time_zone: str = DEFAULT_TIME_ZONE) -> int:
    """Microseconds since the epoch of ``moment``; a date or naive time is in ``time_zone``."""
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=check_time_zone(time_zone))
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return datetime.fromtimestamp(micros / 1_000_000, UTC) if micros % 1_000_000 else \
        datetime.fromtimestamp(micros // 1_000_000, UTC)


@dataclass(frozen=True, eq=False)
class EventTable:
    """Columns of the event table, one entry per event, in input order.

    ``customer``, ``channel`` and ``event`` are codes into ``customers``, ``channels`` and
    ``events`` (``event`` is -1 when the row names no event). ``identified`` says whether
    the event carried a known identifier (e-mail, phone, user id...), when the source says.
    """

    customer: np.ndarray       # int32 codes
    customers: Sequence[str]   # a list, or an Arrow string array for large tables
    time: np.ndarray           # int64 microseconds, UTC
    conversion: np.ndarray     # bool
    channel: np.ndarray        # int32 codes
    channels: Sequence[str]
    value: np.ndarray          # float64, a conversion's revenue
    event: np.ndarray          # int32 codes, -1 for none
    events: Sequence[str]
    identified: np.ndarray | None = None  # bool

    def __len__(self) -> int:
        return len(self.time)

    @classmethod
    def from_events(cls, events: Iterable[AttributionEvent],
                    time_zone: str = DEFAULT_TIME_ZONE) -> EventTable:
        """For small inputs (tests, a service's handful): one pass over the values."""
        zone = check_time_zone(time_zone)
        rows = list(events)
        customers, customer = _codes([e.customer_id for e in rows])
        channels, channel = _codes([e.channel for e in rows])
        names, event = _codes([e.event for e in rows])
        return cls(
            customer=customer, customers=customers,
            time=np.array([to_micros(e.timestamp if e.timestamp.tzinfo else
                                     e.timestamp.replace(tzinfo=zone)) for e in rows],
                          dtype=np.int64),
            conversion=np.array([e.kind == "conversion" for e in rows], dtype=bool),
            channel=channel, channels=channels,
            value=np.array([e.value for e in rows], dtype=np.float64),
            event=event, events=names)

    @classmethod
    def from_columns(cls, customers: list[str], time: np.ndarray, conversion: np.ndarray,
                     channels: list[str], value: np.ndarray, events: list[str | None]
                     ) -> EventTable:
        """From checked values per column (times in microseconds UTC)."""
        customer_names, customer = _codes(customers)
        channel_names, channel = _codes(channels)
        event_names, event = _codes(events)
        return cls(customer=customer, customers=customer_names, time=time,
                   conversion=conversion, channel=channel, channels=channel_names,
                   value=value, event=event, events=event_names)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> EventTable:
        """From checked columns: ``customer_id``, ``time`` (int64 microseconds UTC),
        ``conversion`` (bool), ``channel``, ``value`` (float64), ``event`` (nullable) and
        optionally ``identified`` (nullable bool)."""
        # Customer names stay an Arrow array: a million Python strings cost 70 MB.
        customers, customer = _arrow_codes(table.column("customer_id"), as_list=False)
        channels, channel = _arrow_codes(table.column("channel"))
        events, event = _arrow_codes(table.column("event"))
        identified = None
        if "identified" in table.column_names and table.column("identified").null_count \
                < len(table):
            identified = table.column("identified").fill_null(False).to_numpy().astype(bool)
        return cls(
            customer=customer, customers=customers,
            time=table.column("time").to_numpy().astype(np.int64),
            conversion=table.column("conversion").to_numpy().astype(bool),
            channel=channel, channels=channels,
            value=table.column("value").to_numpy().astype(np.float64),
            event=event, events=events, identified=identified)

    def to_events(self) -> list[AttributionEvent]:
        """Back to values (small tables only)."""
        from omnicdp.services.attribution.journeys import AttributionEvent

        customers = customer_names(self.customers)
        return [AttributionEvent(
            customers[self.customer[i]], from_micros(int(self.time[i])),
            "conversion" if self.conversion[i] else "touch", self.channels[self.channel[i]],
            float(self.value[i]), self.events[self.event[i]] if self.event[i] >= 0 else None)
            for i in range(len(self))]


def customer_names(customers: Sequence[str]) -> list[str]:
    """Names as a list of ``str`` (from a list or an Arrow array)."""
    return customers if isinstance(customers, list) else customers.to_pylist()  # type: ignore


def _codes(values: list[str | None]) -> tuple[list[str], np.ndarray]:
    names: dict[str, int] = {}
    codes = np.fromiter((-1 if v is None else names.setdefault(v, len(names)) for v in values),
                        dtype=np.int32, count=len(values))
    return list(names), codes


def _arrow_codes(column: pa.ChunkedArray, as_list: bool = True
                 ) -> tuple[Sequence[str], np.ndarray]:
    import pyarrow as pa

    encoded = column.combine_chunks().dictionary_encode() if len(column) else \
        pa.array([], pa.string()).dictionary_encode()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    return (encoded.dictionary.to_pylist() if as_list else encoded.dictionary), codes


def read_event_table(path: str | Path, time_zone: str = DEFAULT_TIME_ZONE,
                     progress: Progress | None = None) -> EventTable:
    """Read an attribution event table from CSV or Parquet, chosen by the file extension.

    Columns: ``customer_id, timestamp, kind, channel, value`` and optionally ``event`` and
    ``identified``. Timestamps are ISO dates or datetimes (dates and naive times in
    ``time_zone``). A touch's ``value`` may be empty. Raises InvalidArgument naming the row
    (1 = first data row) and column of every bad cell, up to 20 of them.
    """
    import duckdb
    import pyarrow.compute as pc

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise InvalidArgument(
            f"{path}: unsupported file type {path.suffix or '(none)'!r}; "
            "give an event table as .csv or .parquet",
            [FieldViolation("path", "must end in .csv or .parquet")])
    if not path.is_file():
        raise NotFound(f"{path}: no such file")
    check_time_zone(time_zone)
    if progress:
        progress(f"reading {path.name}")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = ?", [time_zone])
        literal = "'" + str(path).replace("'", "''") + "'"
        if suffix == ".csv":
            source = (f"read_csv({literal}, all_varchar = true, header = true, "
                      "delim = ',', quote = '\"', escape = '\"', null_padding = true)")
        else:
            source = f"read_parquet({literal})"
        # Rows are numbered only to name bad ones: numbering every row would make DuckDB
        # hold the whole table in memory, and a plain scan keeps the file's order anyway.
        con.execute(f"CREATE TEMP VIEW raw AS SELECT * FROM {source}")
        con.execute(f"CREATE TEMP VIEW numbered AS SELECT *, row_number() OVER () AS row_no "
                    f"FROM {source}")
        columns = [row[0] for row in con.execute("DESCRIBE raw").fetchall()]
        _check_columns(path, columns)
        event = "event" if "event" in columns else "NULL"
        identified = "try_cast(identified AS BOOLEAN)" if "identified" in columns else \
            "NULL::BOOLEAN"
        parse = f"""SELECT
                {{row_no}},
                nullif(trim(CAST(customer_id AS VARCHAR)), '') AS customer_id,
                nullif(trim(CAST(timestamp AS VARCHAR)), '') AS ts_text,
                CASE WHEN typeof(timestamp) = 'VARCHAR'
                     THEN try_cast(trim(CAST(timestamp AS VARCHAR)) AS TIMESTAMPTZ)
                     ELSE try_cast(timestamp AS TIMESTAMPTZ) END AS ts,
                lower(trim(CAST(kind AS VARCHAR))) AS kind,
                nullif(trim(CAST(kind AS VARCHAR)), '') AS kind_text,
                nullif(trim(CAST(channel AS VARCHAR)), '') AS channel,
                nullif(trim(CAST(value AS VARCHAR)), '') AS value_text,
                try_cast(nullif(trim(CAST(value AS VARCHAR)), '') AS DOUBLE) AS value,
                nullif(trim(CAST({event} AS VARCHAR)), '') AS event,
                {identified} AS identified
            FROM {{source}}"""
        con.execute("CREATE TEMP VIEW parsed AS " + parse.format(row_no="0 AS row_no",
                                                                  source="raw"))
        con.execute("CREATE TEMP VIEW parsed_numbered AS "
                    + parse.format(row_no="row_no", source="numbered"))
        problems = """SELECT *, list_filter([
                CASE WHEN customer_id IS NULL THEN ['customer_id', 'must not be empty'] END,
                CASE WHEN ts_text IS NULL
                       THEN ['timestamp', 'must not be empty; give an ISO date or datetime']
                     WHEN ts IS NULL OR NOT isfinite(ts)
                       THEN ['timestamp', '''' || ts_text || ''' is not an ISO date or '
                             || 'datetime (e.g. 2025-03-01 or 2025-03-01T14:30:00Z)'] END,
                CASE WHEN kind IS NULL OR kind NOT IN ('touch', 'conversion')
                     THEN ['kind', '''' || coalesce(kind_text, '') || ''' is not a kind; '
                           || 'use ''touch'' or ''conversion'''] END,
                CASE WHEN channel IS NULL THEN ['channel', 'must not be empty'] END,
                CASE WHEN value_text IS NOT NULL AND lower(value_text) = 'nan'
                          AND kind = 'conversion'
                       THEN ['value', 'a conversion needs its revenue as a number '
                             || '(0 if unknown)']
                     WHEN value_text IS NOT NULL AND lower(value_text) = 'nan' THEN NULL
                     WHEN value_text IS NOT NULL AND value IS NULL
                       THEN ['value', '''' || value_text || ''' is not a number']
                     WHEN value IS NOT NULL AND NOT isfinite(value)
                       THEN ['value', value_text || ' is not a finite number']
                     WHEN value_text IS NULL AND kind = 'conversion'
                       THEN ['value', 'a conversion needs its revenue as a number '
                             || '(0 if unknown)'] END
            ], lambda x: x IS NOT NULL) AS found FROM {parsed}"""
        # One scan of the file in the common case: the rows with a flag for bad ones; only
        # when one is bad, a second scan numbers the rows to name them.
        con.execute("CREATE TEMP VIEW problems AS " + problems.format(parsed="parsed"))
        arrow = con.sql("""
            SELECT customer_id, epoch_us(ts) AS time, kind = 'conversion' AS conversion,
                   channel,
                   CASE WHEN kind = 'conversion' OR isnan(coalesce(value, 0)) = false
                        THEN coalesce(value, 0) ELSE 0 END AS value,
                   event, identified, len(found) > 0 AS bad
            FROM problems""").to_arrow_table()
        if pc.any(arrow.column("bad")).as_py():
            con.execute("CREATE TEMP VIEW numbered_problems AS "
                        + problems.format(parsed="parsed_numbered"))
            found, bad_rows = con.execute(
                "SELECT sum(len(found)), count(*) FROM numbered_problems WHERE len(found) > 0"
            ).fetchall()[0]
            bad = con.execute("SELECT row_no, found FROM numbered_problems "
                              f"WHERE len(found) > 0 ORDER BY row_no LIMIT {_MAX_REPORTED}"
                              ).fetchall()
            _raise_problems(path, suffix == ".csv", bad, int(found), int(bad_rows))
    finally:
        con.close()
    table = EventTable.from_arrow(arrow)
    if progress:
        progress(f"{len(table):,} events, {len(table.customers):,} customers, "
                 f"{len(table.channels):,} channels")
    return table


def _check_columns(path: Path, columns: list[str]) -> None:
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise InvalidArgument(
            f"{path}: missing column(s) {', '.join(missing)}; an attribution event table "
            f"has columns {', '.join(REQUIRED_COLUMNS)} and optionally "
            f"{', '.join(OPTIONAL_COLUMNS)}",
            [FieldViolation(name, "required column is missing") for name in missing])


def _raise_problems(path: Path, is_csv: bool, bad: list[tuple[int, list[list[str]]]],
                    problems: int, bad_rows: int) -> None:
    violations = []
    for row_no, found in bad:
        where = f"row {row_no} (line {row_no + 1})" if is_csv else f"row {row_no}"
        violations.extend(FieldViolation(f"{where}, column {column}", description)
                          for column, description in found)
    first = violations[0]
    more = f" (and {problems - 1} more problem(s) in {bad_rows} row(s))" \
        if problems > 1 else ""
    raise InvalidArgument(f"{path}: {first.field}: {first.description}{more}",
                          violations[:_MAX_REPORTED])

"""The per-customer RFM summary of a transaction table, built in DuckDB (columnar: no Python
object per transaction; a million transactions take about a second).

A transaction table has ``customer_id``, ``timestamp`` (an ISO date or datetime) and
``amount``. Purchases are counted by day, as Fader, Hardie & Lee do for CDNOW: a customer's
transactions on one calendar day (the date as written, whatever its time or offset) are one
purchase whose value is their sum. For a calibration period ending on ``calibration_end``
(inclusive) each customer whose first purchase falls in it has:

* ``frequency`` x: purchase days after the first, up to ``calibration_end``;
* ``recency`` t_x: time from the first purchase to the last one in the period;
* ``age`` T: time from the first purchase to ``calibration_end``;
* ``monetary``: the mean value of the x repeat purchases (0 when x = 0);
* ``holdout_frequency`` / ``holdout_value``: purchase days, and their value, after
  ``calibration_end`` up to ``holdout_end``.

Times are in days or weeks (``unit``); a week is 7 days.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from omnicdp.core.errors import FieldViolation, InvalidArgument

COLUMNS = ("customer_id", "timestamp", "amount")
UNITS = {"day": 1, "week": 7}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RFMSummary:
    customer_id: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    age: np.ndarray
    monetary: np.ndarray
    holdout_frequency: np.ndarray
    holdout_value: np.ndarray
    unit: str
    first_date: date
    calibration_end: date
    holdout_end: date

    @property
    def customers(self) -> int:
        return int(self.customer_id.size)

    @property
    def holdout_length(self) -> float:
        """The holdout period's length in ``unit`` (0 when there is none)."""
        return (self.holdout_end - self.calibration_end).days / UNITS[self.unit]


class TransactionDays:
    """A transaction table read once and reduced to purchase days, in an in-memory DuckDB
    database, from which summaries for any calibration split are computed."""

    def __init__(self, source: Path | pa.Table, progress: Progress | None = None) -> None:
        report = progress or (lambda _message: None)
        self._con = duckdb.connect()
        self._con.execute("SET TimeZone = 'UTC'")  # timestamptz columns read as UTC dates
        name = _register(self._con, source)
        _check_columns(self._con, name, source)
        report(f"reading {source if isinstance(source, Path) else 'the transactions'}")
        self._con.execute(f"""
            CREATE TEMP TABLE tx AS SELECT
              NULLIF(TRIM(CAST(customer_id AS VARCHAR)), '') AS cid,
              CAST("timestamp" AS VARCHAR) AS raw_ts,
              TRY_CAST(LEFT(TRIM(CAST("timestamp" AS VARCHAR)), 10) AS DATE) AS d,
              CAST(amount AS VARCHAR) AS raw_amount,
              TRY_CAST(amount AS DOUBLE) AS amount
            FROM {name}""")
        self.transactions = _check_values(self._con)
        self._con.execute("""
            CREATE TEMP TABLE days AS
            SELECT cid, d, SUM(amount) AS amount FROM tx GROUP BY cid, d""")
        self._con.execute("DROP TABLE tx")
        first, last, count = self._con.execute(
            "SELECT MIN(d), MAX(d), COUNT(*) FROM days").fetchone()
        self.first_date: date = first
        self.last_date: date = last
        self.purchase_days: int = int(count)
        report(f"{self.transactions:,} transactions, {self.purchase_days:,} purchase days, "
               f"{first} to {last}")

    def summary(self, calibration_end: date | None = None, holdout_end: date | None = None,
                unit: str = "week") -> RFMSummary:
        """The summary of the period up to ``calibration_end`` (default: the last purchase
        day, leaving no holdout), with the holdout up to ``holdout_end`` (default: the last
        purchase day)."""
        if unit not in UNITS:
            raise InvalidArgument(f"time unit must be one of {', '.join(UNITS)}, not {unit!r}",
                                  [FieldViolation("time_unit", "unknown unit")])
        end = calibration_end or self.last_date
        holdout_end = max(holdout_end or self.last_date, end)
        if end < self.first_date:
            raise InvalidArgument(
                f"calibration end {end} is before the first purchase ({self.first_date}); "
                f"give a date from {self.first_date} to {self.last_date}",
                [FieldViolation("calibration_end", "before every purchase")])
        columns = self._con.execute("""
            WITH firsts AS (SELECT cid, MIN(d) AS first_d FROM days GROUP BY cid)
            SELECT cid,
              COUNT(*) FILTER (WHERE d <= $end) - 1 AS x,
              DATEDIFF('day', first_d, MAX(d) FILTER (WHERE d <= $end)) AS recency_days,
              DATEDIFF('day', first_d, $end) AS age_days,
              COALESCE(SUM(amount) FILTER (WHERE d <= $end AND d > first_d), 0) AS repeat_value,
              COUNT(*) FILTER (WHERE d > $end AND d <= $holdout_end) AS holdout_x,
              COALESCE(SUM(amount) FILTER (WHERE d > $end AND d <= $holdout_end), 0)
                AS holdout_value
            FROM days JOIN firsts USING (cid)
            WHERE first_d <= $end
            GROUP BY cid, first_d ORDER BY cid""",
            {"end": end, "holdout_end": holdout_end}).fetchnumpy()
        days_per_unit = UNITS[unit]
        x = np.asarray(columns["x"], dtype=np.int64)
        repeat_value = np.asarray(columns["repeat_value"], dtype=float)
        monetary = np.divide(repeat_value, x, out=np.zeros_like(repeat_value), where=x > 0)
        return RFMSummary(
            customer_id=np.asarray(columns["cid"], dtype=object),
            frequency=x,
            recency=np.asarray(columns["recency_days"], dtype=float) / days_per_unit,
            age=np.asarray(columns["age_days"], dtype=float) / days_per_unit,
            monetary=monetary,
            holdout_frequency=np.asarray(columns["holdout_x"], dtype=np.int64),
            holdout_value=np.asarray(columns["holdout_value"], dtype=float),
            unit=unit, first_date=self.first_date, calibration_end=end,
            holdout_end=holdout_end)

    def default_split(self, share: float = 2 / 3) -> date:
        """The calibration end leaving the last third of the table's days as holdout."""
        span = (self.last_date - self.first_date).days
        return self.first_date + timedelta(days=int(span * share))

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> TransactionDays:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _register(con: duckdb.DuckDBPyConnection, source: Path | pa.Table) -> str:
    if isinstance(source, pa.Table):
        con.register("source_table", source)
        return "source_table"
    path = Path(source)
    if not path.exists():
        raise InvalidArgument(f"transaction table {path} does not exist",
                              [FieldViolation("TRANSACTIONS", "no such file")])
    suffix = path.suffix.lower()
    quoted = str(path).replace("'", "''")
    if suffix == ".csv":
        # All text: the values are checked below, with the bad ones named. The dialect is
        # the contract's (comma, double quotes), not sniffed; not strict, so that a file
        # whose header and rows end lines differently (\n and \r\n, as tools mixing
        # platforms write them) still reads.
        reader = (f"read_csv('{quoted}', header = true, all_varchar = true, delim = ',', "
                  "quote = '\"', escape = '\"', strict_mode = false)")
    elif suffix == ".parquet":
        reader = f"read_parquet('{quoted}')"
    else:
        raise InvalidArgument(f"transaction table {path} must end in .csv or .parquet",
                              [FieldViolation("TRANSACTIONS", "unknown format")])
    try:
        con.execute(f"CREATE TEMP VIEW source_table AS SELECT * FROM {reader}")
    except duckdb.Error as error:
        raise InvalidArgument(f"cannot read {path}: {error}",
                              [FieldViolation("TRANSACTIONS", "unreadable")]) from error
    return "source_table"


def _check_columns(con: duckdb.DuckDBPyConnection, name: str, source: Path | pa.Table) -> None:
    present = [row[0] for row in con.execute(f"DESCRIBE {name}").fetchall()]
    missing = [column for column in COLUMNS if column not in present]
    if missing:
        where = source if isinstance(source, Path) else "the transaction table"
        raise InvalidArgument(
            f"{where} lacks column(s) {', '.join(missing)}: a transaction table has columns "
            f"{', '.join(COLUMNS)} (found: {', '.join(present) or 'none'})",
            [FieldViolation(column, "missing column") for column in missing])


def _check_values(con: duckdb.DuckDBPyConnection) -> int:
    """The number of transactions, once every row is known to be usable."""
    (rows, no_id, bad_ts, first_bad_ts, bad_amount,
     first_bad_amount) = con.execute("""
        SELECT COUNT(*),
          COUNT(*) FILTER (WHERE cid IS NULL),
          COUNT(*) FILTER (WHERE d IS NULL),
          FIRST(raw_ts) FILTER (WHERE d IS NULL),
          COUNT(*) FILTER (WHERE amount IS NULL OR NOT isfinite(amount)),
          FIRST(raw_amount) FILTER (WHERE amount IS NULL OR NOT isfinite(amount))
        FROM tx""").fetchone()
    if rows == 0:
        raise InvalidArgument("the transaction table is empty: LTV needs customers' purchases "
                              "(customer_id, timestamp, amount)",
                              [FieldViolation("TRANSACTIONS", "no rows")])
    violations = []
    if no_id:
        violations.append(FieldViolation("customer_id", f"{no_id} row(s) without a customer id"))
    if bad_ts:
        violations.append(FieldViolation(
            "timestamp", f"{bad_ts} row(s) not an ISO date or datetime (YYYY-MM-DD...), "
                         f"e.g. {first_bad_ts!r}"))
    if bad_amount:
        violations.append(FieldViolation(
            "amount", f"{bad_amount} row(s) not a finite number, e.g. {first_bad_amount!r}"))
    if violations:
        raise InvalidArgument(f"{sum((no_id, bad_ts, bad_amount))} of {rows} transaction "
                              "value(s) cannot be read; fix or drop those rows", violations)
    return int(rows)

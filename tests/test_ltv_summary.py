"""The RFM summary of a transaction table, the errors a user can act on, and `cdp ltv fit`
without a calibration end."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from omnicdp.cli.main import main
from omnicdp.core.errors import InvalidArgument
from omnicdp.services.attribution.ltv import simulate, transactions
from omnicdp.services.attribution.ltv.bgnbd import BGNBD
from omnicdp.services.attribution.ltv.gamma_gamma import GammaGamma
from omnicdp.services.attribution.ltv.summary import TransactionDays

HAND = pa.table({
    "customer_id": ["ann", "ann", "ann", "ann", "ann", "bob", "cat", "cat"],
    "timestamp": ["2024-01-01", "2024-01-01T18:00:00", "2024-01-08 09:30",
                  "2024-01-15T23:30:00+03:00", "2024-01-20", "2024-01-10", "2024-01-16",
                  "2024-01-18"],
    "amount": [10.0, 5.0, 20.0, 30.0, 7.5, 12.0, 4.0, 6.0],
})


def _write(table: pa.Table, path: Path) -> Path:
    if path.suffix == ".csv":
        pa_csv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_summary_counts_purchase_days_and_mean_repeat_spend(tmp_path: Path, suffix) -> None:
    with TransactionDays(_write(HAND, tmp_path / f"t{suffix}")) as days:
        assert days.transactions == 8
        summary = days.summary(date(2024, 1, 15), unit="day")
    rows = {c: i for i, c in enumerate(summary.customer_id)}
    assert set(rows) == {"ann", "bob"}  # cat's first purchase is after the calibration
    ann = rows["ann"]
    # Two transactions on 2024-01-01 are one purchase; the +03:00 one is on its own date.
    assert summary.frequency[ann] == 2
    assert summary.recency[ann] == 14 and summary.age[ann] == 14
    assert summary.monetary[ann] == pytest.approx((20.0 + 30.0) / 2)  # the first left out
    assert summary.holdout_frequency[ann] == 1 and summary.holdout_value[ann] == 7.5
    bob = rows["bob"]
    assert (summary.frequency[bob], summary.recency[bob], summary.age[bob],
            summary.monetary[bob]) == (0, 0, 5, 0)
    assert summary.holdout_length == 5  # to the last purchase, 2024-01-20


def test_csv_whose_lines_end_differently_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"customer_id,timestamp,amount\n"
                     b"00004,1997-01-01,29.33\r\n00004,1997-01-18,29.73\r\n")
    with TransactionDays(path) as days:
        summary = days.summary(unit="day")
    assert list(summary.customer_id) == ["00004"]  # leading zeros kept: ids are text
    assert summary.frequency[0] == 1 and summary.monetary[0] == 29.73


def test_summary_in_weeks_divides_days_by_seven() -> None:
    with TransactionDays(HAND) as days:
        summary = days.summary(date(2024, 1, 15), unit="week")
    assert list(summary.age) == [2.0, 5 / 7]
    assert summary.holdout_length == 5 / 7


@pytest.mark.parametrize(("table", "message", "field"), [
    (pa.table({"customer": ["a"], "timestamp": ["2024-01-01"], "amount": [1.0]}),
     "lacks column(s) customer_id", "customer_id"),
    (pa.table({"customer_id": pa.array([], pa.string()), "timestamp": pa.array([], pa.string()),
               "amount": pa.array([], pa.float64())}), "is empty", "TRANSACTIONS"),
    (pa.table({"customer_id": ["a", "b"], "timestamp": ["2024-01-01", "01/02/2024"],
               "amount": [1.0, 2.0]}), "cannot be read", "timestamp"),
    (pa.table({"customer_id": ["a", "b"], "timestamp": ["2024-01-01", "2024-01-02"],
               "amount": ["1.0", "ten"]}), "cannot be read", "amount"),
    (pa.table({"customer_id": ["a", None], "timestamp": ["2024-01-01", "2024-01-02"],
               "amount": [1.0, 2.0]}), "cannot be read", "customer_id"),
])
def test_unusable_tables_are_refused_naming_what_is_wrong(table, message, field) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)) as caught:
        TransactionDays(table)
    assert [v.field for v in caught.value.violations] == [field]
    if field == "timestamp":
        assert "'01/02/2024'" in caught.value.violations[0].description


def test_calibration_end_before_every_purchase_is_refused() -> None:
    with TransactionDays(HAND) as days, pytest.raises(InvalidArgument, match="before the first"):
        days.summary(date(2023, 12, 31))


def test_cli_errors_go_to_stderr_with_a_nonzero_exit(tmp_path: Path, capsys) -> None:
    bad = _write(pa.table({"id": ["a"], "timestamp": ["2024-01-01"], "amount": [1.0]}),
                 tmp_path / "bad.csv")
    assert main(["ltv", "fit", str(bad), "--json", "--no-register"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "lacks column(s) customer_id" in captured.err
    assert main(["ltv", "fit", str(tmp_path / "t.xlsx"), "--no-register"]) == 2
    assert "does not exist" in capsys.readouterr().err
    few = _write(HAND, tmp_path / "few.csv")
    assert main(["ltv", "fit", str(few), "--no-register"]) == 2
    err = capsys.readouterr().err
    assert "only 2 customer(s) bought again" in err and "at least 20" in err


def _simulated(tmp_path: Path) -> Path:
    table = simulate.transaction_table(
        20_000, BGNBD(r=0.5, alpha=20.0, a=0.8, b=3.0), GammaGamma(p=5.0, q=4.0, gamma=60.0),
        date(2024, 1, 1), 90, date(2024, 12, 31), seed=4)
    return _write(table, tmp_path / "simulated.parquet")


def test_fit_without_calibration_end_fits_everything_and_validates_on_a_split(
        tmp_path: Path, capsys) -> None:
    source = _simulated(tmp_path)
    assert main(["ltv", "fit", str(source), "--time-unit", "day", "--json",
                 "--no-register"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] is None
    assert result["calibration"]["end"] == "2024-12-31"
    assert result["bgnbd"]["customers"] == 20_000
    validation = result["validation"]
    # Two thirds of the days from 2024-01-01 to the last purchase (2024-12-31): 243 days.
    assert validation["calibration_end"] == "2024-08-31"
    assert "refitted on the first two thirds" in result["validation_note"]
    # Drawn from the model itself, the holdout is predicted within a few percent.
    assert abs(validation["purchases_error"]) < 0.05


def test_human_readable_fit_prints_tables_and_progress_on_stderr(tmp_path: Path,
                                                                 capsys) -> None:
    assert main(["ltv", "fit", str(_simulated(tmp_path)), "--calibration-end", "2024-09-30",
                 "--time-unit", "day", "--no-register"]) == 0
    captured = capsys.readouterr()
    assert "BG/NBD on 20,000 customers" in captured.out
    assert "Holdout after 2024-09-30 to 2024-12-31" in captured.out
    assert "fitting BG/NBD and Gamma-Gamma" in captured.err


def test_purchases_from_stored_events_are_dated_in_the_business_time_zone() -> None:
    def event(name: str, when: datetime, revenue: object) -> SimpleNamespace:
        return SimpleNamespace(customer_id="c1", timestamp=when, event=name,
                               properties={"revenue": revenue})

    table = transactions.from_stored_events([
        event("Order Completed", datetime(2024, 3, 1, 22, 30, tzinfo=UTC), 120.5),
        event("Email Opened", datetime(2024, 3, 1, 10, 0, tzinfo=UTC), None),
        event("order completed", datetime(2024, 3, 5, 9, 0, tzinfo=UTC), None),
    ], transactions.time_zone("Europe/Moscow"))
    assert table.to_pylist() == [
        {"customer_id": "c1", "timestamp": "2024-03-02", "amount": 120.5},  # 01:30 in Moscow
        {"customer_id": "c1", "timestamp": "2024-03-05", "amount": 0.0},
    ]
    with pytest.raises(InvalidArgument, match="unknown time zone"):
        transactions.time_zone("Mars/Olympus")


def test_calibration_end_after_the_last_purchase_fits_without_a_holdout(tmp_path: Path,
                                                                       capsys) -> None:
    assert main(["ltv", "fit", str(_simulated(tmp_path)), "--calibration-end", "2025-03-31",
                 "--time-unit", "day", "--json", "--no-register"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["validation"] is None
    assert "no purchases after the calibration end 2025-03-31" in result["validation_note"]
    assert result["calibration"]["end"] == "2025-03-31"

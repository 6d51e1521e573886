"""Per-customer scores from a fitted model: expected purchases over a horizon, P(alive),
expected mean spend and the discounted expected value (CLV), as of a date."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from omnicdp.core.errors import FieldViolation, InvalidArgument
from omnicdp.services.attribution.ltv import clv
from omnicdp.services.attribution.ltv.bgnbd import BGNBD
from omnicdp.services.attribution.ltv.gamma_gamma import GammaGamma
from omnicdp.services.attribution.ltv.summary import UNITS, RFMSummary

# What a score table holds, one row per customer.
SCORE_COLUMNS = ("customer_id", "frequency", "recency", "age", "monetary_value", "p_alive",
                 "expected_purchases", "expected_spend", "clv")
# The profile's score names (SetScores) and the score table's columns they come from.
PROFILE_SCORES = {"ltv_clv": "clv", "p_alive": "p_alive",
                  "expected_purchases": "expected_purchases", "expected_spend": "expected_spend"}
# Customers per SetScores call (the profile service takes at most 1,000).
PROFILE_BATCH = 1000


@dataclass(frozen=True)
class LtvModel:
    """The two fitted models and the time unit their parameters are in."""

    bgnbd: BGNBD
    gamma_gamma: GammaGamma
    time_unit: str
    version: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"bgnbd": self.bgnbd.to_dict(), "gamma_gamma": self.gamma_gamma.to_dict(),
                "time_unit": self.time_unit}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: Path, version: str = "") -> LtvModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("time_unit") not in UNITS:
            raise InvalidArgument(f"{path} is not an LTV model (no known time_unit)")
        return cls(BGNBD(**data["bgnbd"]), GammaGamma(**data["gamma_gamma"]),
                   data["time_unit"], version)


@dataclass(frozen=True)
class Horizon:
    months: int = clv.DEFAULT_MONTHS
    monthly_discount: float = clv.DEFAULT_MONTHLY_DISCOUNT

    def __post_init__(self) -> None:
        if not 1 <= self.months <= 1200:
            raise InvalidArgument(f"the horizon must be 1 to 1200 months, not {self.months}",
                                  [FieldViolation("months", "out of range")])
        if not 0 <= self.monthly_discount < 1:
            raise InvalidArgument("the monthly discount rate must be in [0, 1), e.g. 0.01, "
                                  f"not {self.monthly_discount}",
                                  [FieldViolation("discount", "out of range")])


def score(model: LtvModel, summary: RFMSummary, horizon: Horizon | None = None) -> pa.Table:
    """One row per customer of ``summary`` (computed in ``model.time_unit`` up to the scoring
    date): P(alive) now, expected purchases and discounted value over the horizon."""
    horizon = horizon or Horizon()
    if summary.unit != model.time_unit:
        raise ValueError(f"summary in {summary.unit}s, model in {model.time_unit}s")
    x, t_x, age = summary.frequency, summary.recency, summary.age
    spend = model.gamma_gamma.expected_spend(x, summary.monetary)
    purchases = model.bgnbd.expected_purchases(
        clv.months_to_units(horizon.months, model.time_unit), x, t_x, age)
    value = clv.customer_value(model.bgnbd, spend, x, t_x, age, model.time_unit,
                               horizon.months, horizon.monthly_discount)
    return pa.table({
        "customer_id": pa.array(summary.customer_id, pa.string()),
        "frequency": x, "recency": t_x, "age": age, "monetary_value": summary.monetary,
        "p_alive": model.bgnbd.p_alive(x, t_x, age), "expected_purchases": purchases,
        "expected_spend": spend, "clv": value,
    })


def write_scores(scores: pa.Table, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        pq.write_table(scores, path)
    elif suffix == ".csv":
        pa_csv.write_csv(scores, path)
    else:
        raise InvalidArgument(f"--out {path} must end in .csv or .parquet",
                              [FieldViolation("out", "unknown format")])


def profile_score_batches(scores: pa.Table, batch_size: int = PROFILE_BATCH
                          ) -> Iterator[list[tuple[str, dict[str, float]]]]:
    """The score table as pages of (customer id, {profile score name: value}), at most
    ``batch_size`` customers each; a value that is not finite is left out."""
    columns = {name: scores.column(column).to_pylist()
               for name, column in PROFILE_SCORES.items()}
    customers = scores.column("customer_id").to_pylist()
    for start in range(0, len(customers), batch_size):
        yield [(customer, {name: float(values[i]) for name, values in columns.items()
                           if values[i] is not None and math.isfinite(values[i])})
               for i, customer in enumerate(customers[start:start + batch_size], start)]

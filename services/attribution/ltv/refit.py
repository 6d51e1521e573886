"""A refit, end to end: fit a transaction table, log and register the model (when given a
tracking URI), and score every customer with it as of the table's last day. What
`cdp ltv refit` and `cdp demo` run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import pyarrow as pa

from omnicdp.services.attribution.ltv.fit import LtvFit, fit_transactions
from omnicdp.services.attribution.ltv.registry import log_fit, model_of
from omnicdp.services.attribution.ltv.scoring import Horizon, LtvModel, score
from omnicdp.services.attribution.ltv.summary import TransactionDays


@dataclass(frozen=True)
class Refit:
    fit: LtvFit
    model: LtvModel  # with its registered version, "" when not registered
    run_id: str
    scores: pa.Table
    as_of: date


def refit(transactions: Path | pa.Table, tracking_uri: str = "",
          calibration_end: date | None = None, unit: str = "week",
          horizon: Horizon | None = None, as_of: date | None = None,
          source: str = "", progress: Callable[[str], None] | None = None) -> Refit:
    report = progress or (lambda _message: None)
    fit = fit_transactions(transactions, calibration_end, unit, progress=report)
    model, run_id = model_of(fit), ""
    if tracking_uri:
        report("logging the fit to MLflow and registering the model")
        version, run_id = log_fit(fit, tracking_uri, source=source)
        model = replace(model, version=version)
    with TransactionDays(transactions) as days:
        summary = days.summary(as_of, unit=model.time_unit)
    report(f"scoring {summary.customers:,} customers as of {summary.calibration_end}")
    return Refit(fit, model, run_id, score(model, summary, horizon), summary.calibration_end)

"""The whole LTV fit of a transaction table, as `cdp ltv fit` reports it.

With a calibration end, both models are fitted on the calibration period and validated on
the holdout after it (up to the last purchase). Without one, they are fitted on the whole
table (what scoring should use), and validated by fitting the same models again on the
first two thirds of the table's days and predicting the last third.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

from omnicdp.core.errors import FailedPrecondition
from omnicdp.services.attribution.ltv import bgnbd, gamma_gamma
from omnicdp.services.attribution.ltv.summary import RFMSummary, TransactionDays
from omnicdp.services.attribution.ltv.validation import Validation, validate

# Gamma-Gamma's three parameters need spread in repeat customers' mean spend to be
# identified; fewer than this many repeat customers make the fit meaningless.
MIN_REPEAT_CUSTOMERS = 20

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ModelFits:
    bgnbd: bgnbd.BGNBDFit
    gamma_gamma: gamma_gamma.GammaGammaFit
    seconds: float


@dataclass
class LtvFit:
    fits: ModelFits
    summary: RFMSummary
    transactions: int
    validation: Validation | None
    validation_note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def bgnbd(self) -> bgnbd.BGNBD:
        return self.fits.bgnbd.model

    @property
    def gamma_gamma(self) -> gamma_gamma.GammaGamma:
        return self.fits.gamma_gamma.model

    def warnings(self) -> list[str]:
        """What a user should know before trusting the fit."""
        notes = []
        purchases, spend = self.fits.bgnbd, self.fits.gamma_gamma
        if {"a", "b"} & set(purchases.at_bound):
            model = purchases.model
            notes.append(
                f"BG/NBD's drop-out parameters reached the fit's bound (a={model.a:.3g}, "
                f"b={model.b:.3g}): these customers show almost no drop-out (mean drop-out "
                f"probability after a purchase {model.a / (model.a + model.b):.2g}), so "
                "P(alive) is near 1 for everyone; a longer history would tell more")
        if {"r", "alpha"} & set(purchases.at_bound):
            notes.append("BG/NBD's purchase-rate parameters reached the fit's bound "
                         f"({', '.join(purchases.at_bound)}): the rates are degenerate")
        if spend.at_bound:
            notes.append(
                f"Gamma-Gamma's {', '.join(spend.at_bound)} reached the fit's bound: q and "
                "gamma growing together mean the customers' mean spends differ no more than "
                "their purchases' spread explains, so every customer's expected spend is "
                "close to the population's; more repeat customers would tell more")
        if not np.isfinite(spend.model.mean_spend()):
            notes.append(f"Gamma-Gamma's q = {spend.model.q:.3g} <= 1: the population has no "
                         "finite mean spend; customers' expected spend leans on their own")
        return notes

    def to_dict(self) -> dict[str, object]:
        """The report, JSON-ready: a figure that is not finite (a standard error on a
        bound, an error ratio without purchases) is None."""
        return _json_ready(self._report())

    def _report(self) -> dict[str, object]:
        summary = self.summary
        return {
            "bgnbd": {**self.bgnbd.to_dict(),
                      "log_likelihood": self.fits.bgnbd.log_likelihood,
                      "customers": self.fits.bgnbd.customers,
                      "standard_errors": self.fits.bgnbd.standard_errors},
            "gamma_gamma": {**self.gamma_gamma.to_dict(),
                            "log_likelihood": self.fits.gamma_gamma.log_likelihood,
                            "customers": self.fits.gamma_gamma.customers,
                            "standard_errors": self.fits.gamma_gamma.standard_errors,
                            "mean_spend": self.gamma_gamma.mean_spend()},
            "time_unit": summary.unit,
            "calibration": {"start": summary.first_date.isoformat(),
                            "end": summary.calibration_end.isoformat(),
                            "customers": summary.customers,
                            "repeat_customers": int((summary.frequency > 0).sum()),
                            "transactions": self.transactions},
            "warnings": self.warnings(),
            "validation": self.validation.to_dict() if self.validation else None,
            "validation_note": self.validation_note,
            "seconds": {key: round(value, 3) for key, value in self.seconds.items()},
        }


def fit_summary(summary: RFMSummary) -> ModelFits:
    """BG/NBD on every customer of ``summary``, Gamma-Gamma on those with repeat purchases of
    positive mean value."""
    started = time.perf_counter()
    repeat = (summary.frequency > 0) & (summary.monetary > 0)
    if int(repeat.sum()) < MIN_REPEAT_CUSTOMERS:
        raise FailedPrecondition(
            f"only {int(repeat.sum())} customer(s) bought again (on another day) within the "
            f"calibration period ending {summary.calibration_end}; the spend model needs at "
            f"least {MIN_REPEAT_CUSTOMERS}: give more transactions or a later "
            "--calibration-end", reason="TOO_FEW_REPEAT_CUSTOMERS")
    purchases = bgnbd.fit(*_compressed(summary))
    spend = gamma_gamma.fit(summary.frequency[repeat], summary.monetary[repeat])
    return ModelFits(purchases, spend, time.perf_counter() - started)


def _compressed(summary: RFMSummary) -> tuple[np.ndarray, ...]:
    """Customers with the same (x, t_x, T) counted once with a weight: the likelihood is the
    same and, counted in days, many customers share a history."""
    rows = np.stack([summary.frequency.astype(float), summary.recency, summary.age], axis=1)
    unique, counts = np.unique(rows, axis=0, return_counts=True)
    return unique[:, 0], unique[:, 1], unique[:, 2], counts.astype(float)


def fit_transactions(source: Path | pa.Table, calibration_end: date | None = None,
                     unit: str = "week", progress: Progress | None = None) -> LtvFit:
    report = progress or (lambda _message: None)
    started = time.perf_counter()
    with TransactionDays(source, report) as days:
        summary = days.summary(calibration_end, unit=unit)
        seconds = {"summary": time.perf_counter() - started}
        report(f"fitting BG/NBD and Gamma-Gamma on {summary.customers:,} customers "
               f"(calibration {summary.first_date} to {summary.calibration_end})")
        fits = fit_summary(summary)
        seconds["fit"] = fits.seconds
        validation, note = _validate(days, summary, fits, calibration_end, unit, report)
        transactions = days.transactions
    seconds["total"] = time.perf_counter() - started
    report(f"done in {seconds['total']:.1f} s")
    return LtvFit(fits, summary, transactions, validation, note, seconds)


def _validate(days: TransactionDays, summary: RFMSummary, fits: ModelFits,
              calibration_end: date | None, unit: str,
              report: Progress) -> tuple[Validation | None, str]:
    if calibration_end is not None:
        if summary.holdout_length <= 0:
            return None, (f"no purchases after the calibration end {calibration_end}: "
                          "nothing to validate on")
        report(f"validating on the holdout after {summary.calibration_end} to "
               f"{summary.holdout_end}")
        return validate(fits.bgnbd.model, fits.gamma_gamma.model, summary), (
            "the reported models, fitted on the calibration period, predicting the holdout")
    split = days.default_split()
    report(f"validating: the same models fitted up to {split}, predicting the last third")
    split_summary = days.summary(split, unit=unit)
    try:
        split_fits = fit_summary(split_summary)
    except FailedPrecondition as error:
        return None, f"no validation: {error}"
    return validate(split_fits.bgnbd.model, split_fits.gamma_gamma.model, split_summary), (
        f"models refitted on the first two thirds (to {split}) predicting the last third; "
        "the reported models are fitted on the whole table")


def _json_ready(value: object) -> object:
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value

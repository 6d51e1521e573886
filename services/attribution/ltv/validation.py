"""Calibration/holdout validation: what a model fitted on the calibration period predicts for
the holdout period against what the customers did (Fader, Hardie & Lee 2005, figure 4: mean
holdout purchases by calibration frequency)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from omnicdp.services.attribution.ltv.bgnbd import BGNBD
from omnicdp.services.attribution.ltv.gamma_gamma import GammaGamma
from omnicdp.services.attribution.ltv.summary import RFMSummary

# Calibration frequencies 0..6 each, and 7 or more together (as in the paper's figure).
TOP_BUCKET = 7


@dataclass(frozen=True)
class FrequencyBucket:
    frequency: str  # "0".."6", "7+"
    customers: int
    actual: float  # mean holdout purchases of the bucket's customers
    predicted: float


@dataclass(frozen=True)
class Validation:
    calibration_end: str
    holdout_end: str
    holdout_length: float
    customers: int
    actual_purchases: int
    predicted_purchases: float
    mae: float  # mean absolute error of each customer's holdout purchases
    rmse: float
    actual_value: float
    predicted_value: float
    by_frequency: list[FrequencyBucket]

    @property
    def purchases_error(self) -> float:
        """The relative error of the predicted total of holdout purchases."""
        if not self.actual_purchases:
            return float("nan")
        return self.predicted_purchases / self.actual_purchases - 1

    def to_dict(self) -> dict[str, object]:
        result = asdict(self)
        result["purchases_error"] = self.purchases_error
        return result


def validate(bgnbd: BGNBD, gamma_gamma: GammaGamma, summary: RFMSummary) -> Validation:
    """Compare predictions for ``summary``'s holdout with what happened in it."""
    x, t_x, age = summary.frequency, summary.recency, summary.age
    predicted = bgnbd.expected_purchases(summary.holdout_length, x, t_x, age)
    actual = summary.holdout_frequency.astype(float)
    spend = gamma_gamma.expected_spend(x, summary.monetary)
    buckets = np.minimum(x, TOP_BUCKET)
    by_frequency = []
    for bucket in range(TOP_BUCKET + 1):
        members = buckets == bucket
        if not members.any():
            continue
        by_frequency.append(FrequencyBucket(
            frequency=f"{bucket}+" if bucket == TOP_BUCKET else str(bucket),
            customers=int(members.sum()), actual=float(actual[members].mean()),
            predicted=float(predicted[members].mean())))
    error = predicted - actual
    return Validation(
        calibration_end=summary.calibration_end.isoformat(),
        holdout_end=summary.holdout_end.isoformat(),
        holdout_length=summary.holdout_length, customers=summary.customers,
        actual_purchases=int(actual.sum()), predicted_purchases=float(predicted.sum()),
        mae=float(np.abs(error).mean()), rmse=float(np.sqrt((error ** 2).mean())),
        actual_value=float(summary.holdout_value.sum()),
        predicted_value=float((predicted * spend).sum()), by_frequency=by_frequency)

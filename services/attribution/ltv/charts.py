"""The validation chart logged with every fit: mean holdout purchases by calibration
frequency, actual against predicted (Fader, Hardie & Lee 2005, figure 4)."""

from __future__ import annotations

import numpy as np

from omnicdp.core.charts import png, pyplot
from omnicdp.services.attribution.ltv.validation import Validation


def holdout_by_frequency(validation: Validation, unit: str) -> bytes:
    plt = pyplot()
    buckets = validation.by_frequency
    positions = np.arange(len(buckets))
    figure, axes = plt.subplots(figsize=(8, 4.5))
    axes.bar(positions - 0.2, [b.actual for b in buckets], 0.4, label="actual",
             color="#3b7dd8")
    axes.bar(positions + 0.2, [b.predicted for b in buckets], 0.4, label="BG/NBD predicted",
             color="#d8913b")
    axes.set_xticks(positions, [b.frequency for b in buckets])
    axes.set_xlabel("repeat purchases in the calibration period")
    axes.set_ylabel(f"mean purchases in the holdout ({validation.holdout_length:g} {unit}s)")
    axes.set_title(f"Holdout {validation.calibration_end} to {validation.holdout_end}: "
                   f"{validation.actual_purchases} purchases, "
                   f"{validation.predicted_purchases:.0f} predicted")
    axes.legend()
    return png(figure)

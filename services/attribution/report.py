"""An attribution report: credit per channel, split by where the conversion happened, the
customer's segment at the touch and the kind of touch; the value the service returns and
the CLI prints. No numpy, no gRPC, so callers of the service can import it cheaply."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DIRECT = "(direct)"
MODELS: tuple[str, ...] = (
    "first_touch",
    "last_touch",
    "linear",
    "time_decay",
    "position_based",
    "markov",
    "shapley",
    "shapley_simplified",
)
# Where a conversion happened: a store (the configured offline channels) or online.
PLACES: tuple[str, ...] = ("online", "store")
# The customer's segment when touched (at the conversion for direct ones).
SEGMENTS: tuple[str, ...] = ("new_contact", "never_bought", "active_buyer")
# Click-through, view-through, or no touch at all (direct).
TOUCH_TYPES: tuple[str, ...] = ("click", "view", "none")
DIMENSIONS: tuple[str, ...] = ("place", "segment", "touch")


@dataclass(frozen=True)
class CreditSplit:
    """The part of a channel's credit from one place, segment and touch type."""

    place: str
    segment: str
    touch: str
    conversions: float
    revenue: float

    def to_dict(self) -> dict[str, Any]:
        return {"place": self.place, "segment": self.segment, "touch": self.touch,
                "conversions": round(self.conversions, 4), "revenue": round(self.revenue, 2)}


@dataclass(frozen=True)
class ChannelCredit:
    """Conversions (fractional) and revenue attributed to one channel, and its splits
    (which add up to it)."""

    conversions: float
    revenue: float
    splits: tuple[CreditSplit, ...] = ()

    def by(self, dimension: str) -> dict[str, tuple[float, float]]:
        """Conversions and revenue per value of ``dimension`` (``place``, ``segment`` or
        ``touch``), every value of it listed."""
        names = {"place": PLACES, "segment": SEGMENTS, "touch": TOUCH_TYPES}[dimension]
        totals = {name: [0.0, 0.0] for name in names}
        for split in self.splits:
            cell = totals[getattr(split, dimension)]
            cell[0] += split.conversions
            cell[1] += split.revenue
        return {name: (c, r) for name, (c, r) in totals.items()}


@dataclass(frozen=True)
class AttributionReport:
    """Credit per channel, ordered by revenue (highest first), then conversions."""

    model: str
    total_conversions: int
    total_revenue: float
    channels: Mapping[str, ChannelCredit] = field(hash=False)
    # Events the service read to make the report (not part of the CLI's JSON).
    events_read: int = 0
    # How the credit was computed when it matters (Shapley: exact or sampled).
    method: str = ""
    # The MLflow run it was logged to, if it was (not part of the CLI's JSON).
    mlflow_run_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``cdp attribution run --json``: conversions rounded to 4
        decimals, revenue to 2. Beyond PRODUCT.md's keys, each channel has ``by_place``,
        ``by_segment`` and ``by_touch``, and ``splits``: its credit per (place, segment,
        touch) cell, e.g. view-through credit by segment."""
        channels: dict[str, Any] = {}
        for name, credit in self.channels.items():
            row: dict[str, Any] = {"conversions": round(credit.conversions, 4),
                                   "revenue": round(credit.revenue, 2)}
            if credit.splits:
                for dimension in DIMENSIONS:
                    row[f"by_{dimension}"] = {
                        key: {"conversions": round(c, 4), "revenue": round(r, 2)}
                        for key, (c, r) in credit.by(dimension).items()}
                row["splits"] = [split.to_dict() for split in credit.splits]
            channels[name] = row
        data: dict[str, Any] = {
            "model": self.model,
            "total_conversions": self.total_conversions,
            "total_revenue": round(self.total_revenue, 2),
            "channels": channels,
        }
        if self.method:
            data["method"] = self.method
        return data

"""An attribution report: credit per channel, the value the service returns and the CLI
prints. No numpy, no gRPC, so callers of the service can import it cheaply."""

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
)


@dataclass(frozen=True)
class ChannelCredit:
    """Conversions (fractional) and revenue attributed to one channel."""

    conversions: float
    revenue: float


@dataclass(frozen=True)
class AttributionReport:
    """Credit per channel, ordered by revenue (highest first), then conversions."""

    model: str
    total_conversions: int
    total_revenue: float
    channels: Mapping[str, ChannelCredit] = field(hash=False)
    # Events the service read to make the report (not part of the CLI's JSON).
    events_read: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``cdp attribution run --json``: conversions rounded to 4
        decimals, revenue to 2."""
        return {
            "model": self.model,
            "total_conversions": self.total_conversions,
            "total_revenue": round(self.total_revenue, 2),
            "channels": {
                name: {"conversions": round(credit.conversions, 4),
                       "revenue": round(credit.revenue, 2)}
                for name, credit in self.channels.items()
            },
        }

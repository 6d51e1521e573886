"""Expected customer value over a horizon, discounted monthly.

As in Fader & Hardie's spreadsheets and lifetimes' ``customer_lifetime_value``: the horizon
is cut into months; month m's value is the customer's expected purchases in it (the
difference of BG/NBD's conditional expectations at the month's end and start) times their
expected mean spend (Gamma-Gamma), discounted by ``(1 + d) ** m`` for a monthly discount
rate d (0.01 a month is about 12.7% a year):

    CLV = sum over m = 1..H of (E[Y(m)] - E[Y(m - 1)]) * E[M] / (1 + d) ** m

A month is 365.25 / 12 days (4.348 weeks) in the model's time unit. Values are revenue, as
the transactions' amounts are; multiply by a margin for profit.
"""

from __future__ import annotations

import numpy as np

from omnicdp.services.attribution.ltv.bgnbd import BGNBD
from omnicdp.services.attribution.ltv.summary import UNITS

DAYS_PER_MONTH = 365.25 / 12
DEFAULT_MONTHS = 12
DEFAULT_MONTHLY_DISCOUNT = 0.01


def months_to_units(months: float, unit: str) -> float:
    return months * DAYS_PER_MONTH / UNITS[unit]


def customer_value(model: BGNBD, spend: np.ndarray, x: np.ndarray, t_x: np.ndarray,
                   T: np.ndarray, unit: str, months: int = DEFAULT_MONTHS,  # noqa: N803
                   monthly_discount: float = DEFAULT_MONTHLY_DISCOUNT) -> np.ndarray:
    """Each customer's discounted expected value over ``months`` months; ``spend`` is their
    expected mean transaction value."""
    if months < 0 or monthly_discount < 0:
        raise ValueError("months and the discount rate must not be negative")
    value = np.zeros(np.shape(x), dtype=float)
    previous = np.zeros_like(value)
    for month in range(1, months + 1):
        cumulative = model.expected_purchases(months_to_units(month, unit), x, t_x, T)
        value += (cumulative - previous) / (1 + monthly_discount) ** month
        previous = cumulative
    return value * np.asarray(spend, dtype=float)

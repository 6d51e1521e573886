"""BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way").

While alive a customer buys as a Poisson process of rate lambda ~ Gamma(r, alpha) (shape r,
rate alpha); after each purchase they drop out for good with probability p ~ Beta(a, b).
A customer is summarised by ``x`` (repeat purchases after the first), ``t_x`` (time of the
last purchase) and ``T`` (time observed), both measured from their first purchase.

The formulas are the paper's: the likelihood (its equation 6), the expected purchases of a
new customer (eq. 9), the conditional expectation (eq. 10) and P(alive) (appendix, as in
Fader, Hardie & Lee's note "Computing P(alive) using the BG/NBD model").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, expit, gammaln, hyp2f1

from omnicdp.services.attribution.ltv.optimize import maximise

PARAMS = ("r", "alpha", "a", "b")


@dataclass(frozen=True)
class BGNBD:
    r: float
    alpha: float
    a: float
    b: float

    def to_dict(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    def log_likelihood(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,  # noqa: N803
                       weights: np.ndarray | None = None) -> float:
        value, _ = _log_likelihood(np.array([self.r, self.alpha, self.a, self.b]),
                                   Customers(x, t_x, T, weights))
        return value

    def expected_purchases_new(self, t: np.ndarray | float) -> np.ndarray:
        """E[X(t)]: purchases of a customer in their first ``t`` after the first purchase
        (eq. 9)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        t = np.asarray(t, dtype=float)
        return (a + b - 1) / (a - 1) * (
            1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t)))

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:  # noqa: N803
        """P(alive at T | x, t_x, T); 1 for a customer without repeat purchases (in this
        model one drops out only right after a purchase)."""
        x, t_x, T = _arrays(x, t_x, T)  # noqa: N806
        return expit(-self._log_dropout_odds(x, t_x, T))

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray,
                           T: np.ndarray) -> np.ndarray:  # noqa: N803
        """E[Y(t) | x, t_x, T]: expected purchases in the next ``t`` after ``T`` (eq. 10)."""
        x, t_x, T = _arrays(x, t_x, T)  # noqa: N806
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        if t <= 0:
            return np.zeros_like(T)
        growth = (a + b + x - 1) / (a - 1) * (
            1 - ((alpha + T) / (alpha + T + t)) ** (r + x)
            * hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t)))
        return growth * expit(-self._log_dropout_odds(x, t_x, T))

    def _log_dropout_odds(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:  # noqa: N803
        """log of a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x): the odds of having dropped out
        at the last purchase against being alive; -inf when x = 0."""
        repeat = x > 0
        safe_x = np.where(repeat, x, 1.0)
        odds = (np.log(self.a) - np.log(self.b + safe_x - 1)
                + (self.r + safe_x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x)))
        return np.where(repeat, odds, -np.inf)


def _arrays(*columns: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(column, dtype=float) for column in columns)


class Customers:
    """(x, t_x, T) with weights, and what every likelihood evaluation reuses: the distinct
    purchase counts (a few dozen even among millions of customers), so that the gamma and
    digamma functions of ``r + x``, ``b + x`` and ``a + b + x`` are computed once per
    distinct x and gathered, rather than once per customer."""

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,  # noqa: N803
                 weights: np.ndarray | None = None) -> None:
        self.x, self.t_x, self.T = _arrays(x, t_x, T)
        self.weights = (np.ones_like(self.x) if weights is None
                        else np.asarray(weights, dtype=float))
        self.counts, self.count_index = np.unique(self.x, return_inverse=True)
        self.repeat = self.x > 0
        # log(b + x - 1) is used only where x > 0; x = 1 stands in elsewhere.
        self.safe_counts = np.where(self.counts > 0, self.counts, 1.0)


def _log_likelihood(params: np.ndarray, data: Customers) -> tuple[float, np.ndarray]:
    """The summed log-likelihood (eq. 6) and its gradient in (r, alpha, a, b)."""
    r, alpha, a, b = params
    x, t_x, T, at = data.x, data.t_x, data.T, data.count_index  # noqa: N806
    n = data.counts
    # Per distinct x, gathered per customer below.
    lg = gammaln(r + n) - gammaln(r) + gammaln(b + n) - gammaln(a + b + n)
    dg_r = digamma(r + n) - digamma(r)
    dg_a = digamma(a + b) - digamma(a + b + n)
    dg_b = digamma(b + n) - digamma(b)
    log_b = np.log(b + data.safe_counts - 1)
    log_alpha_t = np.log(alpha + T)
    log_alpha_tx = np.log(alpha + t_x)
    a3 = -(r + x) * log_alpha_t
    a4 = np.where(data.repeat, np.log(a) - log_b[at] - (r + x) * log_alpha_tx, -np.inf)
    total = np.logaddexp(a3, a4)
    share3 = np.exp(a3 - total)  # the two terms' shares of the likelihood: 1 and 0 when x = 0
    share4 = np.exp(a4 - total)
    per_customer = (lg[at] + r * np.log(alpha) + gammaln(a + b) - gammaln(b) + total)
    w = data.weights
    d_r = dg_r[at] + np.log(alpha) - share3 * log_alpha_t - share4 * log_alpha_tx
    d_alpha = r / alpha - (r + x) * (share3 / (alpha + T) + share4 / (alpha + t_x))
    d_a = dg_a[at] + share4 / a
    d_b = dg_a[at] + dg_b[at] - share4 / (b + data.safe_counts - 1)[at]
    gradient = np.array([w @ d_r, w @ d_alpha, w @ d_a, w @ d_b])
    return float(w @ per_customer), gradient


@dataclass(frozen=True)
class BGNBDFit:
    model: BGNBD
    log_likelihood: float
    customers: int
    iterations: int
    standard_errors: dict[str, float]
    at_bound: tuple[str, ...] = ()  # parameters the optimum put on the fit's bounds


def fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray,  # noqa: N803
        weights: np.ndarray | None = None) -> BGNBDFit:
    """Maximum-likelihood BG/NBD. Time is rescaled so that the longest ``T`` is 10 while
    optimising (alpha is a time scale, and a well-scaled start converges the same on days
    or weeks), then alpha is scaled back."""
    x, t_x, T = _arrays(x, t_x, T)  # noqa: N806
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    total = float(w.sum())
    scale = float(T.max()) / 10.0 if T.size and T.max() > 0 else 1.0
    scaled = Customers(x, t_x / scale, T / scale, w)

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = _log_likelihood(params, scaled)
        return -value / total, -gradient / total

    found = maximise(objective, np.array([1.0, 1.0, 1.0, 1.0]), "BG/NBD", total)
    to_time = np.array([1.0, scale, 1.0, 1.0])
    params, errors = found.params * to_time, found.standard_errors * to_time
    model = BGNBD(*(float(value) for value in params))
    return BGNBDFit(model, model.log_likelihood(x, t_x, T, w), round(total), found.iterations,
                    dict(zip(PARAMS, (float(e) for e in errors), strict=True)),
                    tuple(n for n, edge in zip(PARAMS, found.at_bound, strict=True) if edge))

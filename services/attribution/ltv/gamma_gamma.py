"""Gamma-Gamma model of spend (Fader & Hardie 2013, "The Gamma-Gamma Model of Monetary
Value"; Fader, Hardie & Lee 2005, "RFM and CLV").

A customer's transactions are Gamma(p, nu) around their own mean p/nu, with
nu ~ Gamma(q, gamma) across customers. The model is fitted on customers with at least one
repeat purchase, on ``m`` = the mean value of their ``x`` *repeat* transactions (the first
purchase left out, as in the note: its value is unlike the repeat ones'). Spend is assumed
independent of the purchase process.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, gammaln

from omnicdp.services.attribution.ltv.optimize import maximise

PARAMS = ("p", "q", "gamma")


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    gamma: float

    def to_dict(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "gamma": self.gamma}

    def mean_spend(self) -> float:
        """E[M]: the population's expected mean transaction value, p * gamma / (q - 1);
        infinite when q <= 1 (the model then has no finite mean)."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("inf")

    def expected_spend(self, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        """E[M | x, m]: a customer's expected mean transaction value given ``x`` repeat
        transactions of mean value ``m`` (the note's eq. 5); the population mean for x = 0.
        It weighs the population mean against the customer's own, by how much they bought."""
        x = np.asarray(x, dtype=float)
        m = np.where(x > 0, np.asarray(m, dtype=float), 0.0)
        return self.p * (self.gamma + x * m) / (self.p * x + self.q - 1)

    def log_likelihood(self, x: np.ndarray, m: np.ndarray) -> float:
        value, _ = _log_likelihood(np.array([self.p, self.q, self.gamma]), Spenders(x, m))
        return value


class Spenders:
    """(x, m) of repeat customers, and what every evaluation reuses: logs of x and m, and
    the distinct x (gamma functions of p x are computed once per distinct x)."""

    def __init__(self, x: np.ndarray, m: np.ndarray) -> None:
        self.x = np.asarray(x, dtype=float)
        self.m = np.asarray(m, dtype=float)
        self.log_x, self.log_m = np.log(self.x), np.log(self.m)
        self.counts, self.count_index = np.unique(self.x, return_inverse=True)


def _log_likelihood(params: np.ndarray, data: Spenders) -> tuple[float, np.ndarray]:
    """The density of the mean ``m`` of ``x`` transactions (the note's eq. 3), summed in
    logs, and its gradient in (p, q, gamma)."""
    p, q, gamma = params
    x, m, at, n = data.x, data.m, data.count_index, data.counts
    px = p * x
    log_total = np.log(gamma + x * m)
    lg = (gammaln(p * n + q) - gammaln(p * n))[at]
    dg_pq = digamma(p * n + q)[at]
    dg_p = digamma(p * n)[at]
    per_customer = (lg - gammaln(q) + q * np.log(gamma) + (px - 1) * data.log_m
                    + px * data.log_x - (px + q) * log_total)
    d_p = x * (dg_pq - dg_p + data.log_m + data.log_x - log_total)
    d_q = dg_pq - digamma(q) + np.log(gamma) - log_total
    d_gamma = q / gamma - (px + q) / (gamma + x * m)
    return float(per_customer.sum()), np.array([d_p.sum(), d_q.sum(), d_gamma.sum()])


@dataclass(frozen=True)
class GammaGammaFit:
    model: GammaGamma
    log_likelihood: float
    customers: int
    iterations: int
    standard_errors: dict[str, float]
    at_bound: tuple[str, ...] = ()  # parameters the optimum put on the fit's bounds


def fit(x: np.ndarray, m: np.ndarray) -> GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma on customers with ``x`` >= 1 repeat transactions of
    positive mean value ``m`` (the caller selects them). Spend is rescaled to mean 1 while
    optimising (gamma is in money), then gamma is scaled back."""
    x = np.asarray(x, dtype=float)
    m = np.asarray(m, dtype=float)
    scale = float(m.mean())
    scaled = Spenders(x, m / scale)
    count = float(x.size)

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = _log_likelihood(params, scaled)
        return -value / count, -gradient / count

    found = maximise(objective, np.array([1.0, 1.0, 1.0]), "Gamma-Gamma", count)
    to_money = np.array([1.0, 1.0, scale])
    params, errors = found.params * to_money, found.standard_errors * to_money
    model = GammaGamma(*(float(value) for value in params))
    return GammaGammaFit(model, model.log_likelihood(x, m), int(x.size), found.iterations,
                         dict(zip(PARAMS, (float(e) for e in errors), strict=True)),
                    tuple(n for n, edge in zip(PARAMS, found.at_bound, strict=True) if edge))

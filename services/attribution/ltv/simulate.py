"""Customers drawn from the models themselves, for tests (parameters recovered) and the
benchmark (a transaction table of any size). Vectorised by purchase round: one numpy draw
per round for all customers still buying, never a Python loop over customers."""

from __future__ import annotations

from datetime import date

import numpy as np
import pyarrow as pa

from omnicdp.services.attribution.ltv.bgnbd import BGNBD
from omnicdp.services.attribution.ltv.gamma_gamma import GammaGamma


def repeat_purchase_times(model: BGNBD, ages: np.ndarray,
                          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's repeat purchases within their age ``T`` (time after the first
    purchase): (customer index, time) pairs, ordered by round. Rates are
    Gamma(r, rate alpha), drop-out probabilities Beta(a, b); a customer may drop out right
    after each repeat purchase, never before the first one."""
    ages = np.asarray(ages, dtype=float)
    rates = rng.gamma(model.r, 1.0 / model.alpha, ages.size)
    dropout = rng.beta(model.a, model.b, ages.size)
    active = np.arange(ages.size)
    clock = np.zeros(ages.size)
    customers, times = [], []
    while active.size:
        clock[active] += rng.exponential(1.0, active.size) / rates[active]
        active = active[clock[active] <= ages[active]]
        customers.append(active)
        times.append(clock[active])
        active = active[rng.random(active.size) >= dropout[active]]
    return np.concatenate(customers), np.concatenate(times)


def bgnbd_summary(model: BGNBD, ages: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(x, t_x) of customers of ``ages`` drawn from ``model``."""
    customers, times = repeat_purchase_times(model, ages, rng)
    x = np.bincount(customers, minlength=np.size(ages))
    t_x = np.zeros(np.size(ages))
    np.maximum.at(t_x, customers, times)
    return x, t_x


def spends(model: GammaGamma, customers: np.ndarray, count: int,
           rng: np.random.Generator) -> np.ndarray:
    """One value per transaction of ``customers`` (indexes into ``count`` customers): each
    customer's transactions are Gamma(p, nu) with nu ~ Gamma(q, gamma)."""
    nu = rng.gamma(model.q, 1.0 / model.gamma, count)
    return rng.gamma(model.p, 1.0 / nu[customers])


def transaction_table(customers: int, purchases: BGNBD, spend: GammaGamma, start: date,
                      cohort_days: int, end: date, seed: int) -> pa.Table:
    """A transaction table (``customer_id``, ``timestamp`` as ISO dates, ``amount``) of a
    cohort whose first purchases spread over ``cohort_days`` from ``start``, observed to
    ``end``; the models' time unit is the day."""
    rng = np.random.default_rng(seed)
    first = rng.integers(0, cohort_days, customers)
    ages = (end - start).days - first + 0.999  # purchases until the end of the last day
    repeat_of, repeat_at = repeat_purchase_times(purchases, ages, rng)
    owner = np.concatenate([np.arange(customers), repeat_of])
    day = np.concatenate([first, first[repeat_of] + np.floor(repeat_at).astype(np.int64)])
    amounts = np.round(spends(spend, owner, customers, rng), 2)
    dates = (np.datetime64(start) + day.astype("timedelta64[D]")).astype(str)
    ids = np.char.add("c", owner.astype(str))
    order = np.argsort(owner, kind="stable")
    return pa.table({"customer_id": ids[order], "timestamp": dates[order],
                     "amount": amounts[order]})

"""Maximum likelihood on positive parameters, shared by BG/NBD and Gamma-Gamma.

Parameters are optimised on their logarithms (so they stay positive without bounds) with
L-BFGS-B and the models' analytic gradients: on 100k customers a finite-difference gradient
would cost one likelihood per parameter per step. A few Newton steps then polish the
optimum when L-BFGS-B stopped (on a relative change of the objective) with the gradient
above 1e-9, so the figures do not depend on where it stopped; a Hessian from differences of
the analytic gradient gives the standard errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from omnicdp.core.errors import FailedPrecondition

# The negative mean log-likelihood and its gradient in the parameters themselves.
Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]

NEWTON_STEPS = 3
# A gradient (of the mean log-likelihood in log-parameters) this small needs no polish.
POLISHED = 1e-9
# Every parameter is kept within [1e-8, 1e4] (on the fit's internal scales: time and money
# are rescaled so that published values lie near 1). Data can have their maximum on the
# edge: customers who never drop out drive BG/NBD's b to infinity (the NBD limit), and
# there its expected purchases (a ratio of two huge terms) lose all precision past 1e6; at
# 1e4 they are still within 1e-8 of the limit.
LOWER, UPPER = 1e-8, 1e4
# How near a bound (a factor, on the log scale) an optimum is tried on it.
NEAR_EDGE = 3.0
# A change of the mean log-likelihood this small (relative) is no change: a ridge this flat
# toward a bound ends on it.
FLAT = 1e-9


@dataclass(frozen=True)
class Maximum:
    params: np.ndarray
    standard_errors: np.ndarray  # from the observed information; NaN where it is singular
    iterations: int
    at_bound: np.ndarray  # True for a parameter the optimum put on LOWER or UPPER


def maximise(objective: Objective, start: np.ndarray, model: str, count: float) -> Maximum:
    """The parameters minimising ``objective`` (a mean over ``count`` customers) from
    ``start``."""

    def on_logs(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        value, gradient = objective(params)
        return value, gradient * params  # chain rule: d/dlog(theta) = theta * d/dtheta

    bounds = [(np.log(LOWER), np.log(UPPER))] * len(start)
    result = minimize(on_logs, np.log(start), jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12, "maxcor": 20})
    if not np.all(np.isfinite(result.x)) or not np.isfinite(result.fun):
        raise FailedPrecondition(f"the {model} fit did not converge ({result.message}); "
                                 "the data may be too few or degenerate",
                                 reason="LTV_FIT_FAILED")
    point = _onto_edges(on_logs, result.x, float(result.fun))
    at_bound = (point <= np.log(LOWER) + 1e-6) | (point >= np.log(UPPER) - 1e-6)
    # An edge is no stationary point: no Newton step there, and the standard errors are
    # those of the free parameters with the others held on their bounds.
    log_params = point if at_bound.any() else _polish(on_logs, point)
    params = np.exp(log_params)
    return Maximum(params, _standard_errors(on_logs, log_params, count, ~at_bound) * params,
                   int(result.nit), at_bound)


def _onto_edges(on_logs: Objective, point: np.ndarray, value: float) -> np.ndarray:
    """An optimum found on a ridge that stays flat or falls toward a bound (L-BFGS-B stops
    there on a relative change of the objective, where exactly depends on the libraries)
    is put on that bound: each parameter within a factor ``exp(NEAR_EDGE)`` of one moves
    onto it when that does not make the objective worse (by more than ``FLAT``)."""
    point = point.copy()
    for i in range(point.size):
        for edge in (np.log(LOWER), np.log(UPPER)):
            if 0 < abs(point[i] - edge) < NEAR_EDGE:
                trial = point.copy()
                trial[i] = edge
                moved = on_logs(trial)[0]
                if np.isfinite(moved) and moved <= value + FLAT * max(1.0, abs(value)):
                    point, value = trial, moved
    return point


def _standard_errors(on_logs: Objective, point: np.ndarray, count: float,
                     free: np.ndarray) -> np.ndarray:
    """Standard errors of the ``free`` log-parameters (NaN for the others): the inverse of
    the summed negative log-likelihood's Hessian (``count`` times the mean's)."""
    errors = np.full(point.size, np.nan)
    if not free.any():
        return errors
    hessian = _hessian(on_logs, point)[np.ix_(free, free)] * count
    try:
        variances = np.diag(np.linalg.inv(hessian))
    except np.linalg.LinAlgError:
        return errors
    errors[free] = np.sqrt(np.where(variances > 0, variances, np.nan))
    return errors


def _polish(on_logs: Objective, point: np.ndarray) -> np.ndarray:
    """Newton steps with a Hessian from central differences of the analytic gradient, each
    kept only if it does not make the objective worse."""
    value, gradient = on_logs(point)
    for _ in range(NEWTON_STEPS):
        if np.max(np.abs(gradient)) < POLISHED:
            break
        hessian = _hessian(on_logs, point)
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)):
            break
        candidate = point - step
        candidate_value, candidate_gradient = on_logs(candidate)
        if not np.isfinite(candidate_value) or candidate_value > value:
            break
        point, value, gradient = candidate, candidate_value, candidate_gradient
        if np.max(np.abs(step)) < 1e-9:  # quadratic convergence: the next step is ~1e-18
            break
    return point


def _hessian(on_logs: Objective, point: np.ndarray, h: float = 1e-5) -> np.ndarray:
    size = point.size
    hessian = np.empty((size, size))
    for i in range(size):
        delta = np.zeros(size)
        delta[i] = h
        hessian[i] = (on_logs(point + delta)[1] - on_logs(point - delta)[1]) / (2 * h)
    return (hessian + hessian.T) / 2

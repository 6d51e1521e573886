"""BG/NBD and Gamma-Gamma against values derived independently in the test: the individual
level model integrated numerically over its mixing distributions (never the closed forms
under test), and parameters recovered from customers drawn from the models."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.optimize import check_grad
from scipy.special import betaln, roots_genlaguerre, roots_jacobi

from omnicdp.services.attribution.ltv import bgnbd, clv, gamma_gamma, simulate
from omnicdp.services.attribution.ltv.bgnbd import BGNBD
from omnicdp.services.attribution.ltv.gamma_gamma import GammaGamma

MODEL = BGNBD(r=0.8, alpha=6.0, a=1.7, b=3.2)
SPEND = GammaGamma(p=4.0, q=3.5, gamma=30.0)

# (x, t_x, T): a one-off buyer, a lapsed regular, a recent regular, a just-seen buyer.
CUSTOMERS = [(0, 0.0, 20.0), (4, 6.0, 30.0), (4, 28.0, 30.0), (1, 9.5, 10.0)]


def _mixed(function) -> float:
    """The integral of ``function(lam, p)`` over lambda ~ Gamma(r, rate alpha) and
    p ~ Beta(a, b), by Gauss quadrature: generalised Laguerre in u = alpha * lambda (weight
    u^(r-1) e^-u, the Gamma density's own) and Jacobi in y = 2p - 1 (weight
    (1-y)^(b-1) (1+y)^(a-1), the Beta's), 100 nodes each; the functions integrated here are
    smooth, so this is exact to about 1e-14 (it agrees with 200 nodes)."""
    u, u_weights = roots_genlaguerre(100, MODEL.r - 1)
    y, y_weights = roots_jacobi(100, MODEL.b - 1, MODEL.a - 1)
    u_weights = u_weights / math.gamma(MODEL.r)
    y_weights = y_weights * 2.0 ** (1 - MODEL.a - MODEL.b) / math.exp(betaln(MODEL.a, MODEL.b))
    lam, p = np.meshgrid(u / MODEL.alpha, (1 + y) / 2, indexing="ij")
    return float(u_weights @ function(lam, p) @ y_weights)


def _alive(x: int, T: float):  # noqa: N803
    """The individual-level likelihood of (x, t_x, T) for a customer still alive at T
    (FHL 2005 eq. 3's first term)."""
    return lambda lam, p: (1 - p) ** x * lam ** x * np.exp(-lam * T)


def _either(x: int, t_x: float, T: float):  # noqa: N803
    """The whole individual-level likelihood: alive, or dropped out after the last
    purchase (eq. 3)."""
    def likelihood(lam, p):  # noqa: ANN001, ANN202
        dead = p * (1 - p) ** (x - 1) * lam ** x * np.exp(-lam * t_x) if x > 0 else 0.0
        return _alive(x, T)(lam, p) + dead
    return likelihood


@pytest.mark.parametrize(("x", "t_x", "T"), CUSTOMERS)
def test_likelihood_is_the_individual_model_mixed_over_lambda_and_p(x, t_x, T) -> None:  # noqa: N803
    expected = math.log(_mixed(_either(x, t_x, T)))
    assert MODEL.log_likelihood([x], [t_x], [T]) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("x", "t_x", "T"), CUSTOMERS)
def test_p_alive_is_the_posterior_probability_of_being_alive(x, t_x, T) -> None:  # noqa: N803
    expected = _mixed(_alive(x, T)) / _mixed(_either(x, t_x, T))
    assert MODEL.p_alive([x], [t_x], [T])[0] == pytest.approx(expected, rel=1e-10)


def test_p_alive_without_repeat_purchases_is_one_and_falls_with_silence() -> None:
    assert MODEL.p_alive([0], [0.0], [50.0])[0] == 1.0
    recent, lapsed = MODEL.p_alive([4, 4], [28.0, 6.0], [30.0, 30.0])
    assert recent > lapsed


@pytest.mark.parametrize(("x", "t_x", "T"), CUSTOMERS)
def test_expected_purchases_are_the_posterior_mean_of_an_alive_customers_purchases(
        x, t_x, T) -> None:  # noqa: N803
    horizon = 12.0

    def purchases_if_alive(lam, p):  # noqa: ANN001, ANN202
        # An alive customer's purchases in the next t: FHL 2005 eq. 7, 1/p - e^(-lam p t)/p.
        return (1 - np.exp(-lam * p * horizon)) / p

    alive = _alive(x, T)
    expected = (_mixed(lambda lam, p: alive(lam, p) * purchases_if_alive(lam, p))
                / _mixed(_either(x, t_x, T)))
    got = MODEL.expected_purchases(horizon, [x], [t_x], [T])[0]
    assert got == pytest.approx(expected, rel=1e-10)


def test_expected_purchases_of_a_new_customer_mix_the_individual_expectation() -> None:
    horizon = 26.0
    expected = _mixed(lambda lam, p: (1 - np.exp(-lam * p * horizon)) / p)
    assert MODEL.expected_purchases_new(horizon) == pytest.approx(expected, rel=1e-10)
    # A new customer is one observed for no time: the conditional form agrees.
    assert MODEL.expected_purchases(horizon, [0], [0.0], [0.0])[0] == pytest.approx(expected,
                                                                                   rel=1e-9)


def test_gamma_gamma_likelihood_and_expected_spend_integrate_over_nu() -> None:
    x, m = 3, 42.0
    nu_pdf = stats.gamma(SPEND.q, scale=1 / SPEND.gamma).pdf
    # The mean of x Gamma(p, nu) values is Gamma(p x, rate x nu).
    mean_pdf = lambda nu: stats.gamma(SPEND.p * x, scale=1 / (x * nu)).pdf(m)  # noqa: E731
    density = integrate.quad(lambda nu: mean_pdf(nu) * nu_pdf(nu), 0, np.inf, epsrel=1e-11)[0]
    assert SPEND.log_likelihood([x], [m]) == pytest.approx(math.log(density), rel=1e-8)
    posterior_mean = integrate.quad(lambda nu: SPEND.p / nu * mean_pdf(nu) * nu_pdf(nu), 0,
                                    np.inf, epsrel=1e-11)[0] / density
    assert SPEND.expected_spend([x], [m])[0] == pytest.approx(posterior_mean, rel=1e-8)
    assert SPEND.expected_spend([0], [0.0])[0] == pytest.approx(SPEND.mean_spend())


def test_analytic_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(3)
    ages = rng.uniform(5, 40, 300)
    x, t_x = simulate.bgnbd_summary(MODEL, ages, rng)
    customers = bgnbd.Customers(x, t_x, ages)
    params = np.array([MODEL.r, MODEL.alpha, MODEL.a, MODEL.b]) * 1.1
    error = check_grad(lambda p: bgnbd._log_likelihood(p, customers)[0],
                       lambda p: bgnbd._log_likelihood(p, customers)[1], params)
    assert error < 1e-4 * np.abs(bgnbd._log_likelihood(params, customers)[1]).max()
    counts = rng.integers(1, 8, 200).astype(float)
    means = rng.gamma(3.0, 10.0, 200)
    spenders = gamma_gamma.Spenders(counts, means)
    params = np.array([SPEND.p, SPEND.q, SPEND.gamma])
    gradient = gamma_gamma._log_likelihood(params, spenders)[1]
    error = check_grad(lambda p: gamma_gamma._log_likelihood(p, spenders)[0],
                       lambda p: gamma_gamma._log_likelihood(p, spenders)[1], params)
    assert error < 1e-4 * np.abs(gradient).max()


def test_bgnbd_recovers_the_parameters_customers_were_drawn_from() -> None:
    rng = np.random.default_rng(11)
    ages = rng.uniform(10, 52, 20_000)
    x, t_x = simulate.bgnbd_summary(MODEL, ages, rng)
    fitted = bgnbd.fit(x, t_x, ages)
    for name, truth in MODEL.to_dict().items():
        estimate, error = getattr(fitted.model, name), fitted.standard_errors[name]
        assert abs(estimate - truth) < 3 * error, (name, estimate, truth, error)
        assert abs(estimate / truth - 1) < 0.15, (name, estimate, truth)
    assert fitted.customers == 20_000


def test_compressed_customers_give_the_same_fit_as_one_row_each() -> None:
    rng = np.random.default_rng(5)
    ages = np.floor(rng.uniform(10, 52, 3_000))
    x, t_x = simulate.bgnbd_summary(MODEL, ages, rng)
    t_x = np.floor(t_x)
    rows, counts = np.unique(np.stack([x, t_x, ages], axis=1), axis=0, return_counts=True)
    assert len(rows) < len(x)
    one_each = bgnbd.fit(x, t_x, ages)
    weighted = bgnbd.fit(rows[:, 0], rows[:, 1], rows[:, 2], weights=counts)
    assert weighted.log_likelihood == pytest.approx(one_each.log_likelihood, rel=1e-10)
    for name, value in one_each.model.to_dict().items():
        assert getattr(weighted.model, name) == pytest.approx(value, rel=1e-5)


def test_gamma_gamma_recovers_the_parameters_spend_was_drawn_from() -> None:
    rng = np.random.default_rng(12)
    customers = 5_000
    counts = rng.integers(1, 10, customers)
    owner = np.repeat(np.arange(customers), counts)
    values = simulate.spends(SPEND, owner, customers, rng)
    means = np.bincount(owner, weights=values) / counts
    fitted = gamma_gamma.fit(counts, means)
    for name, truth in SPEND.to_dict().items():
        estimate, error = getattr(fitted.model, name), fitted.standard_errors[name]
        assert abs(estimate - truth) < 3 * error, (name, estimate, truth, error)
        assert abs(estimate / truth - 1) < 0.2, (name, estimate, truth)


def test_customer_value_sums_monthly_purchases_times_spend_discounted() -> None:
    x, t_x, age = np.array([4]), np.array([28.0]), np.array([30.0])
    month = clv.months_to_units(1, "week")
    assert month == pytest.approx(365.25 / 12 / 7)
    one = MODEL.expected_purchases(month, x, t_x, age)[0]
    two = MODEL.expected_purchases(2 * month, x, t_x, age)[0]
    value = clv.customer_value(MODEL, np.array([50.0]), x, t_x, age, "week", months=2,
                               monthly_discount=0.01)[0]
    assert value == pytest.approx(50.0 * (one / 1.01 + (two - one) / 1.01 ** 2), rel=1e-12)
    undiscounted = clv.customer_value(MODEL, np.array([50.0]), x, t_x, age, "week", months=2,
                                      monthly_discount=0.0)[0]
    assert undiscounted == pytest.approx(50.0 * two, rel=1e-12)
    assert value < undiscounted


def test_customers_who_never_drop_out_give_the_nbd_limit_not_overflow() -> None:
    """Without drop-out the likelihood rises as b grows without end; the fit stops on its
    bound, says so, and its predictions are the NBD's (Poisson rates, Gamma mixed), whose
    conditional expectation is (r + x) / (alpha + T) * t."""
    rng = np.random.default_rng(21)
    ages = rng.uniform(10, 52, 5_000)
    rates = rng.gamma(1.5, 1 / 15.0, ages.size)
    # A Poisson process observed from the first purchase: x ~ Poisson(rate T), and the last
    # of x uniform times in (0, T).
    x = rng.poisson(rates * ages)
    t_x = np.array([ages[i] * rng.random(n).max() if n else 0.0 for i, n in enumerate(x)])
    fitted = bgnbd.fit(x, t_x, ages)
    assert "b" in fitted.at_bound
    assert fitted.model.r == pytest.approx(1.5, rel=0.1)
    assert fitted.model.alpha == pytest.approx(15.0, rel=0.1)
    model = fitted.model
    expected = (model.r + x) / (model.alpha + ages) * 8.0
    assert model.expected_purchases(8.0, x, t_x, ages) == pytest.approx(expected, rel=1e-6)
    assert model.p_alive(x, t_x, ages).min() > 0.999
    assert math.isnan(fitted.standard_errors["b"])
    assert math.isfinite(fitted.standard_errors["r"])

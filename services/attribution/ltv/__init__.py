"""Customer lifetime value: BG/NBD for repeat purchases and Gamma-Gamma for spend, fitted
by maximum likelihood (our own, on scipy), with calibration/holdout validation.

| module | what |
|---|---|
| ``summary.py`` | the per-customer RFM summary of a transaction table, built in DuckDB |
| ``bgnbd.py`` | BG/NBD: likelihood, fit, expected purchases, P(alive) |
| ``gamma_gamma.py`` | Gamma-Gamma: likelihood, fit, expected average spend |
| ``clv.py`` | expected customer value over a horizon, discounted monthly |
| ``validation.py`` | predicted vs actual holdout purchases, by calibration frequency |
| ``fit.py`` | the whole fit of a transaction table, as ``cdp ltv fit`` reports it |
| ``scoring.py`` | per-customer scores from a fit |
| ``charts.py``, ``registry.py`` | the validation chart, and MLflow (``cdp-ltv``, promotion) |
| ``refit.py`` | fit, register and score in one call |
| ``transactions.py`` | purchases from the profile service's stored events |
| ``optimize.py`` | maximum likelihood on log-parameters |
| ``simulate.py`` | customers drawn from the models (tests, benchmark) |

No module here imports gRPC or the generated API.
"""

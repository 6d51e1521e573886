"""LTV fits in MLflow: each fit is a run of experiment ``cdp-ltv`` (parameters, metrics
with the log-likelihoods and holdout errors, the model JSON, the validation table and its
chart), registered as a version of model ``cdp-ltv``. Scoring loads a version, the
``champion`` alias's when one is set, else the latest; ``promote`` moves the alias unless
the candidate predicts a holdout worse than the champion does."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omnicdp.core import tracking
from omnicdp.core.errors import NotFound
from omnicdp.services.attribution.ltv import charts
from omnicdp.services.attribution.ltv.fit import LtvFit
from omnicdp.services.attribution.ltv.scoring import LtvModel
from omnicdp.services.attribution.ltv.validation import Validation

MODEL_NAME = "cdp-ltv"
EXPERIMENT = "cdp-ltv"
CHAMPION = "champion"
MODEL_DIR = "model"
MODEL_FILE = "ltv_model.json"


def model_of(fit: LtvFit) -> LtvModel:
    return LtvModel(fit.bgnbd, fit.gamma_gamma, fit.summary.unit)


def log_fit(fit: LtvFit, uri: str, source: str = "") -> tuple[str, str]:
    """Record a fit as an MLflow run and register its model; returns (version, run id)."""
    client = tracking.client(uri)
    report = fit.to_dict()
    with tracking.run(client, uri, EXPERIMENT, "ltv-fit", {"input": source}) as run:
        run_id = run.info.run_id
        params = {**{f"bgnbd_{k}": v for k, v in fit.bgnbd.to_dict().items()},
                  **{f"gamma_gamma_{k}": v for k, v in fit.gamma_gamma.to_dict().items()},
                  "time_unit": fit.summary.unit,
                  "calibration_start": fit.summary.first_date.isoformat(),
                  "calibration_end": fit.summary.calibration_end.isoformat()}
        for key, value in params.items():
            client.log_param(run_id, key, value)
        metrics = {"bgnbd_log_likelihood": fit.fits.bgnbd.log_likelihood,
                   "gamma_gamma_log_likelihood": fit.fits.gamma_gamma.log_likelihood,
                   "customers": fit.summary.customers,
                   "repeat_customers": fit.fits.gamma_gamma.customers,
                   "transactions": fit.transactions,
                   **{f"seconds_{k}": v for k, v in fit.seconds.items()}}
        if fit.validation is not None:
            metrics.update({"holdout_mae": fit.validation.mae,
                            "holdout_rmse": fit.validation.rmse,
                            "holdout_actual_purchases": fit.validation.actual_purchases,
                            "holdout_predicted_purchases": fit.validation.predicted_purchases,
                            "holdout_purchases_error": fit.validation.purchases_error})
        for key, value in metrics.items():
            client.log_metric(run_id, key, float(value))
        with tempfile.TemporaryDirectory() as work:
            folder = Path(work) / MODEL_DIR
            folder.mkdir()
            model_of(fit).save(folder / MODEL_FILE)
            (folder / "fit.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
            client.log_artifacts(run_id, str(folder), MODEL_DIR)
            if fit.validation is not None:
                chart = Path(work) / "holdout_by_frequency.png"
                chart.write_bytes(charts.holdout_by_frequency(fit.validation, fit.summary.unit))
                client.log_artifact(run_id, str(chart), "charts")
    version = tracking.register_version(
        client, MODEL_NAME, "omnicdp lifetime value: BG/NBD purchases and Gamma-Gamma spend",
        f"{run.info.artifact_uri}/{MODEL_DIR}", run_id)
    return version, run_id


def load(uri: str, version: str = "serving") -> LtvModel:
    """A registered version's model: a number, ``latest``, or ``serving`` (the champion's
    when the alias is set, else the latest)."""
    import mlflow.artifacts

    if tracking.embedded_store_missing(uri):
        raise NotFound(f"no {MODEL_NAME} model is registered yet: run `cdp ltv fit` first")
    client = tracking.client(uri)
    try:
        if version == "serving":
            try:
                found = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
            except Exception:  # noqa: BLE001 (MlflowException: no alias)
                found = _latest(client)
        elif version == "latest":
            found = _latest(client)
        else:
            found = client.get_model_version(MODEL_NAME, str(version))
    except NotFound:
        raise
    except Exception as error:  # noqa: BLE001 (MlflowException)
        raise NotFound(f"no version {version} of model {MODEL_NAME}") from error
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{found.source}/{MODEL_FILE}", tracking_uri=uri)
    return LtvModel.load(Path(path), version=str(found.version))


def _latest(client) -> object:  # noqa: ANN001 (MlflowClient; returns a ModelVersion)
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    if not versions:
        raise NotFound(f"no {MODEL_NAME} model is registered yet: run `cdp ltv fit` first")
    return max(versions, key=lambda v: int(v.version))


@dataclass(frozen=True)
class Promotion:
    version: str
    previous: str | None
    reason: str
    candidate: Validation
    champion: Validation | None


def champion_version(uri: str) -> str | None:
    try:
        return str(tracking.client(uri).get_model_version_by_alias(MODEL_NAME, CHAMPION).version)
    except Exception:  # noqa: BLE001 (MlflowException: no model or no alias)
        return None


def promote(uri: str, version: str, evaluate: Callable[[LtvModel], Validation],
            force: bool = False) -> Promotion:
    """Move ``champion`` to ``version`` unless it predicts the same holdout worse (a higher
    mean absolute error per customer) than the current champion; ``evaluate`` validates a
    model on one calibration/holdout split, the same for both. ``force`` moves it anyway.
    Raises :class:`FailedPrecondition` when refused."""
    client = tracking.client(uri)
    candidate_model = load(uri, version)
    previous = champion_version(uri)
    candidate = evaluate(candidate_model)
    champion = None
    if previous is not None and previous != candidate_model.version:
        champion = evaluate(load(uri, previous))
    regression = None
    if champion is not None and candidate.mae > champion.mae:
        regression = (f"version {candidate_model.version} regresses: holdout MAE "
                      f"{candidate.mae:.4f} > champion {previous}'s {champion.mae:.4f} on "
                      f"the holdout after {candidate.calibration_end}")
    reason = tracking.move_champion(
        client, MODEL_NAME, CHAMPION, candidate_model.version,
        {"mae": candidate.mae, "rmse": candidate.rmse,
         "purchases_error": candidate.purchases_error,
         "holdout": f"{candidate.calibration_end}..{candidate.holdout_end}"},
        regression, force, champion is not None)
    return Promotion(candidate_model.version, previous, reason, candidate, champion)

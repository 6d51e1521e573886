"""Models in MLflow: each training is a run (parameters, metrics, the Splink model JSON and
charts as artifacts), registered as a version of ``cdp-identity``; the ``champion`` alias
names the version that resolves identities, and moves only when a candidate does not
regress on a labelled evaluation set.

The store, client, runs and registration are ``omnicdp.core.tracking``'s, shared with the
LTV models.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omnicdp.core import tracking
from omnicdp.core.errors import NotFound
from omnicdp.core.tracking import client as _client
from omnicdp.core.tracking import tracking_uri as tracking_uri  # where callers found it
from omnicdp.services.identity.linkage import charts
from omnicdp.services.identity.linkage.metrics import Quality
from omnicdp.services.identity.linkage.model import LinkageModel

if TYPE_CHECKING:
    from omnicdp.services.identity.linkage.train import TrainingResult

MODEL_NAME = "cdp-identity"
CHAMPION = "champion"
EXPERIMENT = "cdp-identity"
MODEL_DIR = "model"
MODEL_FILE = "model.json"  # ours: the Splink model with the threshold and guards
SPLINK_FILE = "splink_model.json"  # Splink's own settings JSON, loadable by Linker


def log_training(result: TrainingResult, uri: str, source: str = "") -> str:
    """Record a training as an MLflow run and register its model; returns the version."""
    client = _client(uri)
    with tracking.run(client, uri, EXPERIMENT, "identity-train", {"input": source}) as run:
        run_id = run.info.run_id
        for key, value in result.params.items():
            client.log_param(run_id, key, value)
        for key, value in {**result.metrics, "seconds": result.seconds}.items():
            client.log_metric(run_id, key, float(value))
        client.set_tag(run_id, "labelled", str(result.labelled).lower())
        with tempfile.TemporaryDirectory() as work:
            folder = Path(work) / MODEL_DIR
            folder.mkdir()
            result.model.save(folder / MODEL_FILE)
            (folder / SPLINK_FILE).write_text(
                json.dumps(result.model.splink_settings, indent=1), encoding="utf-8")
            client.log_artifacts(run_id, str(folder), MODEL_DIR)
            chart_dir = Path(work) / "charts"
            chart_dir.mkdir()
            (chart_dir / "match_weights.png").write_bytes(charts.match_weights_chart(
                result.model))
            (chart_dir / "m_u_parameters.png").write_bytes(charts.m_u_chart(result.model))
            client.log_artifacts(run_id, str(chart_dir), "charts")
    return tracking.register_version(
        client, MODEL_NAME, "omnicdp identity linkage (Splink comparison levels, rules first)",
        f"{run.info.artifact_uri}/{MODEL_DIR}", run_id)


def load_version(uri: str, version: str) -> LinkageModel:
    """A registered version's model."""
    import mlflow.artifacts

    client = _client(uri)
    try:
        model_version = client.get_model_version(MODEL_NAME, str(version))
    except Exception as error:  # noqa: BLE001 (MlflowException)
        raise NotFound(f"no version {version} of model {MODEL_NAME}") from error
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{model_version.source}/{MODEL_FILE}", tracking_uri=uri)
    return LinkageModel.load(Path(path), version=str(model_version.version))


def champion_version(uri: str) -> str | None:
    client = _client(uri)
    try:
        return str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION).version)
    except Exception:  # noqa: BLE001 (MlflowException: no model or no alias)
        return None


def load_champion(uri: str, fallback_to_default: bool = True) -> LinkageModel:
    """The champion model, for the identity service to load at start and on reload; the
    packaged default model while no version is champion (unless told not to)."""
    version = champion_version(uri)
    if version is not None:
        return load_version(uri, version)
    if fallback_to_default:
        return LinkageModel.load_default()
    raise NotFound(f"model {MODEL_NAME} has no {CHAMPION} version")


def serving_version(uri: str) -> str:
    """The version :func:`load_serving` would load now (``default`` for the packaged one)."""
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return "default"
    return champion_version(uri) or "default"


def load_serving(uri: str) -> LinkageModel:
    """What the identity service serves: the champion, or the packaged default model while
    none is promoted. An embedded store that was never created holds no champion, and is
    not created (nor MLflow imported) to find that out."""
    if tracking.embedded_store_missing(uri):
        return LinkageModel.load_default()
    return load_champion(uri)


@dataclass(frozen=True)
class Promotion:
    version: str
    previous: str | None
    promoted: bool
    candidate: Quality
    champion: Quality | None
    reason: str


def promote(uri: str, version: str, evaluate: Callable[[LinkageModel], Quality],
            force: bool = False) -> Promotion:
    """Move ``champion`` to ``version`` unless it scores a lower F1 than the current
    champion on the same evaluation (``evaluate`` links a labelled set with a model).
    ``force`` moves it anyway. Raises :class:`FailedPrecondition` when refused."""
    client = _client(uri)
    candidate_model = load_version(uri, version)
    previous = champion_version(uri)
    candidate = evaluate(candidate_model)
    champion = None
    if previous is not None and previous != candidate_model.version:
        champion = evaluate(load_version(uri, previous))
    regression = None
    if champion is not None and candidate.f1 < champion.f1:
        regression = (f"version {candidate_model.version} regresses: F1 {candidate.f1:.4f} < "
                      f"champion {previous}'s {champion.f1:.4f} on the evaluation set")
    reason = tracking.move_champion(client, MODEL_NAME, CHAMPION, candidate_model.version,
                                    candidate.to_dict(), regression, force,
                                    champion is not None)
    return Promotion(candidate_model.version, previous, True, candidate, champion, reason)

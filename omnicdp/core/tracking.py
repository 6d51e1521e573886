"""MLflow, as every model of omnicdp uses it (identity linkage ``cdp-identity``, lifetime
value ``cdp-ltv``): the embedded tracking store, a quiet client, one experiment per model,
runs that end FAILED when logging fails, and registered versions.

The embedded store is SQLite in the data dir (``tracking_uri(data_dir)``), artifacts
beside it; any MLflow tracking URI works. mlflow is imported only when a function runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omnicdp.core.errors import FailedPrecondition


def tracking_uri(data_dir: Path) -> str:
    """The embedded tracking store: SQLite in ``data_dir``."""
    return f"sqlite:///{Path(data_dir).resolve() / 'mlflow.db'}"


def embedded_store_missing(uri: str) -> bool:
    """True for an embedded store never created (it then holds no model, and finding that
    out needs neither mlflow nor a new database)."""
    return uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists()


def client(uri: str) -> Any:  # noqa: ANN401 (mlflow's MlflowClient)
    import logging

    from mlflow.tracking import MlflowClient

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(mlflow_client: Any, uri: str, name: str) -> str:  # noqa: ANN401
    """The experiment ``name``, created if missing (with an embedded store, its artifacts
    kept beside the database rather than in the working directory)."""
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):
        artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return mlflow_client.create_experiment(name, artifact_location=artifacts)


@contextmanager
def run(mlflow_client: Any, uri: str, experiment: str, name: str,  # noqa: ANN401
        tags: dict[str, str] | None = None) -> Iterator[Any]:
    """A run of ``experiment``: FINISHED when the block ends, FAILED if it raises."""
    started = mlflow_client.create_run(experiment_id(mlflow_client, uri, experiment),
                                       tags={"mlflow.runName": name, **(tags or {})})
    try:
        yield started
    except BaseException:
        mlflow_client.set_terminated(started.info.run_id, "FAILED")
        raise
    mlflow_client.set_terminated(started.info.run_id, "FINISHED")


def register_version(mlflow_client: Any, model_name: str, description: str,  # noqa: ANN401
                     source: str, run_id: str) -> str:
    """Register ``source`` (a run's artifact folder) as the next version of ``model_name``,
    creating the registered model first if needed; returns the version."""
    try:
        mlflow_client.get_registered_model(model_name)
    except Exception:  # noqa: BLE001 (MlflowException: not registered yet)
        mlflow_client.create_registered_model(model_name, description=description)
    return str(mlflow_client.create_model_version(model_name, source, run_id=run_id).version)


def move_champion(mlflow_client: Any, model_name: str, alias: str,  # noqa: ANN401
                  version: str, evaluation: Mapping[str, object], regression: str | None,
                  force: bool, had_champion: bool) -> str:
    """The promotion gate every model shares: tag ``version`` with its evaluation
    (``eval_KEY``), then move ``alias`` to it unless ``regression`` says how it does worse
    than the current champion and ``force`` is not given (:class:`FailedPrecondition`,
    ``MODEL_REGRESSES``); why it moved."""
    for key, value in evaluation.items():
        mlflow_client.set_model_version_tag(model_name, version, f"eval_{key}", str(value))
    if regression is not None and not force:
        raise FailedPrecondition(regression, reason="MODEL_REGRESSES")
    mlflow_client.set_registered_model_alias(model_name, alias, version)
    if regression is not None:
        return "forced"
    return "does not regress" if had_champion else "no champion before"

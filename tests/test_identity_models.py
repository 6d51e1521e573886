"""`cdp identity train | link | promote` on a real MLflow store (SQLite in a temp dir):
runs with their parameters, metrics and artifacts, a champion that a worse model cannot
replace unless forced, and links written one row per input record."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest

from omnicdp.cli.main import main
from omnicdp.services.identity.linkage import registry
from omnicdp.services.identity.linkage.model import LinkageModel
from omnicdp.services.identity.linkage.train import TrainingResult
from omnicdp.synth import generate_retailer


@pytest.fixture(scope="module")
def retailer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("retailer")
    generate_retailer(300, 21, out)
    return out


def _run(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 and "--json" in argv else None), \
        captured.err


def test_train_logs_a_run_and_registers_a_version(retailer: Path, tmp_path: Path,
                                                  capsys) -> None:
    code, result, err = _run(capsys, "identity", "train", str(retailer / "persons.csv"),
                             "--labels", str(retailer / "persons_truth.csv"),
                             "--data-dir", str(tmp_path), "--json")
    assert code == 0, err
    assert "estimating m from" in err  # progress on stderr
    assert result["version"] == "1" and result["labelled"] is True
    assert result["metrics"]["precision"] >= 0.95 and result["metrics"]["f1"] >= 0.85

    client = registry._client(registry.tracking_uri(tmp_path))
    version = client.get_model_version(registry.MODEL_NAME, "1")
    run = client.get_run(version.run_id)
    assert run.data.params["m_from"] == "silver labels"
    assert {"precision", "recall", "f1", "train_seconds"} <= set(run.data.metrics)
    artifacts = {a.path for folder in ("model", "charts")
                 for a in client.list_artifacts(run.info.run_id, folder)}
    assert artifacts == {"model/model.json", "model/splink_model.json",
                         "charts/match_weights.png", "charts/m_u_parameters.png"}
    assert (tmp_path / "mlflow.db").is_file() and (tmp_path / "mlartifacts").is_dir()
    loaded = registry.load_version(registry.tracking_uri(tmp_path), "1")
    assert loaded.version == "1" and loaded.splink_settings["comparisons"]

    # Without labels the run reports its agreement with the silver labels instead.
    code, result, err = _run(capsys, "identity", "train", str(retailer / "persons.csv"),
                             "--data-dir", str(tmp_path), "--json")
    assert code == 0, err
    assert result["version"] == "2" and result["labelled"] is False
    assert set(result["metrics"]) >= {"silver_precision", "silver_recall", "silver_f1"}


def _worse(model: LinkageModel) -> TrainingResult:
    """The same comparison levels with m and u swapped: evidence for a match counts
    against it, and the other way round."""
    document = copy.deepcopy(model.document)
    for comparison in document["splink"]["comparisons"]:
        for level in comparison["comparison_levels"]:
            if not level.get("is_null_level"):
                level["m_probability"], level["u_probability"] = (level["u_probability"],
                                                                  level["m_probability"])
    return TrainingResult(LinkageModel(document), {"m_u": "swapped"}, {}, False, 0.0)


def test_promote_refuses_a_worse_model_unless_forced(retailer: Path, tmp_path: Path,
                                                     capsys) -> None:
    uri = registry.tracking_uri(tmp_path)
    good = registry.log_training(TrainingResult(LinkageModel.load_default(), {}, {}, False,
                                                0.0), uri)
    worse = registry.log_training(_worse(LinkageModel.load_default()), uri)
    evaluation = ["--eval", str(retailer / "persons.csv"), "--labels",
                  str(retailer / "persons_truth.csv"), "--data-dir", str(tmp_path)]

    code, result, err = _run(capsys, "identity", "promote", good, *evaluation, "--json")
    assert code == 0, err
    assert result["promoted"] and result["previous"] is None
    assert registry.champion_version(uri) == good

    code, _, err = _run(capsys, "identity", "promote", worse, *evaluation, "--json")
    assert code != 0
    assert "regresses" in err
    assert registry.champion_version(uri) == good

    code, result, err = _run(capsys, "identity", "promote", worse, *evaluation, "--force",
                             "--json")
    assert code == 0, err
    assert result["reason"] == "forced" and result["previous"] == good
    assert result["candidate"]["f1"] < result["champion"]["f1"]
    assert registry.champion_version(uri) == worse
    assert registry.load_champion(uri).level_weights() != \
        LinkageModel.load_default().level_weights()


def test_link_writes_one_row_per_record_with_the_champion(retailer: Path, tmp_path: Path,
                                                          capsys) -> None:
    # No champion yet: the packaged default model links.
    out = tmp_path / "links.parquet"
    code, result, err = _run(capsys, "identity", "link", str(retailer / "persons.csv"),
                             "--out", str(out), "--data-dir", str(tmp_path), "--json")
    assert code == 0, err
    assert result["model_version"] == "default"
    links = pd.read_parquet(out)
    persons = pd.read_csv(retailer / "persons.csv", dtype=str)
    assert list(links.columns) == ["record_id", "customer_id", "match_probability"]
    assert links["record_id"].tolist() == persons["record_id"].tolist()
    assert result["customers"] == links["customer_id"].nunique() < len(links)
    placed = links["match_probability"].dropna()
    assert ((placed >= 0.9) & (placed <= 1.0)).all()

    # --train trains on the input, registers the model and links with it.
    csv_out = tmp_path / "links.csv"
    code, result, err = _run(capsys, "identity", "link", str(retailer / "persons.csv"),
                             "--out", str(csv_out), "--train", "--threshold", "0.95",
                             "--data-dir", str(tmp_path), "--json")
    assert code == 0, err
    assert result["model_version"] == "1" and result["threshold"] == 0.95
    assert len(pd.read_csv(csv_out)) == len(persons)


@pytest.mark.parametrize(("argv", "message"), [
    (["identity", "link", "{dir}/missing.csv", "--out", "{dir}/o.csv"], "does not exist"),
    (["identity", "link", "{dir}/persons.txt", "--out", "{dir}/o.csv"], ".csv or .parquet"),
    (["identity", "link", "{dir}/no_ids.csv", "--out", "{dir}/o.csv"], "no record_id"),
    (["identity", "link", "{dir}/no_ids.csv", "--out", "{dir}/o.json"], "--out"),
    (["identity", "link", "{dir}/no_ids.csv", "--out", "{dir}/o.csv", "--threshold", "1.5"],
     "--threshold"),
    (["identity", "train", "{dir}/no_ids.csv"], "no record_id"),
])
def test_bad_input_says_what_is_wrong(argv: list[str], message: str, tmp_path: Path,
                                      capsys) -> None:
    (tmp_path / "no_ids.csv").write_text("first_name,last_name\nИван,Петров\n")
    (tmp_path / "persons.txt").write_text("record_id\nr1\n")
    argv = [a.format(dir=tmp_path) for a in argv] + ["--data-dir", str(tmp_path)]
    code, _, err = _run(capsys, *argv)
    assert code == 2
    assert message in err

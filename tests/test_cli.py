"""The `cdp` command line: help everywhere, settings precedence, attribution on a file."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from omnicdp.cli.main import build_parser, main
from omnicdp.core import settings as config
from omnicdp.services.profile.settings import Settings as ProfileSettings


@pytest.mark.parametrize("argv", [
    ["--help"], ["up", "--help"], ["demo", "--help"], ["generate", "--help"],
    ["serve", "identity", "--help"], ["serve", "profile", "--help"],
    ["serve", "attribution", "--help"], ["serve", "gateway", "--help"],
    ["attribution", "run", "--help"], ["ltv", "fit", "--help"], ["ltv", "score", "--help"],
    ["ltv", "refit", "--help"], ["ltv", "promote", "--help"],
    ["audiences", "define", "--help"], ["audiences", "list", "--help"],
    ["audiences", "refresh", "--help"],
])
def test_every_subcommand_has_help(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 0
    assert "usage: cdp" in capsys.readouterr().out


def test_help_imports_no_service_runtime() -> None:
    """`cdp --help` builds the whole parser, yet loads no server, store or heavy library:
    a service's code is imported only when its command runs."""
    probe = ("import sys; from omnicdp.cli.main import build_parser; build_parser(); "
             "print('\\n'.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                                text=True).stdout.split())
    heavy = {"grpc", "duckdb", "fastapi", "numpy", "pandas", "splink", "mlflow", "psycopg",
             "opentelemetry", "omnicdp.api", "omnicdp.core.server", "omnicdp.synth"}
    assert not loaded & heavy, loaded & heavy
    services = {m for m in loaded if m.startswith("omnicdp.services.")}
    assert services and all(m.endswith(".settings") or m.count(".") == 2 for m in services), \
        services


def test_settings_come_from_flag_then_environment_then_default() -> None:
    parser = build_parser()
    args = parser.parse_args(["serve", "profile", "--address", "127.0.0.1:7001"])
    env = {"CDP_ADDRESS": "127.0.0.1:7002", "CDP_IDENTITY_ADDR": "identity:50051",
           "CDP_GRACE_SECONDS": "3"}
    settings = config.load(ProfileSettings, args, environ=env)
    assert settings.address == "127.0.0.1:7001"
    assert settings.identity_addr == "identity:50051"
    assert settings.grace_seconds == 3.0
    assert settings.data_dir == Path(".cdp")


def test_invalid_setting_is_refused_naming_flag_and_variable() -> None:
    with pytest.raises(SystemExit, match="--grace-seconds / CDP_GRACE_SECONDS"):
        config.load(ProfileSettings, environ={"CDP_GRACE_SECONDS": "soon"})


def test_secrets_are_masked_when_settings_are_printed() -> None:
    settings = config.load(ProfileSettings, environ={
        "CDP_DATABASE_URL": "postgresql://cdp:hunter2@db/cdp"})
    assert "hunter2" not in config.describe(settings)


def test_attribution_run_prints_the_contract_json(tmp_path: Path, capsys) -> None:
    path = tmp_path / "events.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "timestamp", "kind", "channel", "value", "event"])
        writer.writerow(["c1", "2026-03-01T10:00:00", "touch", "email", "0", "Email Opened"])
        writer.writerow(["c1", "2026-03-02T09:00:00", "conversion", "store", "1200", ""])
        writer.writerow(["c2", "2026-03-05", "conversion", "web", "300", ""])
    assert main(["attribution", "run", str(path), "--model", "last_touch", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "last_touch"
    assert report["total_conversions"] == 2
    contract = {name: {key: row[key] for key in ("conversions", "revenue")}
                for name, row in report["channels"].items()}
    assert contract == {"email": {"conversions": 1.0, "revenue": 1200.0},
                        "(direct)": {"conversions": 1.0, "revenue": 300.0}}


def test_attribution_run_reports_a_bad_file_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("customer_id,timestamp,kind,channel,value\nc1,yesterday,touch,email,0\n")
    result = subprocess.run([sys.executable, "-m", "omnicdp.cli", "attribution", "run", str(path),
                             "--model", "linear"], capture_output=True, text=True)
    assert result.returncode != 0
    assert "timestamp" in result.stderr and result.stdout == ""

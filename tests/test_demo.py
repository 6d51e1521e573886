"""`cdp demo`, the main job, end to end as a user runs it: a generated retailer through the
whole system, an identity model trained, promoted and served, lifetime value fitted, and
the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_main_job_and_serves_a_promoted_model(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "omnicdp.cli", "demo", "--customers", "80",
                          "--data-dir", str(tmp_path / "demo"), "--json"],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    events = (tmp_path / "demo" / "retailer" / "events.jsonl").read_text().splitlines()
    assert summary["ingestion"]["accepted"] == len(events)
    assert summary["ingestion"]["rejected"] == 0
    # The model was trained on the retailer, promoted, and the identity service reloaded it.
    assert summary["identity_model"]["version"] == "1"
    assert summary["identity_model"]["quality"]["precision"] >= 0.95
    assert "identity serves version 1" in out.stderr
    assert summary["identity"]["precision"] >= 0.95
    assert summary["attribution"]["total_conversions"] > 0
    report = Path(summary["report"]).read_text()
    assert "Identity model" in report and "cdp-identity version 1" in report
    # Lifetime value fitted on the purchases stored by the profile service, registered.
    assert summary["ltv"]["version"] == "1"
    assert 0 < summary["ltv"]["customers"] <= summary["ltv"]["purchases"]
    assert "Lifetime value (cdp-ltv 1)" in report
    # ...and its scores written to the profiles.
    assert summary["ltv"]["profile_scores"] == {
        "stored": summary["ltv"]["customers"], "unchanged": 0, "not_found": 0}

"""The committed generated package must be exactly what protos/ generates now."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_committed_generated_code_matches_the_protos(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out",
                    str(tmp_path)], check=True, capture_output=True)
    fresh, committed = _files(tmp_path / "cdp"), _files(ROOT / "cdp")
    assert sorted(fresh) == sorted(committed), "run `make protos` and commit the result"
    stale = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name],
                                                       shallow=False)]
    assert stale == [], f"stale generated files {stale}: run `make protos` and commit"


def test_generated_packages_follow_the_versioned_layout() -> None:
    protos = sorted(p.relative_to(ROOT / "protos") for p in (ROOT / "protos").rglob("*.proto"))
    assert protos, "no protos found"
    for proto in protos:
        area, version = proto.parts[1], proto.parts[2]
        assert version == "v1"
        text = (ROOT / "protos" / proto).read_text()
        assert f"package cdp.{area}.{version};" in text

"""The committed stubs are exactly what protos/ generates with the pinned generator."""

from __future__ import annotations

import filecmp
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "api" / "omnicdp" / "api"


def _files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}


def test_committed_generated_code_matches_the_protos(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out",
                    str(tmp_path)], check=True, capture_output=True)
    fresh, committed = _files(tmp_path / "omnicdp" / "api"), _files(GENERATED)
    assert sorted(fresh) == sorted(committed), "run `make protos` and commit the result"
    stale = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name],
                                                       shallow=False)]
    assert stale == [], f"stale generated files {stale}: run `make protos` and commit"


def test_proto_packages_follow_the_versioned_layout() -> None:
    protos = sorted(p.relative_to(ROOT / "protos") for p in (ROOT / "protos").rglob("*.proto"))
    assert protos, "no protos found"
    for proto in protos:
        root, area, version = proto.parts[:3]
        assert (root, version) == ("omnicdp", "v1")
        text = (ROOT / "protos" / proto).read_text()
        assert f"package omnicdp.{area}.{version};" in text
        assert (GENERATED / area / version / f"{proto.stem}_pb2.py").exists()


def _floor(requirements: list[str], name: str) -> tuple[int, ...]:
    for requirement in requirements:
        match = re.fullmatch(rf"{re.escape(name)}>=([\d.]+)(,<\d+)?", requirement)
        if match:
            return tuple(int(part) for part in match.group(1).split("."))
    raise AssertionError(f"no '{name}>=' floor in {requirements}")


def test_dependency_floors_admit_only_runtimes_the_generated_code_accepts() -> None:
    """The generated modules refuse older runtimes at import; the floors must say so."""
    sample = (GENERATED / "common" / "v1" / "common_pb2.py").read_text()
    checked = re.search(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,"
                        r"\s*(\d+),\s*(\d+),\s*(\d+),", sample)
    assert checked, "the generated code no longer checks its protobuf runtime"
    protobuf_needed = tuple(int(part) for part in checked.groups())
    grpc_sample = (GENERATED / "identity" / "v1" / "identity_pb2_grpc.py").read_text()
    grpc_needed = tuple(int(part) for part in re.search(
        r"GRPC_GENERATED_VERSION = '([\d.]+)'", grpc_sample).group(1).split("."))
    for pyproject in (ROOT / "pyproject.toml", ROOT / "api" / "pyproject.toml"):
        requirements = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
        assert _floor(requirements, "protobuf") >= protobuf_needed, pyproject
        assert _floor(requirements, "grpcio") >= grpc_needed, pyproject


def test_the_generator_is_pinned_to_the_version_that_made_the_stubs() -> None:
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["dev"]
    pinned = [r.split("==")[1] for r in dev if r.startswith("grpcio-tools==")]
    assert pinned, "pyproject.toml's dev extra must pin grpcio-tools==X.Y.Z"
    sample = (GENERATED / "identity" / "v1" / "identity_pb2_grpc.py").read_text()
    assert f"GRPC_GENERATED_VERSION = '{pinned[0]}'" in sample

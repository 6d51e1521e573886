"""What the two distributions install: one import root, and stubs that stand alone.

Builds the main wheel and the stubs wheel from the checkout, checks their top-level import
names and contents, then installs the stubs wheel alone into a clean virtual environment and
runs api/README.md's example there against running services.
"""

from __future__ import annotations

import email.parser
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from omnicdp.services.profile.client import EventIn, ProfileClient

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("fastapi", "duckdb", "mlflow", "splink", "opentelemetry-sdk", "pandas", "omnicdp")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both wheels, built from a copy of the checkout (builds leave files behind)."""
    work = tmp_path_factory.mktemp("build")
    source = work / "src"
    # The source tree as git sees it (tracked, or new and not ignored): no virtualenvs,
    # caches or build leftovers of the checkout.
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = work / "dist"
    for project in (source / "api", source):
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--no-build-isolation", "--wheel-dir", str(out), str(project)],
                       check=True, capture_output=True)
    found = {p.name.split("-")[0]: p for p in out.glob("*.whl")}
    assert set(found) == {"omnicdp", "omnicdp_api"}, found
    return {"main": found["omnicdp"], "api": found["omnicdp_api"]}


def _files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return [n for n in archive.namelist() if ".dist-info/" not in n]


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(archive.read(name).decode())


def _top_level(files: list[str]) -> set[str]:
    return {name.split("/")[0].removesuffix(".py") for name in files}


def test_main_wheel_installs_only_the_omnicdp_import_root(wheels) -> None:
    files = _files(wheels["main"])
    assert _top_level(files) == {"omnicdp"}
    # A namespace package shared with omnicdp-api: neither wheel may own omnicdp/__init__.py.
    assert "omnicdp/__init__.py" not in files
    assert not [f for f in files if f.startswith("omnicdp/api/")]
    # Every hand-written module is installed, the services under omnicdp.services.
    expected = {str(p.relative_to(ROOT)) for p in (ROOT / "omnicdp").rglob("*.py")}
    expected |= {"omnicdp/" + str(p.relative_to(ROOT)) for p in (ROOT / "services").rglob("*.py")}
    expected = {f for f in expected if "__pycache__" not in f}
    # A fresh install links with the packaged identity model.
    expected.add("omnicdp/services/identity/linkage/default_model.json")
    assert expected <= set(files), sorted(expected - set(files))


def test_stubs_wheel_holds_the_generated_api_and_depends_on_grpcio_and_protobuf_only(
        wheels) -> None:
    files = _files(wheels["api"])
    assert _top_level(files) == {"omnicdp"}
    assert all(f.startswith("omnicdp/api/") for f in files), files
    assert "omnicdp/__init__.py" not in files
    for area in ("common", "identity", "profile", "attribution"):
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert f"omnicdp/api/{area}/v1/{area}{suffix}" in files
    assert "omnicdp/api/py.typed" in files
    requires = {re.split(r"[<>=!~ ;]", r, maxsplit=1)[0]
                for r in _metadata(wheels["api"]).get_all("Requires-Dist")}
    assert requires == {"grpcio", "protobuf"}


def test_main_wheel_requires_the_stubs_of_its_own_version(wheels) -> None:
    api_version = tomllib.loads((ROOT / "api" / "pyproject.toml").read_text())["project"][
        "version"]
    assert f"omnicdp-api=={api_version}" in _metadata(wheels["main"]).get_all("Requires-Dist")


def _readme_example() -> str:
    text = (ROOT / "api" / "README.md").read_text()
    return re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)


def test_stubs_wheel_alone_calls_running_services(wheels, services, tmp_path: Path) -> None:
    """An internal caller's environment: the stubs wheel and its two dependencies only."""
    venv = tmp_path / "caller"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    str(wheels["api"])], check=True, capture_output=True)
    installed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"],
                               check=True, capture_output=True, text=True).stdout.lower()
    for package in HEAVY:
        assert not re.search(rf"^{package}==", installed, re.MULTILINE), installed
    isolated = subprocess.run([str(python), "-c", "import omnicdp.services"],
                              capture_output=True, text=True)
    assert isolated.returncode != 0 and "ModuleNotFoundError" in isolated.stderr

    profile_addr = services.address(services.profile)
    client = ProfileClient(profile_addr)
    try:
        [result] = client.ingest([EventIn(
            message_id="pos-1", type="identify", channel="store",
            identifiers={"phone": "+7 916 123-45-67"}, traits={"first_name": "Виктор"})])
    finally:
        client.close()
    assert result.status == "accepted"

    script = tmp_path / "caller.py"
    script.write_text(_readme_example())
    env = {"PATH": os.environ["PATH"], "CDP_IDENTITY_ADDR": services.address(services.identity),
           "CDP_PROFILE_ADDR": profile_addr}
    run = subprocess.run([str(python), str(script)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [result.customer_id, "1", "Виктор"]

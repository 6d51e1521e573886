"""Generate the Python code for protos/ into the stubs distribution (with .pyi stubs).

    python scripts/gen_protos.py            # regenerate api/omnicdp/api/ in the repo
    python scripts/gen_protos.py --out DIR  # generate DIR/omnicdp/api/ (the freshness test)

The proto packages are ``omnicdp.<area>.v1``; their Python modules live one level down, in
``omnicdp.api.<area>.v1``, so that the generated API is one package of its own inside the
``omnicdp`` import root. protoc names modules after proto file paths, so the imports between
generated modules, and the module names they register, are rewritten here, as temporalio's
``scripts/gen_protos.py`` does for ``temporalio.api``. The wire names (services, messages,
file names in the descriptors) stay ``omnicdp.<area>.v1``.

The generator is pinned: the grpcio-tools version in pyproject.toml's ``dev`` extra is the
only one this script runs with, so the committed code and the freshness test agree.
The generated package is committed and never edited by hand; tests/test_protos_fresh.py
fails when it differs from what the protos generate now.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import tomllib
from importlib import metadata, resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
API_DIST = ROOT / "api"
PROTO_ROOT = "omnicdp"  # the proto packages' first component and protoc's output folder
PACKAGE = ("omnicdp", "api")  # where the Python modules go
HEADER = "# Generated from protos/ by scripts/gen_protos.py. Do not edit.\n"

# `from omnicdp.identity.v1 import ...` / `import omnicdp.identity.v1.identity_pb2`
_IMPORT = re.compile(rf"^(\s*(?:from|import) ){PROTO_ROOT}\.", re.MULTILINE)
# BuildTopDescriptorsAndMessages(DESCRIPTOR, 'omnicdp.identity.v1.identity_pb2', _globals)
_MODULE_NAME = re.compile(rf"'{PROTO_ROOT}\.((?:\w+\.)*\w+_pb2)'")


def pinned_generator_version() -> str:
    """The exact grpcio-tools version pyproject.toml pins for code generation."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["optional-dependencies"]["dev"]:
        name, _, version = requirement.partition("==")
        if name.strip() == "grpcio-tools":
            return version.strip()
    raise SystemExit("pyproject.toml: the dev extra must pin grpcio-tools==X.Y.Z")


def check_generator() -> None:
    pinned, installed = pinned_generator_version(), metadata.version("grpcio-tools")
    if installed != pinned:
        raise SystemExit(f"grpcio-tools {installed} is installed but {pinned} is pinned in "
                         "pyproject.toml; run `make protos` in the project's .venv")


def _rewrite(text: str) -> str:
    dotted = ".".join(PACKAGE)
    text = _IMPORT.sub(rf"\g<1>{dotted}.", text)
    return _MODULE_NAME.sub(rf"'{dotted}.\g<1>'", text)


def generate(out: Path) -> Path:
    """Write the generated package under ``out`` and return its directory."""
    proto_files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = str(resources.files("grpc_tools") / "_proto")
    target = out.joinpath(*PACKAGE)
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc", f"-I{PROTOS}", f"-I{include}",
            f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}",
            *proto_files,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(Path(tmp) / PROTO_ROOT, target)
    for path in sorted(target.rglob("*.py*")):
        path.write_text(_rewrite(path.read_text()))
    for directory in [target, *(d for d in target.rglob("*") if d.is_dir())]:
        (directory / "__init__.py").write_text(HEADER)
    (target / "py.typed").write_text("")  # PEP 561: the .pyi stubs are the types
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=API_DIST,
                        help="directory to write omnicdp/api/ into (default: api/)")
    args = parser.parse_args(argv)
    check_generator()
    target = generate(args.out)
    print(f"generated {target} from {PROTOS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Generate the Python code for protos/ into the `cdp` package (with .pyi stubs).

    python scripts/gen_protos.py            # regenerate into the repo
    python scripts/gen_protos.py --out DIR  # generate elsewhere (the freshness test does)

The generated package is committed and never edited by hand; tests/test_protos_fresh.py
fails when it differs from what the protos generate now.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGE = "cdp"
HEADER = "# Generated from protos/ by scripts/gen_protos.py. Do not edit.\n"


def generate(out: Path) -> None:
    proto_files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    include = str(resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc", f"-I{PROTOS}", f"-I{include}",
            f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}",
            *proto_files,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        target = out / PACKAGE
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(Path(tmp) / PACKAGE, target)
    for directory in [target, *(d for d in target.rglob("*") if d.is_dir())]:
        (directory / "__init__.py").write_text(HEADER)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="directory to write cdp/ into")
    args = parser.parse_args(argv)
    generate(args.out)
    print(f"generated {PACKAGE}/ from {PROTOS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the `cdp` model commands share: progress and errors on stderr, and where the MLflow
store is (``--data-dir``, ``--tracking-uri``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from omnicdp.core.errors import DomainError


def progress(prefix: str) -> Callable[[str], None]:
    """A reporter writing ``PREFIX: [  elapsed s] message`` lines to stderr."""
    started = time.monotonic()

    def report(message: str) -> None:
        print(f"{prefix}: [{time.monotonic() - started:6.1f} s] {message}", file=sys.stderr,
              flush=True)
    return report


def fail(prefix: str, error: DomainError) -> int:
    """Print a domain error, and each field it names, to stderr; the exit code."""
    print(f"{prefix}: {error}", file=sys.stderr)
    for violation in error.violations:
        print(f"  {violation}", file=sys.stderr)
    return 2


def add_tracking_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path(".cdp"),
                        help="where the embedded MLflow store lives (default ./.cdp, as "
                             "`cdp up` uses)")
    parser.add_argument("--tracking-uri", default="",
                        help="MLflow tracking URI (default: SQLite in DATA_DIR)")


def tracking(args: argparse.Namespace) -> str:
    """The MLflow tracking URI the arguments name (the data dir created if needed)."""
    from omnicdp.core.tracking import tracking_uri

    if args.tracking_uri:
        return args.tracking_uri
    args.data_dir.mkdir(parents=True, exist_ok=True)
    return tracking_uri(args.data_dir)

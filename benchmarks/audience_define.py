"""Defining and refreshing audiences on a large store: what ``PutAudience`` and
``RefreshAudiences`` cost when every customer is evaluated.

Writes ``--profiles`` customers with ``--events`` events among them into a profile store
through its own write path (``stored_profiles.py``; embedded DuckDB, or PostgreSQL with
``--database-url``: a database of its own, dropped after), then defines the five kinds of
audience ``benchmarks/audiences.py`` uses (event with property tests, exclusion and
consent; "did not buy" with counts; a trait; a counter; a score), each timed, and refreshes
them all, timed. In-process, no gRPC: the store's own cost. The preloaded customers have
no consents, no scores and no Moscow among their cities, so three of the audiences end
empty; evaluating them reads and tests every candidate all the same.

    .venv/bin/python -m benchmarks.audience_define --profiles 100000 --events 1000000 \
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.audiences import definitions
from benchmarks.output import print_result
from benchmarks.stored_people import own_database
from benchmarks.stored_profiles import preload, stderr_progress
from omnicdp.services.profile.audiences.book import AudienceBook
from omnicdp.services.profile.store import open_store

#: Windows reaching back over the whole generated history: every matching event is read.
DAYS = 3650


def run(args: argparse.Namespace, work_dir: Path, database_url: str) -> dict:
    result: dict = {"backend": "postgres" if database_url else "duckdb",
                    "profiles stored": args.profiles, "events stored": args.events}
    store = open_store(database_url, work_dir)
    try:
        began = time.perf_counter()
        preload(store, args.profiles, args.events, args.seed, stderr_progress)
        if database_url:  # statistics, as autovacuum keeps them (a bulk load outruns it)
            store._run(lambda session: session.execute("ANALYZE"), write=True)
        result["preload s"] = round(time.perf_counter() - began, 1)
        book = AudienceBook(store)
        for name, definition in definitions(5, DAYS).items():
            began = time.perf_counter()
            state = book.put(name, definition)
            result[f"define {name} s"] = round(time.perf_counter() - began, 2)
            result[f"define {name} members"] = state.members
        began = time.perf_counter()
        book.refresh([])
        result["refresh all five s"] = round(time.perf_counter() - began, 2)
    finally:
        store.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default="",
                        help="PostgreSQL (default: embedded DuckDB)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work, own_database(args.database_url) as url:
        result = run(args, Path(work), url)
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

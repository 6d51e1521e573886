"""Throughput of identity resolution on synthetic retailer events, on a store that may
already hold many records.

Generates a retailer with :func:`omnicdp.synth.generate_retailer` in a temporary folder,
optionally stores ``--stored`` synthetic people first (unrelated to the retailer, each one
record with names, birth date, address, e-mail and phone, its identifiers and its keys in
the blocking index, bulk-loaded as a year of history would be:
``benchmarks/stored_people.py``), then resolves every event of the retailer in
batches (500 by default, the identity service's largest) and prints records/s, batch
latencies and the process's peak RSS:

    .venv/bin/python -m benchmarks.identity_resolve --customers 2000
    .venv/bin/python -m benchmarks.identity_resolve --stored 1000000 --backend duckdb
    .venv/bin/python -m benchmarks.identity_resolve --stored 1000000 --backend postgres \
        --database-url postgresql://postgres@127.0.0.1:5432/postgres

The PostgreSQL run creates a database of its own on that server and drops it afterwards.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from benchmarks.output import print_result
from benchmarks.stored_people import open_store, percentile, person, preload
from omnicdp.services.identity.linkage.model import LinkageModel
from omnicdp.services.identity.matching import Matcher
from omnicdp.services.identity.resolver import IdentityRecord, Resolver
from omnicdp.synth import generate_retailer


def read_records(events_path: Path, limit: int | None = None) -> Iterator[IdentityRecord]:
    """One record per event: its identifiers, observed at its timestamp."""
    with events_path.open(encoding="utf-8") as lines:
        for count, line in enumerate(lines):
            if limit is not None and count >= limit:
                return
            event = json.loads(line)
            yield IdentityRecord(
                record_id=event["message_id"],
                identifiers=event.get("identifiers") or {},
                observed_at=datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")),
                source=event.get("source", ""),
                traits={k: v for k, v in (event.get("traits") or {}).items()
                        if isinstance(v, str)},
            )


def batches(records: list[IdentityRecord], size: int) -> Iterator[list[IdentityRecord]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]


def run(customers: int, seed: int, batch_size: int, limit: int | None, work_dir: Path,
        backend: str = "duckdb", stored: int = 0, database_url: str = "",
        linking: str = "model") -> dict:
    summary = generate_retailer(customers, seed, work_dir / "retailer")
    records = list(read_records(summary.events_path, limit))
    latencies: list[float] = []
    resolved = rejected = 0
    model_matcher = Matcher(LinkageModel.load_default())
    if stored:
        print(f"generating {stored} known people", file=sys.stderr)
    rng = random.Random(seed)
    people = [person(rng, number, apart=True) for number in range(stored)]
    with open_store(backend, work_dir, database_url) as store:
        preload_seconds = preload(store, model_matcher, people)
        del people
        matcher = model_matcher if linking == "model" else None
        resolver = Resolver(store, matcher=matcher)
        started, cpu_started = time.perf_counter(), time.process_time()
        for batch in batches(records, batch_size):
            batch_started = time.perf_counter()
            resolutions = resolver.resolve(batch)
            latencies.append(time.perf_counter() - batch_started)
            for resolution in resolutions:
                if resolution.customer_id is None:
                    rejected += 1
                else:
                    resolved += 1
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        created = store.count_customers(include_merged=True)
        live = store.count_customers()
    return {
        "backend": backend,
        "linking": linking,
        "records stored before": stored,
        "preload seconds": round(preload_seconds, 1),
        "true persons": customers,
        "records": len(records),
        "rejected": rejected,
        "batch size": batch_size,
        "seconds": round(seconds, 2),
        "records/s": round(len(records) / seconds) if seconds else 0,
        # CPU of the process (DuckDB's threads included): what a loaded machine does not
        # distort as it does seconds.
        "CPU seconds": round(cpu_seconds, 2),
        "p50 batch ms": round(statistics.median(latencies) * 1000, 1) if latencies else 0,
        "p95 batch ms": round(percentile(latencies, 0.95) * 1000, 1) if latencies else 0,
        "customers created": created,
        "customers live": live,
        "peak RSS MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000, help="true persons to generate")
    parser.add_argument("--seed", type=int, default=7, help="generator seed")
    parser.add_argument("--batch-size", type=int, default=500, help="records per resolve()")
    parser.add_argument("--limit", type=int, default=None, help="resolve only the first N events")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="keep files here instead of a temp dir"
    )
    parser.add_argument("--backend", choices=("duckdb", "postgres"), default="duckdb")
    parser.add_argument("--linking", choices=("model", "rules"), default="model",
                        help="as the service's CDP_LINKING (default: rules, then the model)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--stored", type=int, default=0,
                        help="synthetic records stored before the retailer is resolved")
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL server (a database of the run's own is created)")
    args = parser.parse_args(argv)
    options = {"backend": args.backend, "stored": args.stored,
               "database_url": args.database_url, "linking": args.linking}
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        (args.work_dir / "identity.duckdb").unlink(missing_ok=True)
        (args.work_dir / "identity.duckdb.wal").unlink(missing_ok=True)
        result = run(args.customers, args.seed, args.batch_size, args.limit, args.work_dir,
                     **options)
    else:
        with tempfile.TemporaryDirectory(prefix="identity-bench-") as work_dir:
            result = run(args.customers, args.seed, args.batch_size, args.limit, Path(work_dir),
                         **options)
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of deterministic identity resolution on synthetic retailer events.

Generates a retailer with :func:`omnicdp.synth.generate_retailer` in a temporary folder,
resolves every event's identifiers in batches (500 by default, the identity service's
largest) against a fresh DuckDB *file*, and prints records/s and batch latencies:

    .venv/bin/python -m benchmarks.identity_resolve --customers 2000 --seed 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from omnicdp.services.identity.resolver import DeterministicResolver, IdentityRecord
from omnicdp.services.identity.store.duckdb import DuckDBIdentityStore
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
            )


def batches(records: list[IdentityRecord], size: int) -> Iterator[list[IdentityRecord]]:
    for start in range(0, len(records), size):
        yield records[start : start + size]


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def run(customers: int, seed: int, batch_size: int, limit: int | None, work_dir: Path) -> dict:
    summary = generate_retailer(customers, seed, work_dir / "retailer")
    records = list(read_records(summary.events_path, limit))
    latencies: list[float] = []
    resolved = rejected = 0
    with DuckDBIdentityStore(work_dir / "identity.duckdb") as store:
        resolver = DeterministicResolver(store)
        started = time.perf_counter()
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
        created = store.count_customers(include_merged=True)
        live = store.count_customers()
    return {
        "true persons": customers,
        "records": len(records),
        "rejected": rejected,
        "batch size": batch_size,
        "seconds": round(seconds, 2),
        "records/s": round(len(records) / seconds) if seconds else 0,
        "p50 batch ms": round(statistics.median(latencies) * 1000, 1) if latencies else 0,
        "p95 batch ms": round(percentile(latencies, 0.95) * 1000, 1) if latencies else 0,
        "customers created": created,
        "customers live": live,
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
    args = parser.parse_args(argv)
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        (args.work_dir / "identity.duckdb").unlink(missing_ok=True)
        (args.work_dir / "identity.duckdb.wal").unlink(missing_ok=True)
        result = run(args.customers, args.seed, args.batch_size, args.limit, args.work_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="identity-bench-") as work_dir:
            result = run(args.customers, args.seed, args.batch_size, args.limit, Path(work_dir))
    width = max(len(name) for name in result)
    for name, value in result.items():
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Profile lookups by identifier, over gRPC and over HTTP, with a retailer's history stored.

Starts the system as ``cdp up`` does (DuckDB, or PostgreSQL with ``--database-url``: a
database of its own is made there and dropped after), with either a retailer made by
``cdp generate`` loaded through the gateway as ``retailer_load`` does (``--retailer``), or
``--profiles`` customers with ``--events`` events among them written into the profile store
before it starts (``stored_profiles.py``: through the store's own write path, so the rows
are what ingestion builds; lookups ask no other service, so identity stays empty). Then it
looks profiles up by e-mail (a fixed-seed sample): ``LookupProfile`` over gRPC and
``GET /v1/profiles:lookup`` over HTTP (keep-alive connections), from 1 and from
``--clients`` concurrent clients. Reports p50/p99 latency and lookups/s for each:

    .venv/bin/python -m benchmarks.profile_lookup --retailer /tmp/r2k --lookups 2000
    .venv/bin/python -m benchmarks.profile_lookup --profiles 100000 --events 1000000 \
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

The two passes over the same sample differ: the first reads every profile from storage,
the second (concurrent) finds DuckDB's read cache warm, so both are reported.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import httpx

from benchmarks.output import print_result
from benchmarks.retailer_load import load
from benchmarks.stored_people import own_database
from benchmarks.stored_profiles import preload, stderr_progress
from omnicdp.cli.supervisor import Stack
from omnicdp.services.profile.client import ProfileClient
from omnicdp.services.profile.store import open_store


def sample_emails(events_path: Path, count: int, seed: int) -> list[str]:
    emails = sorted({e["identifiers"]["email"] for e in map(json.loads, events_path.open())
                     if e.get("identifiers", {}).get("email")})
    return random.Random(seed).choices(emails, k=count)


def measure(lookup_factory, values: list[str], clients: int) -> dict:
    """Latencies of looking every value up, split among ``clients`` threads."""
    latencies: list[float] = []
    misses = [0]
    lock = threading.Lock()

    def work(part: list[str]) -> None:
        lookup, close = lookup_factory()
        mine, missed = [], 0
        try:
            for value in part:
                started = time.perf_counter()
                missed += not lookup(value)
                mine.append(time.perf_counter() - started)
        finally:
            close()
        with lock:
            latencies.extend(mine)
            misses[0] += missed

    parts = [values[i::clients] for i in range(clients)]
    began = time.perf_counter()
    threads = [threading.Thread(target=work, args=(p,)) for p in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {"p50 ms": round(statistics.median(latencies) * 1000, 2),
            "p99 ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2),
            "lookups/s": round(len(latencies) / elapsed), "not found": misses[0]}


def _preloaded(args: argparse.Namespace, data_dir: Path, database_url: str) -> list[str]:
    store = open_store(database_url, data_dir)
    try:
        people = preload(store, args.profiles, args.events, args.seed, stderr_progress)
    finally:
        store.close()
    return random.Random(args.seed).choices([email for email, _ in people], k=args.lookups)


def run(args: argparse.Namespace, work_dir: Path, database_url: str) -> dict:
    env = {"OTEL_TRACES_EXPORTER": "none"}
    if database_url:
        env["CDP_DATABASE_URL"] = database_url
    result: dict = {"backend": "postgres" if database_url else "duckdb"}
    values: list[str] = []
    if args.profiles:
        began = time.perf_counter()
        values = _preloaded(args, work_dir / "system", database_url)
        result["profiles stored"] = args.profiles
        result["events stored"] = args.events
        result["preload s"] = round(time.perf_counter() - began, 1)
    stack = Stack(data_dir=work_dir / "system", env=env)
    stack.start(progress=lambda message: print(message, file=sys.stderr))
    try:
        if args.retailer:
            loaded = load(stack.gateway_url, stack.api_key or "",
                          args.retailer / "events.jsonl", 1, progress=False)
            result["events loaded"] = loaded["accepted"]
            values = sample_emails(args.retailer / "events.jsonl", args.lookups, args.seed)

        def grpc_lookup():
            client = ProfileClient(stack.addresses["profile"], 10)

            def lookup(value: str) -> bool:
                try:
                    client.lookup_profile("email", value)
                    return True
                except Exception:  # noqa: BLE001 (a miss is counted, not fatal)
                    return False
            return lookup, client.close

        def http_lookup():
            client = httpx.Client(base_url=stack.gateway_url, timeout=10, headers={
                "Authorization": f"Bearer {stack.api_key}"})

            def lookup(value: str) -> bool:
                response = client.get("/v1/profiles:lookup?type=email&value="
                                      + urllib.parse.quote(value))
                return response.status_code == 200
            return lookup, client.close

        for name, factory in (("grpc", grpc_lookup), ("http", http_lookup)):
            measure(factory, values[:50], 1)  # warm up
            for clients in (1, args.clients):
                for key, value in measure(factory, values, clients).items():
                    result[f"{name} {clients} client(s) {key}"] = value
    finally:
        stack.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    history = parser.add_mutually_exclusive_group(required=True)
    history.add_argument("--retailer", type=Path,
                         help="a retailer made by `cdp generate`, loaded through the gateway")
    history.add_argument("--profiles", type=int,
                         help="customers written into the profile store before it starts")
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="events among --profiles customers")
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default="",
                        help="PostgreSQL for identity and profile (default: embedded DuckDB)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work, own_database(args.database_url) as url:
        result = run(args, Path(work), url)
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

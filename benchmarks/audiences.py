"""Ingest with audiences evaluated on ingest, against ingest without audiences.

Loads the same retailer (made by ``cdp generate``) twice through the partner gateway, as
``retailer_load`` does, each time into a fresh system (``cdp up``'s processes; embedded
DuckDB, or PostgreSQL with ``--database-url``, a fresh database each run): first with no
audience defined, then with ``--audiences`` defined before the first event, so that every
batch's acknowledgement includes their membership upkeep. Reports events/s of both, their
ratio, and the members each audience ended with:

    .venv/bin/cdp generate --customers 2000 --seed 7 --out /tmp/r2k
    .venv/bin/python -m benchmarks.audiences --retailer /tmp/r2k --audiences 5

The audiences are the kinds the rules allow: events with property tests and an exclusion
and a consent (the sofa retargeting audience), "did not buy" (max_count 0) with counts, a
trait, a counter and a score; their windows reach back over the whole generated history
(the retailer's dates are in the past), so every matching event is read: the worst case.
Past five, the same kinds again with other names.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.output import print_result
from benchmarks.retailer_load import load
from benchmarks.stored_people import own_database
from omnicdp.cli.supervisor import Stack
from omnicdp.services.profile.client import AudienceClient


def definitions(count: int, days: int) -> dict[str, dict[str, Any]]:
    """``count`` audiences whose windows span ``days``."""
    kinds = {
        "sofa-retargeting": {
            "include": [{"event": {"name": "Product Viewed", "within_days": days, "where": [
                {"property": "category", "op": "eq", "value": "sofas"}]}}],
            "exclude": [{"event": {"name": "Order Completed", "within_days": days, "where": [
                {"property": "products.category", "op": "eq", "value": "sofas"}]}}],
            "consent": {"purpose": "ad_platform_transfer"}},
        "browsers-not-buyers": {"include": [
            {"event": {"name": "Product Viewed", "min_count": 3}},
            {"event": {"name": "Order Completed", "within_days": days, "max_count": 0}}]},
        "moscow": {"include": [{"trait": {"name": "city", "op": "eq", "value": "Moscow"}}]},
        "store-buyers": {"include": [{"counter": {"name": "orders_store", "op": "gte",
                                                  "value": 1}}]},
        "valuable": {"include": [{"score": {"name": "ltv_clv", "op": "gte", "value": 10000}}]},
    }
    names = list(kinds)
    return {(names[i % len(names)] + (f"-{i // len(names)}" if i >= len(names) else "")):
            kinds[names[i % len(names)]] for i in range(count)}


def history_days(events_path: Path) -> int:
    """Days from the retailer's first event to now, so windows cover its whole history."""
    first = min(json.loads(line)["timestamp"] for line in events_path.open())
    began = datetime.fromisoformat(first.replace("Z", "+00:00"))
    return min(3650, (datetime.now(UTC) - began).days + 2)


def one_run(args: argparse.Namespace, work_dir: Path, audiences: dict[str, dict],
            database_url: str) -> dict:
    env = {"OTEL_TRACES_EXPORTER": "none", "CDP_AUDIENCE_REFRESH_SECONDS": "0"}
    if database_url:
        env["CDP_DATABASE_URL"] = database_url
    stack = Stack(data_dir=work_dir / "system", env=env)
    stack.start(progress=lambda message: print(message, file=sys.stderr))
    try:
        client = AudienceClient(stack.addresses["profile"], 60)
        try:
            for name, definition in audiences.items():
                client.put(name, definition)
            result = load(stack.gateway_url, stack.api_key or "",
                          args.retailer / "events.jsonl", args.clients, progress=not args.json)
            result["members"] = {name: client.get(name).members for name in audiences}
        finally:
            client.close()
    finally:
        stack.stop()
    return result


def run(args: argparse.Namespace, work_dir: Path) -> dict:
    days = history_days(args.retailer / "events.jsonl")
    results = {}
    for label, audiences in (("none", {}),
                             (f"{args.audiences} audiences", definitions(args.audiences, days))):
        print(f"loading with {label}", file=sys.stderr)
        run_dir = work_dir / label.replace(" ", "-")
        if args.database_url:
            with own_database(args.database_url) as url:
                results[label] = one_run(args, run_dir, audiences, url)
        else:
            results[label] = one_run(args, run_dir, audiences, "")
    none, with_audiences = results.values()
    return {"backend": "postgres" if args.database_url else "duckdb",
            "clients": args.clients, "events": none["events"],
            "events/s without audiences": none["events/s"],
            f"events/s with {args.audiences} audiences": with_audiences["events/s"],
            "with / without": round(with_audiences["events/s"] / none["events/s"], 2),
            "batch p50 ms without / with": f"{none['batch p50 ms']} / "
                                           f"{with_audiences['batch p50 ms']}",
            "batch p95 ms without / with": f"{none['batch p95 ms']} / "
                                           f"{with_audiences['batch p95 ms']}",
            "members": with_audiences["members"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retailer", type=Path, required=True,
                        help="a retailer made by `cdp generate`")
    parser.add_argument("--audiences", type=int, default=5)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL server's admin URL: each run gets a fresh database "
                             "on it (default: embedded DuckDB)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="audiences-bench-") as work_dir:
        result = run(args, Path(work_dir))
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

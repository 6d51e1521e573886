"""Loading a retailer's history through the partner gateway, as a partner would.

Generates the synthetic retailer (20,000 customers, about 900k events, by default), starts
the whole system as ``cdp up`` does (embedded DuckDB by default, or PostgreSQL for identity
and profile with ``--database-url``), and sends every event through ``POST /v1/events`` in
batches of 500 from ``--clients`` concurrent clients, in the file's (time) order. Reports
events/s overall and over the first and the last 100k events (no write-path step may cost in
proportion to the stored history), batch latencies, and each process's peak RSS and CPU
time per event (what each service costs, so the overall rate's ceiling on the machine's cores):

    .venv/bin/python -m benchmarks.retailer_load --customers 20000 --clients 1
    .venv/bin/python -m benchmarks.retailer_load --customers 20000 --clients 4
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from benchmarks.output import print_result
from omnicdp.cli.supervisor import Stack
from omnicdp.synth import generate_retailer

BATCH = 500
WINDOW = 100_000


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the process's peak resident set size."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU time the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)


def post(url: str, key: str, body: bytes) -> dict:
    request = urllib.request.Request(f"{url}/v1/events", data=body, method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    for attempt in range(20):
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            # Back off and retry as a partner's client would: a retried batch stores nothing
            # twice (message ids), so a timed-out one is sent again too.
            if error.code in (429, 503, 504):
                time.sleep(float(error.headers.get("Retry-After") or 1) * (1 + attempt / 4))
                continue
            raise RuntimeError(f"gateway answered {error.code}: {error.read()[:300]!r}") from None
    raise RuntimeError("gateway kept answering 429/503/504")


def load(url: str, key: str, events_path: Path, clients: int, progress: bool) -> dict:
    lines = events_path.read_text().splitlines()
    total = len(lines)
    batches: queue.Queue[tuple[int, bytes] | None] = queue.Queue(maxsize=4 * clients)
    done: list[tuple[float, int, float]] = []  # (finished at, events, seconds)
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    lock = threading.Lock()
    failures: list[BaseException] = []

    stop = threading.Event()  # a client failed: the run ends

    def produce() -> None:
        items = [(len(chunk), ('{"events":[' + ",".join(chunk) + "]}").encode())
                 for chunk in (lines[s:s + BATCH] for s in range(0, total, BATCH))]
        for item in [*items, *[None] * clients]:
            while not stop.is_set():
                try:
                    batches.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def consume() -> None:
        while not stop.is_set():
            try:
                item = batches.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                return
            size, body = item
            started = time.perf_counter()
            try:
                result = post(url, key, body)
            except BaseException as error:  # reported after the run
                failures.append(error)
                stop.set()
                print(f"\nclient failed: {error}", file=sys.stderr, flush=True)
                return
            finished = time.perf_counter()
            with lock:
                done.append((finished, size, finished - started))
                for name in counts:
                    counts[name] += result[{"duplicate": "duplicates"}.get(name, name)]
                if progress:
                    sent = sum(d[1] for d in done)
                    print(f"\rsent {sent}/{total}", end="", file=sys.stderr, flush=True)

    began = time.perf_counter()
    threads = [threading.Thread(target=produce)] + [
        threading.Thread(target=consume) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if progress:
        print(file=sys.stderr)
    if failures:
        raise failures[0]
    done.sort()
    return {"events": total, **counts, "seconds": round(elapsed, 1),
            "events/s": round(total / elapsed),
            **window_rates(done, began, total),
            "batch p50 ms": round(statistics.median(d[2] for d in done) * 1000),
            "batch p95 ms": round(sorted(d[2] for d in done)[int(0.95 * len(done))] * 1000)}


def window_rates(done: list[tuple[float, int, float]], began: float, total: int) -> dict:
    """Events/s over the first and over the last WINDOW events to complete."""
    if total < 2 * WINDOW:
        return {}
    sent = 0
    first_end = last_start = None
    for finished, size, _ in done:
        sent += size
        if first_end is None and sent >= WINDOW:
            first_end = finished
        if last_start is None and sent >= total - WINDOW:
            last_start = finished
    first = WINDOW / (first_end - began)
    last = WINDOW / (done[-1][0] - last_start)
    return {"first 100k events/s": round(first), "last 100k events/s": round(last),
            "last / first": round(last / first, 2)}


def run(args: argparse.Namespace, work_dir: Path) -> dict:
    retailer = args.retailer or work_dir / "retailer"
    if not (retailer / "events.jsonl").exists():
        print(f"generating {args.customers} customers", file=sys.stderr)
        generate_retailer(args.customers, args.seed, retailer)
    env = {"OTEL_TRACES_EXPORTER": "none"}
    if args.database_url:
        env["CDP_DATABASE_URL"] = args.database_url
    stack = Stack(data_dir=work_dir / "system", env=env)
    stack.start(progress=lambda message: print(message, file=sys.stderr))
    cpu_before = {child.name: cpu_seconds(child.process.pid) for child in stack.children}
    try:
        result = load(stack.gateway_url, stack.api_key or "", retailer / "events.jsonl",
                      args.clients, progress=not args.json)
        result = {"clients": args.clients,
                  "backend": "postgres" if args.database_url else "duckdb", **result}
        for child in stack.children:
            result[f"peak RSS {child.name} MB"] = peak_rss_mb(child.process.pid)
        for child in stack.children:  # what each process spent on the load, not its start
            used, before = cpu_seconds(child.process.pid), cpu_before[child.name]
            result[f"CPU {child.name} us/event"] = (
                None if used is None or before is None
                else round((used - before) * 1e6 / result["events"]))
    finally:
        stack.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--retailer", type=Path, default=None,
                        help="a retailer made by `cdp generate` (default: generate one)")
    parser.add_argument("--database-url", default="",
                        help="PostgreSQL for identity and profile (default: embedded DuckDB)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the system's data and logs in this (new) folder")
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True)
        result = run(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="retailer-load-") as work_dir:
            result = run(args, Path(work_dir))
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

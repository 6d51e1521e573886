"""Online resolution with the linkage model: the latency of resolving one new record (one
event, a batch of its own, as a till or a web form sends it) against a store that already
holds ``--stored`` known records with their features and blocking keys.

    .venv/bin/python -m benchmarks.identity_online --stored 1000000
    .venv/bin/python -m benchmarks.identity_online --stored 1000000 --backend postgres

The known records are synthetic people (names from the generator's lists, birth dates,
cities, addresses, phones, e-mails) bulk-loaded as the identity service stores them: the
record with its features and identifiers, its customer, its identifiers and its keys in
the blocking index. The timed records are, in turn, another spelling of a known person
(Latin transliteration, a new phone, no e-mail: only the model can link it) and a new
person. Each is resolved in its own call of the resolver, in-process (no gRPC), with the
packaged model; the run prints p50/p95/p99 per call, how many were linked by the model,
and the candidates scored per record.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.output import print_result
from benchmarks.stored_people import open_store, percentile, person, preload, traits_of
from omnicdp.services.identity.linkage.model import LinkageModel
from omnicdp.services.identity.matching import Matcher
from omnicdp.services.identity.model import IdentityRecord
from omnicdp.services.identity.resolver import Resolver
from omnicdp.synth import geo, names

SOURCES = ("crm", "pos", "web", "loyalty")


def probes(rng: random.Random, people: list[dict[str, str]], count: int,
           first_new: int) -> list[tuple[IdentityRecord, str | None]]:
    """Records to resolve, each with the customer it should join (None: a new person)."""
    out = []
    for i in range(count):
        at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i)
        if i % 2 == 0:  # a known person on the web: Latin spelling, a new phone
            number = rng.randrange(len(people))
            known = people[number]
            row = {**known, "first_name": names.transliterate(known["first_name"], "bgn"),
                   "last_name": names.transliterate(known["last_name"], "bgn"),
                   "phone": f"+7{rng.choice(geo.RU_MOBILE_CODES)}{rng.randrange(10**7):07d}"}
            expected = f"cus_{number:024x}"
            identifiers = {"phone": row["phone"], "anonymous_id": f"probe-{i}"}
        else:
            row = person(rng, first_new + i)
            expected = None
            identifiers = {"email": row["email"], "phone": row["phone"]}
        out.append((IdentityRecord(f"probe-{i}", identifiers, at, rng.choice(SOURCES),
                                   traits_of(row)), expected))
    return out


def run(stored: int, probe_count: int, seed: int, work_dir: Path, backend: str,
        database_url: str, memory_limit: str = "2GB") -> dict:
    rng = random.Random(seed)
    matcher = Matcher(LinkageModel.load_default())
    print(f"generating {stored} known people", file=sys.stderr)
    people = [person(rng, i) for i in range(stored)]
    with open_store(backend, work_dir, database_url, memory_limit) as store:
        preload_seconds = preload(store, matcher, people)
        resolver = Resolver(store, matcher=matcher)
        timed = probes(rng, people, probe_count, stored)
        # The million people generated above are the harness's, not the service's: frozen,
        # the collector's full passes do not walk them inside a timed call (one took 0.2 s).
        gc.collect()
        gc.freeze()
        latencies, linked, right = [], 0, 0
        for record, expected in timed:
            started = time.perf_counter()
            [resolution] = resolver.resolve([record])
            latencies.append(time.perf_counter() - started)
            if expected is not None:
                live = store.resolve_redirects(resolution.customer_id)
                linked += not resolution.created
                right += live == expected
        live_customers = store.count_customers()
    known = sum(1 for _, expected in timed if expected is not None)
    return {
        "backend": backend,
        "DuckDB memory limit": memory_limit if backend == "duckdb" else "-",
        "records stored before": stored,
        "preload seconds": round(preload_seconds, 1),
        "records resolved (one per call)": len(timed),
        "p50 ms": round(statistics.median(latencies) * 1000, 2),
        "p95 ms": round(percentile(latencies, 0.95) * 1000, 2),
        "p99 ms": round(percentile(latencies, 0.99) * 1000, 2),
        "max ms": round(max(latencies) * 1000, 2),
        "known people re-spelled": known,
        "of them linked to their customer": right,
        "of them linked at all": linked,
        "customers live": live_customers,
        "peak RSS MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stored", type=int, default=1_000_000, help="known records")
    parser.add_argument("--probes", type=int, default=2000, help="records resolved, timed")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--backend", choices=("duckdb", "postgres"), default="duckdb")
    parser.add_argument("--database-url",
                        default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="PostgreSQL server (a database of the run's own is created)")
    parser.add_argument("--duckdb-memory", default="2GB",
                        help="the DuckDB buffer pool (the service's CDP_DUCKDB_MEMORY)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="identity-online-") as work_dir:
        result = run(args.stored, args.probes, args.seed, Path(work_dir), args.backend,
                     args.database_url, args.duckdb_memory)
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from benchmarks.identity_resolve import open_store, percentile
from benchmarks.output import print_result
from omnicdp.services.identity.linkage.model import LinkageModel
from omnicdp.services.identity.matching import Matcher
from omnicdp.services.identity.model import IdentityRecord
from omnicdp.services.identity.records import normalize_features, record_id
from omnicdp.services.identity.resolver import Resolver
from omnicdp.services.identity.store.graph import key_hash
from omnicdp.services.identity.store.sql import SqlIdentityStore
from omnicdp.synth import geo, names

SOURCES = ("crm", "pos", "web", "loyalty")
DOMAINS = ("mail.ru", "yandex.ru", "gmail.com", "bk.ru", "inbox.ru", "list.ru")


def person(rng: random.Random, number: int) -> dict[str, str]:
    """A synthetic person's CRM row (Cyrillic), unique by ``number`` in e-mail and phone."""
    male = rng.random() < 0.5
    first = rng.choice(names.MALE_FIRST if male else names.FEMALE_FIRST)
    surname = rng.choice(names.SURNAMES)
    last = surname if male else names.female_surname(surname)
    city = geo.pick_city(rng)
    address = geo.random_address(rng, city)
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
    return {
        "first_name": first, "last_name": last, "date_of_birth": born.isoformat(),
        "city": city.name, "postcode": address.postcode,
        "address_line": geo.render_address(address, rng, latin=False),
        "email": f"{names.transliterate(first, 'bgn').lower()}.{number}@{rng.choice(DOMAINS)}",
        "phone": f"+7{rng.choice(geo.RU_MOBILE_CODES)}{number % 10_000_000:07d}",
    }


def _traits(row: dict[str, str]) -> dict[str, str]:
    return {k: row[k] for k in ("first_name", "last_name", "date_of_birth", "city", "postcode",
                                "address_line") if row.get(k)}


def preload(store: SqlIdentityStore, matcher: Matcher, people: list[dict[str, str]],
            chunk: int = 50_000) -> float:
    """Store one record per person as the resolver would, in bulk; the seconds it took."""
    started = time.perf_counter()
    at = datetime(2025, 1, 1)
    for start in range(0, len(people), chunk):
        rows = {"customers": [], "records": [], "identifiers": [], "record_identifiers": [],
                "record_blocking": []}
        for offset, row in enumerate(people[start:start + chunk]):
            number = start + offset
            customer = f"cus_{number:024x}"
            features = normalize_features(_traits(row))
            identifiers = {"email": row["email"], "phone": row["phone"]}
            rid = record_id("crm", identifiers, features)
            rows["customers"].append((customer, at, None))
            rows["records"].append((rid, customer, "crm", json.dumps(features, ensure_ascii=False),
                                    at, at, json.dumps(identifiers)))
            for id_type, value in identifiers.items():
                rows["identifiers"].append((key_hash(id_type, value), id_type, value, customer,
                                            at, at, rid))
                rows["record_identifiers"].append((rid, id_type, value))
            rows["record_blocking"].extend(
                (key, rid) for key in matcher.prepare(features, identifiers, identifiers).keys)
        store._run(lambda session, rows=rows: _write(session, rows), write=True)
        print(f"\rstored {min(start + chunk, len(people))}/{len(people)}", end="",
              file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return time.perf_counter() - started


def _write(session, rows: dict[str, list]) -> None:  # noqa: ANN001
    session.insert("customers", ("customer_id", "created_at", "merged_into"), rows["customers"])
    session.insert("records", ("record_id", "customer_id", "source", "features", "first_seen",
                               "last_seen", "identifiers"), rows["records"])
    session.insert("identifiers", ("key", "id_type", "value", "customer_id", "first_seen",
                                   "last_seen", "record_id"), rows["identifiers"])
    session.insert("record_identifiers", ("record_id", "id_type", "value"),
                   rows["record_identifiers"])
    session.insert("record_blocking", ("key", "record_id"), rows["record_blocking"])


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
                                   _traits(row)), expected))
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

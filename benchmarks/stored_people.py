"""Synthetic known people stored in an identity store as the resolver stores them, the
history a benchmark resolves against: each person one record with its features and
identifiers, its customer, its identifiers and its keys in the blocking index."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg

from omnicdp.services.identity.matching import Matcher
from omnicdp.services.identity.records import normalize_features, record_id
from omnicdp.services.identity.store.duckdb import DuckDBIdentityStore
from omnicdp.services.identity.store.graph import key_hash
from omnicdp.services.identity.store.postgres import PostgresIdentityStore
from omnicdp.services.identity.store.sql import SqlIdentityStore
from omnicdp.synth import geo, names

DOMAINS = ("mail.ru", "yandex.ru", "gmail.com", "bk.ru", "inbox.ru", "list.ru")


def person(rng: random.Random, number: int, apart: bool = False) -> dict[str, str]:
    """A synthetic person's CRM row (Cyrillic), unique by ``number`` in e-mail and phone;
    ``apart``: with e-mail and phone no generated retailer uses (a history of other
    people)."""
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
        "email": (f"{names.transliterate(first, 'bgn').lower()}.{number}@"
                  + ("history.example.org" if apart else rng.choice(DOMAINS))),
        "phone": (f"+7999{number:07d}" if apart
                  else f"+7{rng.choice(geo.RU_MOBILE_CODES)}{number % 10_000_000:07d}"),
    }


def traits_of(row: dict[str, str]) -> dict[str, str]:
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
            features = normalize_features(traits_of(row))
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
    if people:
        settle(store)
    print(file=sys.stderr)
    return time.perf_counter() - started


def settle(store: SqlIdentityStore) -> None:
    """A year of history has been analysed and vacuumed by the time it is queried
    (PostgreSQL's autovacuum): right after a bulk load the planner still thinks the tables
    empty, and autovacuum's first pass over a million inserted rows would run during the
    timed calls, on the same two cores, as would the checkpoint writing out what the load
    and the vacuum dirtied. So PostgreSQL gets ``VACUUM ANALYZE`` (outside a transaction)
    and a ``CHECKPOINT``, DuckDB ``ANALYZE``."""
    if not isinstance(store, PostgresIdentityStore):
        store._run(lambda session: session.execute("ANALYZE"), write=True)
        return
    with store._db.outside_transaction() as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def _write(session, rows: dict[str, list]) -> None:  # noqa: ANN001
    session.insert("customers", ("customer_id", "created_at", "merged_into"), rows["customers"])
    session.insert("records", ("record_id", "customer_id", "source", "features", "first_seen",
                               "last_seen", "identifiers"), rows["records"])
    session.insert("identifiers", ("key", "id_type", "value", "customer_id", "first_seen",
                                   "last_seen", "record_id"), rows["identifiers"])
    session.insert("record_identifiers", ("record_id", "id_type", "value"),
                   rows["record_identifiers"])
    session.insert("record_blocking", ("key", "record_id"), rows["record_blocking"])


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


@contextmanager
def open_store(backend: str, work_dir: Path, database_url: str,
               memory_limit: str = "512MB") -> Iterator[SqlIdentityStore]:
    if backend == "duckdb":
        with DuckDBIdentityStore(work_dir / "identity.duckdb",
                                 memory_limit=memory_limit) as store:
            yield store
        return
    with own_database(database_url) as url, PostgresIdentityStore(url) as store:
        yield store


@contextmanager
def own_database(database_url: str) -> Iterator[str]:
    """A new PostgreSQL database beside ``database_url``'s, dropped afterwards (its URL);
    an empty URL (the embedded backend) stays empty."""
    if not database_url:
        yield ""
        return
    name = f"cdp_bench_{os.getpid()}"
    admin = psycopg.connect(database_url, autocommit=True)
    try:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
        yield database_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

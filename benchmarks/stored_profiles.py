"""Synthetic customers stored in a profile store as ingestion stores them, the history a
lookup benchmark reads: each customer three records (web: e-mail and cookie; store: phone
and loyalty card; app: user id and device), their identity changes (created, linked) and
their events (page and product views, orders online and in store), written through the
store's own ``apply_changes`` and ``append`` so that golden records, lookup keys and
counters are exactly what ingestion would have built."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from benchmarks.stored_people import person, traits_of
from omnicdp.core.identifiers import normalize_identifier
from omnicdp.services.identity.client import Change
from omnicdp.services.profile.model import StoredEvent
from omnicdp.services.profile.store.base import ProfileStore

START = datetime(2026, 1, 1, tzinfo=UTC)
#: Customers written per transaction (their changes, then their events).
CHUNK = 500
_KINDS = (("web", "Page Viewed"), ("web", "Product Viewed"), ("app", "Product Viewed"),
          ("email", "Email Opened"), ("web", "Order Completed"), ("store", "Order Completed"))
_WEIGHTS = (40, 25, 15, 12, 4, 4)


def _records(number: int, row: dict[str, str]) -> dict[str, tuple[str, dict[str, str]]]:
    """record id -> (channel, raw identifiers)"""
    return {f"r{number}w": ("web", {"email": row["email"], "anonymous_id": f"anon-{number}"}),
            f"r{number}s": ("store", {"phone": row["phone"], "loyalty_id": f"L{number:09d}"}),
            f"r{number}a": ("app", {"user_id": f"u{number}", "device_id": f"dev-{number}"})}


def preload(store: ProfileStore, customers: int, events: int, seed: int = 7,
            progress: Callable[[str], None] | None = None) -> list[tuple[str, str]]:
    """Store ``customers`` customers with ``events`` events among them; return every
    customer's (raw e-mail, raw phone), for lookups."""
    rng = random.Random(seed)
    per_customer = max(1, events // customers)
    extra = events - per_customer * customers  # the first ones get one more
    seq = store.change_cursor()
    identifiers: list[tuple[str, str]] = []
    began = time.perf_counter()
    for start in range(0, customers, CHUNK):
        changes: list[Change] = []
        batch: list[StoredEvent] = []
        rows = []
        for number in range(start, min(start + CHUNK, customers)):
            row = person(rng, number)
            identifiers.append((row["email"], row["phone"]))
            customer_id = f"cus_{number:012d}"
            records = _records(number, row)
            for i, record_id in enumerate(records):
                seq += 1
                changes.append(Change(seq, "linked" if i else "created", customer_id, None,
                                      record_id, START))
            count = per_customer + (number < extra)
            record_ids = list(records)
            for n in range(count):
                channel, name = rng.choices(_KINDS, _WEIGHTS)[0]
                record_id = record_ids[1] if channel == "store" else (
                    record_ids[2] if channel == "app" else record_ids[0])
                at = START + timedelta(minutes=rng.randrange(60 * 24 * 330))
                properties = ({"order_id": f"o{number}-{n}",
                               "revenue": round(rng.lognormvariate(8, 1), 2)}
                              if name == "Order Completed" else {})
                raw = records[record_id][1]
                batch.append(StoredEvent(
                    message_id=f"m{number}-{n}", customer_id=customer_id, type="track",
                    channel=channel, event=name, source=channel, timestamp=at,
                    received_at=at, identifiers=raw,
                    traits=traits_of(row) if n == 0 or channel == "store" else {},
                    properties=properties, record_id=record_id))
                rows += [(record_id, t, value, at) for t, v in raw.items()
                         if (value := normalize_identifier(t, v))]  # not a placeholder
        store.apply_changes(changes)
        store.append(batch, rows)
        if progress:
            done = min(start + CHUNK, customers)
            elapsed = time.perf_counter() - began
            progress(f"preloaded {done:,}/{customers:,} customers "
                     f"({done * per_customer / elapsed:,.0f} events/s)")
    return identifiers


def stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

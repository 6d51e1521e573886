"""The generated retailer on disk: the person table and events as partners would deliver
them, the truth behind them, and the tables derived from the truth (transactions and the
attribution event table, keyed by the true person).

All files are UTF-8 with ``\\n`` line ends, written in a fixed order so that a seed gives
byte-identical output.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from omnicdp.synth.events import TOUCH_EVENTS, EventLog
from omnicdp.synth.records import PERSON_COLUMNS, SourceRecord

FILE_NAMES = {
    "persons": "persons.csv",
    "persons_truth": "persons_truth.csv",
    "events": "events.jsonl",
    "events_truth": "events_truth.csv",
    "transactions": "transactions.csv",
    "attribution_events": "attribution_events.csv",
    "summary": "summary.json",
}
TRANSACTION_COLUMNS = ("customer_id", "timestamp", "amount", "order_id", "channel")
ATTRIBUTION_COLUMNS = ("customer_id", "timestamp", "kind", "channel", "value", "event")


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_persons(out_dir: Path, records: list[SourceRecord], rng: random.Random) -> None:
    """persons.csv in shuffled order with opaque record ids (so that neither order nor id
    gives a person away), and persons_truth.csv."""
    shuffled = list(records)
    rng.shuffle(shuffled)
    record_ids = [f"r{number:07d}" for number in range(1, len(shuffled) + 1)]
    _write_csv(out_dir / FILE_NAMES["persons"], PERSON_COLUMNS, (
        [record_id, record.source, *(record.fields.get(c, "") for c in PERSON_COLUMNS[2:])]
        for record_id, record in zip(record_ids, shuffled, strict=True)))
    _write_csv(out_dir / FILE_NAMES["persons_truth"], ("record_id", "person_id"), (
        (record_id, record.person_id)
        for record_id, record in zip(record_ids, shuffled, strict=True)))


def write_event_files(out_dir: Path, log: EventLog,
                      progress: Callable[[int], None] | None = None) -> None:
    """In one pass over the sorted events: events.jsonl (one EVENT per line, oldest first),
    events_truth.csv, transactions.csv (every completed order, online or in a store) and
    attribution_events.csv (marketing touches and conversions: what an attribution model
    would see if identity resolution were perfect), the last three keyed by the true person.
    """
    def table(name: str, header: Sequence[str]) -> Any:
        handle = stack.enter_context((out_dir / FILE_NAMES[name]).open(
            "w", encoding="utf-8", newline=""))
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        return writer

    with ExitStack() as stack:
        events = stack.enter_context((out_dir / FILE_NAMES["events"]).open("wb"))
        truth = table("events_truth", ("message_id", "person_id"))
        transactions = table("transactions", TRANSACTION_COLUMNS)
        attribution = table("attribution_events", ATTRIBUTION_COLUMNS)
        for done, e in enumerate(log.sorted_events(), 1):
            timestamp = log.timestamp(e.t)
            events.write(e.json_line(timestamp.encode()))
            truth.writerow((e.message_id, e.person_id))
            if e.revenue is not None:
                amount = f"{e.revenue:.2f}"
                transactions.writerow((e.person_id, timestamp, amount, e.order_id, e.channel))
                attribution.writerow((e.person_id, timestamp, "conversion", e.channel, amount,
                                      e.event))
            elif e.event in TOUCH_EVENTS:
                attribution.writerow((e.person_id, timestamp, "touch", e.channel, "0", e.event))
            if progress is not None and done % 50_000 == 0:
                progress(done)


def write_summary(path: Path, summary: dict[str, object]) -> None:
    path.write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

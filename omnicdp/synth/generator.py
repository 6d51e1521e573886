"""generate_retailer: a synthetic omnichannel retailer, from people to files."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from omnicdp.core.errors import FieldViolation, InvalidArgument
from omnicdp.synth import writer
from omnicdp.synth.catalog import Catalog, campaign_calendar
from omnicdp.synth.events import EventLog
from omnicdp.synth.journey import Journey, World
from omnicdp.synth.people import IdFactory, generate_people
from omnicdp.synth.timeline import DAY

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class GenerationSummary:
    """What :func:`generate_retailer` wrote: counts and file paths."""

    seed: int
    start: date
    days: int
    persons: int
    person_records: int
    events: int
    orders_online: int
    purchases_store: int
    households: int  # households of two or more people
    out_dir: Path

    @property
    def files(self) -> dict[str, Path]:
        return {name: self.out_dir / file for name, file in writer.FILE_NAMES.items()}

    @property
    def persons_path(self) -> Path:
        return self.files["persons"]

    @property
    def events_path(self) -> Path:
        return self.files["events"]

    @property
    def transactions_path(self) -> Path:
        return self.files["transactions"]

    @property
    def attribution_events_path(self) -> Path:
        return self.files["attribution_events"]

    def to_dict(self, relative: bool = False) -> dict[str, object]:
        """JSON-ready; with ``relative`` the files are named relative to the output folder."""
        files = writer.FILE_NAMES if relative else {k: str(v) for k, v in self.files.items()}
        return {
            "seed": self.seed, "start": self.start.isoformat(), "days": self.days,
            "persons": self.persons, "person_records": self.person_records,
            "events": self.events, "orders_online": self.orders_online,
            "purchases_store": self.purchases_store, "households": self.households,
            "events_per_person": round(self.events / self.persons, 1),
            "files": dict(files),
        }


def generate_retailer(customers: int, seed: int, out_dir: Path,
                      progress: Progress | None = None,
                      start: date = date(2026, 1, 1), days: int = 180) -> GenerationSummary:
    """Generate ``customers`` true people of an omnichannel retailer over ``days`` days from
    ``start`` and write their source records, events, truth and derived tables to
    ``out_dir`` (created if missing). The same arguments give byte-identical files.

    ``progress(stage, done, total)`` is called as the work advances, for stages ``people``,
    ``journeys`` and ``files``.
    """
    problems = []
    if not isinstance(customers, int) or customers < 1:
        problems.append(FieldViolation("customers", f"must be a whole number >= 1, got "
                                                    f"{customers!r}"))
    if not isinstance(days, int) or days < 1:
        problems.append(FieldViolation("days", f"must be a whole number >= 1, got {days!r}"))
    if problems:
        raise InvalidArgument("; ".join(str(p) for p in problems), problems)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = progress or _no_progress
    step = max(1, customers // 50)

    def stream(name: str) -> random.Random:
        # Separate streams, so a change in one stage leaves the others' draws alone.
        return random.Random(f"omnicdp.synth:{seed}:{name}")

    ids = IdFactory(stream("ids"))
    report("people", 0, customers)
    people = generate_people(
        customers, start, days, stream("people"), ids,
        progress=lambda done: report("people", done, customers)
        if done % step == 0 or done == customers else None)
    log = EventLog(stream("messages"), start, days, spill_dir=out_dir)
    try:
        world = World(rng=stream("journeys"), ids=ids, catalog=Catalog(stream("catalog")),
                      calendar=campaign_calendar(stream("campaigns"), start, days), log=log,
                      window=days * DAY)
        for done, person in enumerate(people, 1):
            Journey(person, world).run()
            if done % step == 0 or done == customers:
                report("journeys", done, customers)
        # Files: the events in one pass, then the person table.
        total = log.count + 1
        report("files", 0, total)
        writer.write_event_files(out_dir, log, lambda done: report("files", done, total))
    finally:
        log.close()
    writer.write_persons(out_dir, world.records, stream("shuffle"))
    summary = GenerationSummary(
        seed=seed, start=start, days=days, persons=len(people),
        person_records=len(world.records), events=log.count,
        orders_online=world.orders_online, purchases_store=world.purchases_store,
        households=len({p.household.household_id for p in people if p.household}),
        out_dir=out_dir)
    writer.write_summary(summary.files["summary"], summary.to_dict(relative=True))
    report("files", total, total)
    return summary


def _no_progress(stage: str, done: int, total: int) -> None:
    pass

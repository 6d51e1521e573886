"""Transactions from the profile service's stored events: every ``Order Completed`` event
(web, app or store: all channels) with its revenue, dated in the business's time zone (a
purchase at 01:00 in Moscow belongs to that Moscow day, not to the previous UTC one)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa

from omnicdp.core.errors import FieldViolation, InvalidArgument
from omnicdp.core.jsonvalues import revenue_problem
from omnicdp.services.attribution.sources import CONVERSION_EVENTS

DEFAULT_TIME_ZONE = "Europe/Moscow"


def time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidArgument(f"unknown time zone {name!r}; give an IANA name such as "
                              f"{DEFAULT_TIME_ZONE}",
                              [FieldViolation("time_zone", "unknown")]) from error


def from_stored_events(events: Iterable[Any], zone: ZoneInfo) -> pa.Table:
    """A transaction table (``customer_id``, ``timestamp`` as the local ISO date, ``amount``)
    of the purchases among ``events`` (anything with ``customer_id``, ``timestamp``,
    ``event``, ``properties``). A purchase without a usable revenue counts with amount 0:
    it is still a purchase for the BG/NBD model."""
    customers: list[str] = []
    dates: list[str] = []
    amounts: list[float] = []
    for event in events:
        if event.event.strip().lower() not in CONVERSION_EVENTS:
            continue
        revenue = event.properties.get("revenue")
        amount = 0.0 if revenue is None or revenue_problem(revenue) else float(revenue)
        customers.append(event.customer_id)
        dates.append(event.timestamp.astimezone(zone).date().isoformat())
        amounts.append(amount)
    return pa.table({"customer_id": pa.array(customers, pa.string()),
                     "timestamp": pa.array(dates, pa.string()),
                     "amount": pa.array(amounts, pa.float64())})

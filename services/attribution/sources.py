"""Which stored customer events are touches and which are conversions, and what the
customers' history says about them.

A conversion is an ``Order Completed`` track event (online on web/app, offline in a store),
valued at its ``properties.revenue``. A touch is any event on a marketing channel (e-mail,
push, SMS, messenger, ads, call centre), named by its event so that view-type touches
(``Email Opened``, ``Ad Impression``) get their channel's post-view window.

The history of each customer is read from every stored event, not only the touches and
conversions in the report's period: first seen is the earliest event of any kind, first
purchase the earliest order, also before the period. So a customer who bought last year is
a returning buyer in this month's report.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np

from omnicdp.core.jsonvalues import revenue_problem
from omnicdp.services.attribution.journeys import AttributionEvent, CustomerHistory
from omnicdp.services.attribution.table import EventTable, to_micros

CONVERSION_EVENTS = frozenset({"order completed"})
TOUCH_CHANNELS = frozenset({"email", "push", "sms", "messenger", "ads", "call_center"})
# Identifiers that make an event's person known (an anonymous id or device alone does not).
KNOWN_IDENTIFIERS = frozenset({"email", "phone", "user_id", "loyalty_id", "crm_id"})


def to_attribution_event(customer_id: str, timestamp: datetime, event: str, channel: str,
                         properties: dict[str, Any]) -> AttributionEvent | None:
    if event.strip().lower() in CONVERSION_EVENTS:
        return AttributionEvent(customer_id, timestamp, "conversion", channel,
                                _revenue(properties), event)
    if channel in TOUCH_CHANNELS:
        return AttributionEvent(customer_id, timestamp, "touch", channel, 0.0, event or None)
    return None


def _revenue(properties: dict[str, Any]) -> float:
    revenue = properties.get("revenue")
    # Out-of-range revenues (stored before ingestion bounded them) count as unknown, so
    # no sum of revenues can overflow.
    return 0.0 if revenue is None or revenue_problem(revenue) else float(revenue)


def from_stored_events(stored: Iterable[Any], start: datetime | None = None,
                       end: datetime | None = None
                       ) -> tuple[EventTable, CustomerHistory, int]:
    """The touches and conversions among a customer-event history (anything with
    ``customer_id``, ``timestamp``, ``event``, ``channel``, ``properties``, as the profile
    service stores events) as columns, keeping only conversions in ``[start, end)`` when
    given; the customers' history (first seen, first purchase); and how many events were
    read. Plain lists of values per column, no object per event kept."""
    customers: list[str] = []
    times: list[int] = []
    conversions: list[bool] = []
    channels: list[str] = []
    values: list[float] = []
    names: list[str | None] = []
    first_seen: dict[str, int] = {}
    first_purchase: dict[str, int] = {}
    start_us = to_micros(start) if start else None
    end_us = to_micros(end) if end else None
    read = 0
    for event in stored:
        read += 1
        customer, moment = event.customer_id, to_micros(event.timestamp, "UTC")
        if moment < first_seen.get(customer, moment + 1):
            first_seen[customer] = moment
        is_conversion = event.event.strip().lower() in CONVERSION_EVENTS
        if is_conversion:
            if moment < first_purchase.get(customer, moment + 1):
                first_purchase[customer] = moment
            if (start_us is not None and moment < start_us) or \
                    (end_us is not None and moment >= end_us):
                continue
        elif event.channel not in TOUCH_CHANNELS:
            continue
        customers.append(customer)
        times.append(moment)
        conversions.append(is_conversion)
        channels.append(event.channel)
        values.append(_revenue(event.properties) if is_conversion else 0.0)
        names.append(event.event or None)
    table = EventTable.from_columns(customers, np.array(times, dtype=np.int64),
                                    np.array(conversions, dtype=bool), channels,
                                    np.array(values, dtype=np.float64), names)
    ids = list(first_seen)
    never = np.iinfo(np.int64).max
    history = CustomerHistory(
        ids, np.array([first_seen[c] for c in ids], dtype=np.int64),
        np.array([first_purchase.get(c, never) for c in ids], dtype=np.int64))
    return table, history, read

"""Which stored customer events are touches and which are conversions.

A conversion is an ``Order Completed`` track event (online on web/app, offline in a store),
valued at its ``properties.revenue``. A touch is any event on a marketing channel (e-mail,
push, SMS, messenger, ads, call centre), named by its event so that view-type touches
(``Email Opened``, ``Ad Impression``) get their channel's post-view window.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from omnicdp.core.jsonvalues import revenue_problem
from omnicdp.services.attribution.journeys import AttributionEvent

CONVERSION_EVENTS = frozenset({"order completed"})
TOUCH_CHANNELS = frozenset({"email", "push", "sms", "messenger", "ads", "call_center"})


def to_attribution_event(customer_id: str, timestamp: datetime, event: str, channel: str,
                         properties: dict[str, Any]) -> AttributionEvent | None:
    if event.strip().lower() in CONVERSION_EVENTS:
        revenue = properties.get("revenue")
        # Out-of-range revenues (stored before ingestion bounded them) count as unknown, so
        # no sum of revenues can overflow.
        value = 0.0 if revenue is None or revenue_problem(revenue) else float(revenue)
        return AttributionEvent(customer_id, timestamp, "conversion", channel, value, event)
    if channel in TOUCH_CHANNELS:
        return AttributionEvent(customer_id, timestamp, "touch", channel, 0.0, event or None)
    return None



def from_stored_events(stored: Iterable[Any], start: datetime | None = None,
                       end: datetime | None = None) -> tuple[list[AttributionEvent], int]:
    """The touches and conversions among a customer-event history (anything with
    ``customer_id``, ``timestamp``, ``event``, ``channel``, ``properties``, as the profile
    service stores events), keeping only conversions in ``[start, end)`` when given; and
    how many events were read."""
    events: list[AttributionEvent] = []
    read = 0
    for event in stored:
        read += 1
        converted = to_attribution_event(event.customer_id, event.timestamp, event.event,
                                         event.channel, event.properties)
        if converted is None:
            continue
        if converted.kind == "conversion" and ((start and converted.timestamp < start)
                                               or (end and converted.timestamp >= end)):
            continue
        events.append(converted)
    return events, read

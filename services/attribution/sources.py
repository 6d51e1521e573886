"""Which stored customer events are touches and which are conversions.

A conversion is an ``Order Completed`` track event (online on web/app, offline in a store),
valued at its ``properties.revenue``. A touch is any event on a marketing channel (e-mail,
push, SMS, messenger, ads, call centre), named by its event so that view-type touches
(``Email Opened``, ``Ad Impression``) get their channel's post-view window.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.attribution.journeys import AttributionEvent

CONVERSION_EVENTS = frozenset({"order completed"})
TOUCH_CHANNELS = frozenset({"email", "push", "sms", "messenger", "ads", "call_center"})


def to_attribution_event(customer_id: str, timestamp: datetime, event: str, channel: str,
                         properties: dict[str, Any]) -> AttributionEvent | None:
    if event.strip().lower() in CONVERSION_EVENTS:
        revenue = properties.get("revenue")
        value = float(revenue) if isinstance(revenue, int | float) else 0.0
        return AttributionEvent(customer_id, timestamp, "conversion", channel, value, event)
    if channel in TOUCH_CHANNELS:
        return AttributionEvent(customer_id, timestamp, "touch", channel, 0.0, event or None)
    return None


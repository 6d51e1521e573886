"""Journey analytics (customer problem 4): how long journeys are, how long from first
contact to purchase, which paths are most frequent, where journeys that do not convert
stop, and how many anonymous sessions were later joined to a known customer.

Everything is computed over the journeys of ``journeys.py`` (the same windowing rule as
attribution), as columns.

* Path length: qualifying touches per journey, converting and non-converting apart.
* Time to conversion: days from the journey's first qualifying touch to its conversion,
  and from the customer's first contact (first seen) to the conversion.
* Paths: a journey's channels in order (``email > ads``); a conversion without a touch is
  ``(direct)``. The most frequent, with their conversions and conversion rate.
* Stops: the last channel and event of every non-converting journey.
* Anonymous sessions (when the table says which events carried a known identifier, column
  ``identified``): a customer's anonymous events with gaps under 30 minutes form a
  session; it is joined when the same customer has an identified event at or after the
  session's start (the anonymous history was linked once the person identified).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from omnicdp.services.attribution.journeys import JourneySet
from omnicdp.services.attribution.report import DIRECT
from omnicdp.services.attribution.table import EventTable

_DAY_US = 86_400_000_000
SESSION_GAP_US = 30 * 60 * 1_000_000
LENGTH_BUCKETS = 10  # lengths 1..9 each, then "10+"
DAY_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("under 1 day", 0, 1), ("1-3 days", 1, 3), ("3-7 days", 3, 7), ("7-14 days", 7, 14),
    ("14-30 days", 14, 30), ("30+ days", 30, float("inf")))
QUANTILES = (0.25, 0.5, 0.75, 0.9)


def journey_analytics(js: JourneySet, table: EventTable | None = None, top: int = 10
                      ) -> dict[str, Any]:
    """The analytics as a JSON-ready dict (see the module docstring)."""
    converted = js.converted
    touched = js.length > 0
    result: dict[str, Any] = {
        "journeys": {
            "total": len(js),
            "converting": int(converted.sum()),
            "converting_without_touch": int((converted & ~touched).sum()),
            "non_converting": int((~converted).sum()),
            "touches_in_journeys": len(js.touch_journey),
            "touches_outside_windows": js.dropped_touches,
        },
        "path_length": {
            "converting": _lengths(js.length[converted]),
            "non_converting": _lengths(js.length[~converted]),
        },
        "time_to_conversion_days": {
            "from_first_touch": _durations(_first_touch_to_end(js, converted & touched)),
            "from_first_contact": _durations(
                (js.end[converted] - js.first_seen[converted]) / _DAY_US),
        },
        "top_paths": _top_paths(js, top),
        "non_converting_stops": _stops(js, top),
    }
    if table is not None and table.identified is not None:
        result["anonymous_sessions"] = anonymous_sessions(table)
    return result


def _lengths(lengths: np.ndarray) -> dict[str, Any]:
    counts = np.bincount(np.minimum(lengths, LENGTH_BUCKETS), minlength=LENGTH_BUCKETS + 1)
    labels = [str(n) for n in range(LENGTH_BUCKETS)] + [f"{LENGTH_BUCKETS}+"]
    return {
        "journeys": int(len(lengths)),
        "mean": round(float(lengths.mean()), 4) if len(lengths) else None,
        "counts": {label: int(count) for label, count in zip(labels, counts, strict=True)
                   if count},
    }


def _first_touch_to_end(js: JourneySet, which: np.ndarray) -> np.ndarray:
    return (js.end[which] - js.touch_time[js.start[which]]) / _DAY_US


def _durations(days: np.ndarray) -> dict[str, Any]:
    buckets = {label: int(((days >= low) & (days < high)).sum())
               for label, low, high in DAY_BUCKETS}
    return {
        "conversions": int(len(days)),
        "quantiles": {f"p{int(q * 100)}": round(float(np.quantile(days, q)), 4)
                      for q in QUANTILES} if len(days) else {},
        "mean": round(float(days.mean()), 4) if len(days) else None,
        "counts": buckets,
    }


def path_keys(js: JourneySet) -> np.ndarray:
    """A 64-bit key per journey that is equal for equal channel sequences (a polynomial
    hash of the codes with the length mixed in; 0 for a journey without touches)."""
    keys = np.zeros(len(js), dtype=np.uint64)
    touched = np.flatnonzero(js.length > 0)
    if len(touched) == 0:
        return keys
    longest = int(js.length.max())
    powers = np.empty(longest, dtype=np.uint64)
    powers[0] = 1
    with np.errstate(over="ignore"):
        for i in range(1, longest):
            powers[i] = powers[i - 1] * np.uint64(1_000_003)
        position = np.arange(len(js.touch_journey)) - js.start[js.touch_journey]
        from_end = js.length[js.touch_journey] - 1 - position
        terms = (js.touch_channel.astype(np.uint64) + np.uint64(1)) * powers[from_end]
        sums = np.add.reduceat(terms, js.start[touched])
        keys[touched] = sums ^ (js.length[touched].astype(np.uint64)
                                * np.uint64(0x9E3779B97F4A7C15))
    return keys


def _path_name(js: JourneySet, journey: int) -> str:
    begin, count = int(js.start[journey]), int(js.length[journey])
    if count == 0:
        return DIRECT
    return " > ".join(js.channels[c] for c in js.touch_channel[begin:begin + count])


def _top_paths(js: JourneySet, top: int) -> list[dict[str, Any]]:
    if len(js) == 0:
        return []
    keys = path_keys(js)
    unique, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True,
                                               return_counts=True)
    conversions = np.bincount(inverse, weights=js.converted, minlength=len(unique))
    # Most journeys first, then most conversions, then the path seen first.
    order = np.lexsort((first, -conversions, -counts))[:top]
    return [{"path": _path_name(js, int(first[i])), "journeys": int(counts[i]),
             "conversions": int(conversions[i]),
             "conversion_rate": round(float(conversions[i] / counts[i]), 4)}
            for i in order]


def _stops(js: JourneySet, top: int) -> list[dict[str, Any]]:
    stopped = np.flatnonzero(~js.converted & (js.length > 0))
    if len(stopped) == 0:
        return []
    last = js.start[stopped] + js.length[stopped] - 1
    channel = js.touch_channel[last].astype(np.int64)
    event = js.touch_event[last].astype(np.int64) + 1  # 0 = no event name
    pair = channel * (len(js.events) + 1) + event
    unique, counts = np.unique(pair, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    rows = []
    for i in order:
        channel_code, event_code = divmod(int(unique[i]), len(js.events) + 1)
        rows.append({"channel": js.channels[channel_code],
                     "event": js.events[event_code - 1] if event_code else None,
                     "journeys": int(counts[i]),
                     "share": round(float(counts[i] / len(stopped)), 4)})
    return rows


def anonymous_sessions(table: EventTable) -> dict[str, Any]:
    """Anonymous sessions and how many were joined to a known customer (module docstring)."""
    assert table.identified is not None
    order = np.lexsort((table.time, table.customer))
    customer, time = table.customer[order], table.time[order]
    identified = table.identified[order]
    # The latest identified event of each customer.
    latest_known = np.full(len(table.customers), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(latest_known, customer[identified], time[identified])
    anonymous = np.flatnonzero(~identified)
    a_customer, a_time = customer[anonymous], time[anonymous]
    new_session = np.ones(len(anonymous), dtype=bool)
    new_session[1:] = (a_customer[1:] != a_customer[:-1]) | \
        (a_time[1:] - a_time[:-1] > SESSION_GAP_US)
    starts = np.flatnonzero(new_session)
    joined = latest_known[a_customer[starts]] >= a_time[starts]
    sessions = len(starts)
    return {"sessions": sessions, "joined": int(joined.sum()),
            "share_joined": round(float(joined.mean()), 4) if sessions else None}

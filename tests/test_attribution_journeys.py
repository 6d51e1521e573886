"""Journey analytics on journeys checked by hand: path lengths, time to conversion,
frequent paths, where non-converting journeys stop, anonymous sessions later joined."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from omnicdp.cli.main import main

ROWS = [
    # customer, timestamp, kind, channel, value, event, identified
    # a: email, ads, conversion 3 days after the first touch (first seen then too).
    ["a", "2025-03-01T10:00:00Z", "touch", "email", "", "Email Link Clicked", "true"],
    ["a", "2025-03-03T10:00:00Z", "touch", "ads", "", "Ad Clicked", "true"],
    ["a", "2025-03-04T10:00:00Z", "conversion", "web", "100", "", "true"],
    # b: email, ads, conversion 12 hours after the first touch.
    ["b", "2025-03-01T22:00:00Z", "touch", "email", "", "Email Link Clicked", "true"],
    ["b", "2025-03-02T08:00:00Z", "touch", "ads", "", "Ad Clicked", "true"],
    ["b", "2025-03-02T10:00:00Z", "conversion", "store", "300", "", "true"],
    # c: a store purchase with no touch (direct).
    ["c", "2025-03-05T10:00:00Z", "conversion", "store", "50", "", "true"],
    # d: email then stops at a push delivery, no conversion.
    ["d", "2025-03-01T10:00:00Z", "touch", "email", "", "Email Link Clicked", "false"],
    ["d", "2025-03-01T11:00:00Z", "touch", "push", "", "Push Delivered", "false"],
    # e: stops at a push delivery too; two anonymous sessions (hours apart), never known.
    ["e", "2025-03-02T10:00:00Z", "touch", "push", "", "Push Delivered", "false"],
    ["e", "2025-03-02T15:00:00Z", "touch", "push", "", "Push Delivered", "false"],
    # f: stops at an e-mail click; anonymous first, identified later the same day.
    ["f", "2025-03-03T09:00:00Z", "touch", "ads", "", "Ad Clicked", "false"],
    ["f", "2025-03-03T09:10:00Z", "touch", "email", "", "Email Link Clicked", "true"],
]


def analytics(tmp_path: Path, capsys) -> dict:
    path = tmp_path / "events.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "timestamp", "kind", "channel", "value", "event",
                         "identified"])
        writer.writerows(ROWS)
    assert main(["attribution", "journeys", str(path), "--json", "--top", "3"]) == 0
    return json.loads(capsys.readouterr().out)


def test_journey_counts_and_path_lengths(tmp_path, capsys) -> None:
    result = analytics(tmp_path, capsys)
    assert result["journeys"] == {
        "total": 6, "converting": 3, "converting_without_touch": 1, "non_converting": 3,
        "touches_in_journeys": 10, "touches_outside_windows": 0}
    lengths = result["path_length"]
    assert lengths["converting"] == {"journeys": 3, "mean": round(4 / 3, 4),
                                     "counts": {"0": 1, "2": 2}}
    assert lengths["non_converting"] == {"journeys": 3, "mean": 2.0, "counts": {"2": 3}}


def test_time_to_conversion_from_first_touch_and_first_contact(tmp_path, capsys) -> None:
    days = analytics(tmp_path, capsys)["time_to_conversion_days"]
    first_touch = days["from_first_touch"]
    assert first_touch["conversions"] == 2
    assert first_touch["mean"] == round((3 + 0.5) / 2, 4)
    assert first_touch["counts"] == {"under 1 day": 1, "1-3 days": 0, "3-7 days": 1,
                                     "7-14 days": 0, "14-30 days": 0, "30+ days": 0}
    assert first_touch["quantiles"]["p50"] == 1.75
    # From first contact: a 3 days, b 0.5, c (first seen at its purchase) 0.
    assert days["from_first_contact"]["conversions"] == 3
    assert days["from_first_contact"]["mean"] == round(3.5 / 3, 4)


def test_most_frequent_paths_and_where_journeys_stop(tmp_path, capsys) -> None:
    result = analytics(tmp_path, capsys)
    # Most journeys, then most conversions, then the path seen first (d's before e's).
    assert result["top_paths"] == [
        {"path": "email > ads", "journeys": 2, "conversions": 2, "conversion_rate": 1.0},
        {"path": "(direct)", "journeys": 1, "conversions": 1, "conversion_rate": 1.0},
        {"path": "email > push", "journeys": 1, "conversions": 0, "conversion_rate": 0.0},
    ]
    assert result["non_converting_stops"] == [
        {"channel": "push", "event": "Push Delivered", "journeys": 2, "share": 0.6667},
        {"channel": "email", "event": "Email Link Clicked", "journeys": 1, "share": 0.3333},
    ]


def test_share_of_anonymous_sessions_joined_to_a_known_customer(tmp_path, capsys) -> None:
    # Anonymous sessions (30 minutes without an event ends one): d two (10:00, 11:00),
    # e two (10:00, 15:00), f one (09:00, identified at 09:10: joined). d and e never
    # identified.
    sessions = analytics(tmp_path, capsys)["anonymous_sessions"]
    assert sessions == {"sessions": 5, "joined": 1, "share_joined": 0.2}

"""Attribution domain: journeys, windows, the seven models, segments and the event table."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omnicdp.core.errors import InvalidArgument
from omnicdp.services.attribution.journeys import build_journeys
from omnicdp.services.attribution.models import (
    DIRECT,
    MODELS,
    AttributionConfig,
    AttributionEvent,
    AttributionReport,
    attribute,
    attribute_by_segment,
    read_events_table,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def touch(customer: str, days: float, channel: str, event: str | None = None
          ) -> AttributionEvent:
    return AttributionEvent(customer, at(days), "touch", channel, 0.0, event)


def conversion(customer: str, days: float, value: float = 100.0, channel: str = "store"
               ) -> AttributionEvent:
    return AttributionEvent(customer, at(days), "conversion", channel, value)


def credits(report: AttributionReport) -> dict[str, tuple[float, float]]:
    return {name: (credit.conversions, credit.revenue)
            for name, credit in report.channels.items()}


def assert_credits(report: AttributionReport, expected: dict[str, tuple[float, float]]) -> None:
    actual = credits(report)
    assert set(actual) == set(expected)
    for name, (conversions, revenue) in expected.items():
        assert actual[name][0] == pytest.approx(conversions, abs=1e-12), name
        assert actual[name][1] == pytest.approx(revenue, abs=1e-9), name


def test_last_touch_credits_latest_qualifying_touch() -> None:
    events = [
        touch("c1", 0, "ads"),
        touch("c1", 5, "email"),
        touch("c1", 8, "push", "Push Delivered"),  # a view 2 days before: outside push's 1 day
        conversion("c1", 10, 80.0),
    ]
    assert_credits(attribute(events, "last_touch"), {"email": (1.0, 80.0)})


def test_first_touch_credits_earliest_qualifying_touch() -> None:
    events = [touch("c1", 0, "ads"), touch("c1", 5, "email"), conversion("c1", 10, 80.0)]
    assert_credits(attribute(events, "first_touch"), {"ads": (1.0, 80.0)})


def test_store_purchase_one_day_after_email_open_credits_email() -> None:
    events = [touch("c1", 0, "email", "Email Opened"), conversion("c1", 1, 50.0, "store")]
    assert_credits(attribute(events, "last_touch"), {"email": (1.0, 50.0)})


def test_store_purchase_three_days_after_email_open_credits_direct() -> None:
    events = [touch("c1", 0, "email", "Email Opened"), conversion("c1", 3, 50.0, "store")]
    assert_credits(attribute(events, "last_touch"), {DIRECT: (1.0, 50.0)})


def test_view_events_match_case_insensitively() -> None:
    events = [touch("c1", 0, "email", "email opened"), conversion("c1", 3, 50.0)]
    assert_credits(attribute(events, "last_touch"), {DIRECT: (1.0, 50.0)})


def test_click_twenty_days_before_counts_with_lookback_30_not_10() -> None:
    events = [touch("c1", 0, "ads", "Ad Clicked"), conversion("c1", 20, 40.0)]
    assert_credits(attribute(events, "last_touch", AttributionConfig(lookback_days=30)),
                   {"ads": (1.0, 40.0)})
    assert_credits(attribute(events, "last_touch", AttributionConfig(lookback_days=10)),
                   {DIRECT: (1.0, 40.0)})


def test_touch_at_conversion_instant_counts_and_later_touch_goes_to_next_conversion() -> None:
    events = [
        conversion("c1", 2, 10.0),
        touch("c1", 2, "email"),  # same instant as the first conversion, listed after it
        touch("c1", 3, "ads"),
        conversion("c1", 4, 30.0),
    ]
    assert_credits(attribute(events, "first_touch"), {"email": (1.0, 10.0), "ads": (1.0, 30.0)})


def test_linear_splits_evenly_per_touch() -> None:
    events = [touch("c1", 0, "ads"), touch("c1", 1, "email"), touch("c1", 2, "ads"),
              conversion("c1", 3, 90.0)]
    assert_credits(attribute(events, "linear"), {"ads": (2 / 3, 60.0), "email": (1 / 3, 30.0)})


def test_position_based_gives_40_20_40_on_four_touches() -> None:
    events = [touch("c1", 0, "ads"), touch("c1", 1, "email"), touch("c1", 2, "sms"),
              touch("c1", 3, "push"), conversion("c1", 4, 100.0)]
    assert_credits(attribute(events, "position_based"), {
        "ads": (0.4, 40.0), "email": (0.1, 10.0), "sms": (0.1, 10.0), "push": (0.4, 40.0)})


def test_position_based_gives_all_to_one_touch_and_halves_to_two() -> None:
    events = [touch("c1", 0, "ads"), conversion("c1", 1, 10.0),
              touch("c2", 0, "ads"), touch("c2", 1, "email"), conversion("c2", 2, 20.0)]
    assert_credits(attribute(events, "position_based"),
                   {"ads": (1.5, 20.0), "email": (0.5, 10.0)})


def test_time_decay_weight_halves_per_seven_days() -> None:
    events = [touch("c1", 0, "email"), touch("c1", 7, "ads"), touch("c1", 14, "push"),
              conversion("c1", 14, 70.0)]
    # Raw weights 1/4, 1/2, 1 normalise to 1/7, 2/7, 4/7.
    assert_credits(attribute(events, "time_decay"), {
        "email": (1 / 7, 10.0), "ads": (2 / 7, 20.0), "push": (4 / 7, 40.0)})


def test_markov_matches_hand_solved_two_channel_chain() -> None:
    events = [
        touch("c1", 0, "ads"), touch("c1", 1, "email"), conversion("c1", 2, 50.0),
        touch("c2", 0, "email"), touch("c2", 1, "ads"), conversion("c2", 2, 35.0),
        touch("c3", 0, "ads"),  # never converts
    ]
    # start -> ads 2/3, email 1/3; ads -> email, conversion, null 1/3 each;
    # email -> conversion, ads 1/2 each. P(conversion) = 2/3.
    # Without ads: 1/3 * 1/2 = 1/6, removal effect 3/4. Without email: 2/3 * 1/3 = 2/9,
    # removal effect 2/3. Shares 9/17 and 8/17 of 2 conversions and 85 revenue.
    assert_credits(attribute(events, "markov"), {
        "ads": (18 / 17, 45.0), "email": (16 / 17, 40.0)})


def test_markov_credits_untouched_conversions_to_direct_outside_the_chain() -> None:
    events = [touch("c1", 0, "ads"), conversion("c1", 1, 20.0), conversion("c2", 1, 5.0)]
    assert_credits(attribute(events, "markov"), {"ads": (1.0, 20.0), DIRECT: (1.0, 5.0)})


def test_shapley_simplified_matches_hand_computed_two_channel_game() -> None:
    events = [
        touch("c1", 0, "ads"), touch("c1", 1, "email"), touch("c1", 2, "ads"),
        conversion("c1", 3, 100.0),
        touch("c2", 0, "ads"), conversion("c2", 1, 10.0),
        touch("c3", 0, "ads"), conversion("c3", 1, 10.0),
        touch("c4", 0, "email"), conversion("c4", 1, 40.0),
    ]
    # v({ads}) = 2, v({email}) = 1, v({ads, email}) = 4.
    # ads: (2 + (4 - 1)) / 2 = 2.5; email: (1 + (4 - 2)) / 2 = 1.5.
    assert_credits(attribute(events, "shapley_simplified"),
                   {"ads": (2.5, 70.0), "email": (1.5, 90.0)})


def random_events(seed: int, customers: int = 60) -> list[AttributionEvent]:
    rng = random.Random(seed)
    channels = ["email", "ads", "push", "sms", "messenger", "web"]
    names = [None, "Email Opened", "Ad Impression", "Ad Clicked", "Push Delivered",
             "SMS Sent", "Push Opened"]
    events = []
    for number in range(customers):
        customer = f"c{number}"
        for _ in range(rng.randint(1, 12)):
            day = rng.uniform(0, 45)
            if rng.random() < 0.2:
                events.append(conversion(customer, day, round(rng.uniform(0, 300), 2),
                                         rng.choice(["web", "store"])))
            else:
                events.append(touch(customer, day, rng.choice(channels), rng.choice(names)))
    rng.shuffle(events)
    return events


@pytest.mark.parametrize("model", MODELS)
def test_credits_sum_to_totals_for_every_model(model: str) -> None:
    events = random_events(seed=11)
    report = attribute(events, model)
    expected_revenue = math.fsum(e.value for e in events if e.kind == "conversion")
    assert report.total_conversions == sum(e.kind == "conversion" for e in events)
    assert report.total_revenue == pytest.approx(expected_revenue)
    assert math.fsum(c.conversions for c in report.channels.values()) == pytest.approx(
        report.total_conversions)
    assert math.fsum(c.revenue for c in report.channels.values()) == pytest.approx(
        report.total_revenue)
    revenues = [credit.revenue for credit in report.channels.values()]
    assert revenues == sorted(revenues, reverse=True)

    segments = attribute_by_segment(events, model)
    assert sum(r.total_conversions for r in segments.values()) == report.total_conversions
    for segment in segments.values():
        assert math.fsum(c.conversions for c in segment.channels.values()) == pytest.approx(
            segment.total_conversions)
        assert math.fsum(c.revenue for c in segment.channels.values()) == pytest.approx(
            segment.total_revenue)


def test_shapley_simplified_closed_form_equals_coalition_enumeration() -> None:
    events = random_events(seed=5, customers=40)
    journeys = [j for j in build_journeys(events) if j.converted]
    players = sorted({c for j in journeys for c in j.channels} | {DIRECT})
    channel_sets = [frozenset(j.channels) or frozenset({DIRECT}) for j in journeys]

    def value(coalition: frozenset[str]) -> int:
        return sum(channel_set <= coalition for channel_set in channel_sets)

    n = len(players)
    expected = {}
    for player in players:
        others = [p for p in players if p != player]
        expected[player] = sum(
            math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            * (value(frozenset(subset) | {player}) - value(frozenset(subset)))
            for size in range(n) for subset in itertools.combinations(others, size))

    report = attribute(events, "shapley_simplified")
    for player, share in expected.items():
        credit = report.channels.get(player)
        assert (credit.conversions if credit else 0.0) == pytest.approx(share, abs=1e-9)


def test_segments_classify_new_contact_never_bought_and_active_buyer() -> None:
    events = [
        touch("new", 0, "email"), conversion("new", 10, 10.0),      # new_contact
        conversion("new", 20, 20.0),                                 # active_buyer (2nd order)
        touch("old", 0, "ads"), touch("old", 40, "ads"),
        conversion("old", 45, 40.0),                                 # never_bought
        touch("idle", 0, "sms"),                                     # no conversion
    ]
    reports = attribute_by_segment(events, "last_touch")
    assert list(reports) == ["new_contact", "never_bought", "active_buyer"]
    assert_credits(reports["new_contact"], {"email": (1.0, 10.0)})
    assert_credits(reports["active_buyer"], {DIRECT: (1.0, 20.0)})
    assert_credits(reports["never_bought"], {"ads": (1.0, 40.0)})
    assert [r.total_conversions for r in reports.values()] == [1, 1, 1]


def test_unknown_model_is_rejected_listing_the_valid_ones() -> None:
    with pytest.raises(InvalidArgument) as caught:
        attribute([], "u_shaped")
    for model in MODELS:
        assert model in str(caught.value)


def test_report_to_dict_has_the_contract_shape() -> None:
    events = [touch("c1", 0, "ads"), touch("c1", 1, "email"), conversion("c1", 2, 10.0),
              conversion("c2", 1, 1 / 3)]
    data = attribute(events, "linear").to_dict()
    contract = {name: {"conversions": row["conversions"], "revenue": row["revenue"]}
                for name, row in data["channels"].items()}
    assert {k: v for k, v in data.items() if k != "channels"} == {
        "model": "linear",
        "total_conversions": 2,
        "total_revenue": 10.33,
    }
    assert contract == {
        "ads": {"conversions": 0.5, "revenue": 5.0},
        "email": {"conversions": 0.5, "revenue": 5.0},
        DIRECT: {"conversions": 1.0, "revenue": 0.33},
    }
    assert list(data["channels"]) == ["ads", "email", DIRECT]
    # Beyond the contract: every split adds up to the channel's credit.
    assert data["channels"]["ads"]["by_place"]["store"] == {"conversions": 0.5, "revenue": 5.0}
    assert data["channels"][DIRECT]["by_touch"]["none"] == {"conversions": 1.0,
                                                            "revenue": 0.33}


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_reading_rejects_bad_timestamp_naming_row_and_column(tmp_path: Path) -> None:
    table = write(tmp_path / "events.csv",
                  "customer_id,timestamp,kind,channel,value,event\n"
                  "c1,2025-03-01,touch,email,,Email Opened\n"
                  "c1,yesterday,conversion,store,20\n")
    with pytest.raises(InvalidArgument) as caught:
        read_events_table(table)
    message = str(caught.value)
    assert "row 2" in message and "timestamp" in message and "'yesterday'" in message
    assert [v.field for v in caught.value.violations] == ["row 2 (line 3), column timestamp"]


def test_csv_reading_takes_dates_and_naive_times_in_the_business_time_zone(
        tmp_path: Path) -> None:
    table = write(tmp_path / "events.csv",
                  "customer_id,timestamp,kind,channel,value,event\n"
                  "c1,2025-03-01,touch,email,,Email Opened\n"
                  "c1,2025-03-02T09:30:00,conversion,store,20.5,\n"
                  "c1,2025-03-02T12:00:00+03:00,touch,ads,,\n"
                  "c1,2025-03-02T12:00:00Z,touch,ads,,\n")
    moscow = [
        AttributionEvent("c1", datetime(2025, 2, 28, 21, tzinfo=UTC), "touch", "email", 0.0,
                         "Email Opened"),
        AttributionEvent("c1", datetime(2025, 3, 2, 6, 30, tzinfo=UTC), "conversion",
                         "store", 20.5, None),
        AttributionEvent("c1", datetime(2025, 3, 2, 9, 0, tzinfo=UTC), "touch", "ads"),
        AttributionEvent("c1", datetime(2025, 3, 2, 12, 0, tzinfo=UTC), "touch", "ads"),
    ]
    assert read_events_table(table) == moscow  # Europe/Moscow by default, UTC+3
    utc = read_events_table(table, time_zone="UTC")
    assert [e.timestamp for e in utc] == [datetime(2025, 3, 1, tzinfo=UTC),
                                          datetime(2025, 3, 2, 9, 30, tzinfo=UTC),
                                          moscow[2].timestamp, moscow[3].timestamp]


def test_csv_reading_names_missing_columns(tmp_path: Path) -> None:
    table = write(tmp_path / "events.csv", "customer_id,timestamp,channel\nc1,2025-03-01,web\n")
    with pytest.raises(InvalidArgument, match="missing column.*kind, value"):
        read_events_table(table)


@pytest.mark.parametrize("model", MODELS)
def test_an_event_table_without_rows_attributes_nothing(tmp_path: Path, model: str) -> None:
    table = write(tmp_path / "events.csv", "customer_id,timestamp,kind,channel,value\n")
    report = attribute(read_events_table(table), model)
    assert (report.total_conversions, report.total_revenue, dict(report.channels)) == (
        0, 0.0, {})


def test_parquet_table_reads_like_csv(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "customer_id": ["c1", "c1"],
        "timestamp": [datetime(2025, 3, 1, 10), datetime(2025, 3, 1, 12)],
        "kind": ["touch", "conversion"],
        "channel": ["ads", "web"],
        "value": [None, 99.0],
    })
    pq.write_table(table, tmp_path / "events.parquet")
    report = attribute(read_events_table(tmp_path / "events.parquet"), "last_touch")
    assert_credits(report, {"ads": (1.0, 99.0)})

"""What marketers read: one windowing rule for converting and non-converting journeys,
the business time zone, and credit split by place, segment (from the customer's history)
and touch type, adding up to what was attributed; over gRPC, the service's segments read
the customers' history before the report's period."""

from __future__ import annotations

import csv
import json
import math
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omnicdp.cli.main import main
from omnicdp.core import settings as config
from omnicdp.core.errors import FailedPrecondition, InvalidArgument, NotFound
from omnicdp.services.attribution.client import AttributionClient
from omnicdp.services.attribution.journeys import (
    AttributionConfig,
    AttributionEvent,
    CustomerHistory,
    build_journeys,
)
from omnicdp.services.attribution.models import MODELS, attribute
from omnicdp.services.attribution.server import build as build_attribution
from omnicdp.services.attribution.settings import Settings as AttributionSettings
from tests.gateway_kit import WRITER, auth, ev

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def touch(customer: str, days: float, channel: str, event: str | None = None
          ) -> AttributionEvent:
    return AttributionEvent(customer, at(days), "touch", channel, 0.0, event)


def purchase(customer: str, days: float, value: float, place: str = "store"
             ) -> AttributionEvent:
    return AttributionEvent(customer, at(days), "conversion", place, value)


def test_converting_and_non_converting_journeys_keep_the_same_touches() -> None:
    # The same touches; one customer buys right after the last of them, one never buys.
    pattern = [(0, "ads", "Ad Clicked"), (20, "sms", "SMS Sent"), (40, "ads", "Ad Clicked"),
               (43.5, "push", "Push Delivered"), (45, "email", "Email Opened")]
    events = [touch(c, day, channel, name) for c in ("buyer", "idle")
              for day, channel, name in pattern]
    events.append(purchase("buyer", 45, 100.0))
    journeys = {j.customer_id: j for j in build_journeys(events)}
    # At day 45: the click of day 0 is past the 30-day lookback, the SMS view of day 20 and
    # the push view of day 43.5 past their 1-day windows.
    assert journeys["buyer"].channels == ("ads", "email")
    assert journeys["idle"].channels == journeys["buyer"].channels
    assert not journeys["idle"].converted


def test_markov_sees_non_converting_journeys_through_the_same_windows() -> None:
    # Stale ad clicks of a customer who never bought are outside any window at the
    # customer's last touch: they do not count against ads.
    events = [touch("a", 0, "ads", "Ad Clicked"), purchase("a", 1, 50.0),
              touch("b", 0, "email"), purchase("b", 1, 50.0)]
    events += [touch("idle", day, "ads", "Ad Clicked") for day in (0, 40, 80)]
    journeys = {j.customer_id: j for j in build_journeys(events)}
    assert journeys["idle"].channels == ("ads",)  # only the last click, at its own end


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "timestamp", "kind", "channel", "value", "event"])
        writer.writerows(rows)
    return path


def run_json(*args: str, capsys) -> dict:
    assert main(["attribution", "run", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_date_only_purchase_is_midnight_in_the_business_time_zone(tmp_path, capsys) -> None:
    # Opened at 01:30 in Moscow on 1 March; bought in the store on 3 March (a date only).
    # In Moscow the purchase is at 00:00 on 3 March, 46.5 h after the open, inside the
    # e-mail's 2 days; read as UTC midnight it would be 49.5 h after, outside.
    table = write_csv(tmp_path / "events.csv", [
        ["c1", "2025-02-28T22:30:00Z", "touch", "email", "", "Email Opened"],
        ["c1", "2025-03-03", "conversion", "store", "4500", ""],
    ])
    moscow = run_json(str(table), "--model", "last_touch", capsys=capsys)
    assert moscow["channels"]["email"]["conversions"] == 1.0
    assert moscow["channels"]["email"]["by_place"]["store"]["revenue"] == 4500.0
    assert moscow["channels"]["email"]["splits"] == [
        {"place": "store", "segment": "new_contact", "touch": "view", "conversions": 1.0,
         "revenue": 4500.0}]
    utc = run_json(str(table), "--model", "last_touch", "--time-zone", "UTC", capsys=capsys)
    assert list(utc["channels"]) == ["(direct)"]
    # A naive time is wall-clock time in the zone too: 10:00 in Vladivostok is 00:00 UTC.
    naive = write_csv(tmp_path / "naive.csv", [
        ["c1", "2025-02-28T22:30:00Z", "touch", "email", "", "Email Opened"],
        ["c1", "2025-03-03T10:00:00", "conversion", "store", "4500", ""],
    ])
    far_east = run_json(str(naive), "--model", "last_touch", "--time-zone",
                        "Asia/Vladivostok", "--post-view", "email=49.5h", capsys=capsys)
    assert far_east["channels"]["email"]["conversions"] == 1.0
    shorter = run_json(str(naive), "--model", "last_touch", "--time-zone",
                       "Asia/Vladivostok", "--post-view", "email=49h", capsys=capsys)
    assert list(shorter["channels"]) == ["(direct)"]


def test_a_run_is_logged_to_mlflow_with_its_windows_and_credit(tmp_path, capsys) -> None:
    from mlflow.tracking import MlflowClient

    table = write_csv(tmp_path / "events.csv", [
        ["c1", "2025-03-01T10:00:00Z", "touch", "email", "", "Email Opened"],
        ["c1", "2025-03-02T09:00:00Z", "conversion", "store", "1200", ""],
    ])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    report = run_json(str(table), "--model", "markov", "--post-view", "email=3d",
                      "--mlflow", "--tracking-uri", uri, capsys=capsys)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("cdp-attribution")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.data.params["model"] == "markov"
    assert json.loads(run.data.params["post_view_hours"])["email"] == 72.0
    assert run.data.metrics["conversions.email"] == 1.0
    assert run.data.metrics["revenue.email"] == 1200.0
    logged = client.download_artifacts(run.info.run_id, "report.json", str(tmp_path))
    assert json.loads(Path(logged).read_text()) == report


def test_windows_per_event_come_before_the_channels(tmp_path, capsys) -> None:
    table = write_csv(tmp_path / "events.csv", [
        ["c1", "2025-03-01T10:00:00Z", "touch", "ads", "", "Ad Impression"],
        ["c1", "2025-03-01T16:00:00Z", "conversion", "web", "100", ""],
    ])
    assert "ads" in run_json(str(table), "--model", "last_touch", capsys=capsys)["channels"]
    hidden = run_json(str(table), "--model", "last_touch",
                      "--event-post-view", "Ad Impression=4h", capsys=capsys)
    assert list(hidden["channels"]) == ["(direct)"]


def store_purchases_after_email() -> tuple[list[AttributionEvent], CustomerHistory]:
    """Three customers each open an e-mail and buy in the store the next day; the profile
    knows one as a new contact, one as known for months, one as having bought last year."""
    events = []
    for customer, revenue in (("new", 1000.0), ("known", 2000.0), ("returning", 4000.0)):
        events += [touch(customer, 0, "email", "Email Opened"),
                   purchase(customer, 1, revenue, "store")]
    events += [touch("web-buyer", 0, "ads", "Ad Clicked"), purchase("web-buyer", 2, 300.0,
                                                                      "web")]
    history = CustomerHistory.from_mapping({
        "new": (at(-5), None),
        "known": (at(-120), None),
        "returning": (at(-400), at(-300)),
    })
    return events, history


def test_store_purchase_credits_the_email_opened_the_day_before_split_by_segment() -> None:
    events, history = store_purchases_after_email()
    report = attribute(events, "last_touch", history=history)
    email = report.channels["email"]
    assert (email.conversions, email.revenue) == (3.0, 7000.0)
    assert email.by("segment") == {"new_contact": (1.0, 1000.0),
                                   "never_bought": (1.0, 2000.0),
                                   "active_buyer": (1.0, 4000.0)}
    assert email.by("place") == {"online": (0.0, 0.0), "store": (3.0, 7000.0)}
    assert email.by("touch") == {"click": (0.0, 0.0), "view": (3.0, 7000.0), "none": (0.0, 0.0)}
    ads = report.channels["ads"]
    assert ads.by("place")["online"] == (1.0, 300.0)
    assert ads.by("touch")["click"] == (1.0, 300.0)
    # Without the profile's history every one of them looks new.
    alone = attribute(events, "last_touch").channels["email"]
    assert alone.by("segment")["new_contact"] == (3.0, 7000.0)


def test_cli_reads_segments_from_a_customer_table(tmp_path, capsys) -> None:
    events = write_csv(tmp_path / "events.csv", [
        [c, "2025-03-10T12:00:00Z", "touch", "email", "", "Email Opened"]
        for c in ("new", "known", "returning")] + [
        [c, "2025-03-11T12:00:00Z", "conversion", "store", str(v), ""]
        for c, v in (("new", 1000), ("known", 2000), ("returning", 4000))])
    customers = tmp_path / "customers.csv"
    customers.write_text("customer_id,first_seen,first_purchase\n"
                         "new,2025-03-05,\n"
                         "known,2024-11-10,\n"
                         "returning,2024-02-03,2024-05-14\n")
    report = run_json(str(events), "--model", "last_touch", "--history", str(customers),
                      capsys=capsys)
    by_segment = report["channels"]["email"]["by_segment"]
    assert by_segment == {"new_contact": {"conversions": 1.0, "revenue": 1000.0},
                          "never_bought": {"conversions": 1.0, "revenue": 2000.0},
                          "active_buyer": {"conversions": 1.0, "revenue": 4000.0}}


def test_segment_is_the_customers_at_each_touch() -> None:
    events = [touch("c", 0, "email"), purchase("c", 1, 100.0, "web"),
              touch("c", 2, "sms"), touch("c", 3, "email"), purchase("c", 4, 300.0, "store")]
    report = attribute(events, "linear")
    email, sms = report.channels["email"], report.channels["sms"]
    assert email.by("segment") == {"new_contact": (1.0, 100.0), "never_bought": (0.0, 0.0),
                                   "active_buyer": (0.5, 150.0)}
    assert sms.by("segment")["active_buyer"] == (0.5, 150.0)
    assert email.by("place") == {"online": (1.0, 100.0), "store": (0.5, 150.0)}


@pytest.mark.parametrize("model", MODELS)
def test_splits_add_up_to_what_was_attributed_for_every_model(model: str) -> None:
    events, history = store_purchases_after_email()
    events += [touch("web-buyer", 1, "push"), touch("idle", 0, "email", "Email Opened"),
               touch("idle", 0.5, "push"), purchase("new", 3, 70.0, "web")]
    report = attribute(events, model, history=history)
    assert math.fsum(c.conversions for c in report.channels.values()) == pytest.approx(
        report.total_conversions)
    assert math.fsum(c.revenue for c in report.channels.values()) == pytest.approx(
        report.total_revenue)
    for credit in report.channels.values():
        for dimension in ("place", "segment", "touch"):
            parts = credit.by(dimension).values()
            assert math.fsum(c for c, _ in parts) == pytest.approx(credit.conversions)
            assert math.fsum(r for _, r in parts) == pytest.approx(credit.revenue)


def test_config_rejects_an_unknown_time_zone() -> None:
    with pytest.raises(InvalidArgument, match="time zone"):
        AttributionConfig(time_zone="Mars/Olympus")


def test_service_segments_read_the_history_before_the_period(client, services) -> None:
    email = {"email": "olga@example.ru"}
    client.post("/v1/events", headers=auth(WRITER), json={"events": [
        ev("old-order", channel="web", identifiers=email, timestamp="2025-06-01T10:00:00Z",
           properties={"revenue": 700}),
        ev("open", event="Email Opened", channel="email", identifiers=email,
           timestamp="2026-03-01T09:00:00Z", properties={}),
        ev("store", channel="store", identifiers=email, timestamp="2026-03-02T08:00:00Z",
           properties={"revenue": 5000}),
    ]})
    attribution = AttributionClient(services.address(services.attribution), 10)
    try:
        march = attribution.run("last_touch", start=datetime(2026, 3, 1, tzinfo=UTC))
        assert march.total_conversions == 1
        email_credit = march.channels["email"]
        assert email_credit.by("segment")["active_buyer"] == (1.0, 5000.0)
        assert email_credit.by("place")["store"] == (1.0, 5000.0)
        # Windows travel in the request: a 20-hour e-mail window misses the purchase.
        short = attribution.run("last_touch", start=datetime(2026, 3, 1, tzinfo=UTC),
                                post_view_windows={"email": timedelta(hours=20)})
        assert list(short.channels) == ["(direct)"]
        markov = attribution.run("markov")
        assert markov.method.startswith("exact")
    finally:
        attribution.close()


def test_a_report_as_an_operation_outlives_the_callers_deadline(client, services) -> None:
    email = {"email": "anna@example.ru"}
    client.post("/v1/events", headers=auth(WRITER), json={"events": [
        ev("sms", event="SMS Sent", channel="sms", identifiers=email,
           timestamp="2026-03-01T09:00:00Z", properties={}),
        ev("order", channel="store", identifiers=email, timestamp="2026-03-01T20:00:00Z",
           properties={"revenue": 1500}),
    ]})
    attribution = AttributionClient(services.address(services.attribution), 10)
    try:
        name = attribution.start("linear", post_view_windows={"sms": timedelta(hours=12)})
        assert name.startswith("operations/")
        report = None
        for _ in range(600):  # made in the background: poll until it is done
            report = attribution.operation(name)
            if report is not None:
                break
            time.sleep(0.05)
        assert report is not None and report.model == "linear"
        assert report.channels["sms"].by("place")["store"] == (1.0, 1500.0)
        assert report.events_read == 2
        # Bad arguments fail at the start, not in the background.
        with pytest.raises(InvalidArgument, match="time zone"):
            attribution.start("linear", time_zone="Mars/Olympus")
        with pytest.raises(NotFound):
            attribution.operation("operations/0000")
    finally:
        attribution.close()


def test_a_report_over_the_service_is_logged_to_mlflow_when_asked(client, services,
                                                                  tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    email = {"email": "vera@example.ru"}
    client.post("/v1/events", headers=auth(WRITER), json={"events": [
        ev("push", event="Push Opened", channel="push", identifiers=email,
           timestamp="2026-03-01T09:00:00Z", properties={}),
        ev("buy", channel="web", identifiers=email, timestamp="2026-03-01T12:00:00Z",
           properties={"revenue": 900}),
    ]})
    answer = client.get("/v1/reports/attribution?model=linear&mlflow=true&wait_seconds=30",
                        headers=auth(WRITER))
    assert answer.status_code == 200, answer.text
    report = answer.json()
    run = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(
        report["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["model"] == "linear"
    assert run.data.metrics["revenue.push"] == report["channels"]["push"]["revenue"] == 900
    # Not asked: not logged.
    assert client.get("/v1/reports/attribution?model=linear&wait_seconds=30",
                      headers=auth(WRITER)).json()["mlflow_run_id"] is None


def test_a_service_without_a_tracking_store_refuses_to_log(services) -> None:
    host = build_attribution(config.load(
        AttributionSettings, environ={}, address="127.0.0.1:0",
        profile_addr=services.address(services.profile)))
    host.start()
    attribution = AttributionClient(f"127.0.0.1:{host.port}", 10)
    try:
        with pytest.raises(FailedPrecondition, match="CDP_MLFLOW_TRACKING_URI"):
            attribution.start("linear", log_to_mlflow=True)
        assert attribution.start("linear").startswith("operations/")
    finally:
        attribution.close()
        host.stop(1)

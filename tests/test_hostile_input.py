"""Hostile input through the gateway: every body gets a 2xx or a 4xx problem, a bad event
is rejected alone with its field named, and the good events of its batch are stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from omnicdp.core import jsonvalues
from omnicdp.core.jsonvalues import MAX_NESTING_DEPTH
from omnicdp.services.attribution import sources
from omnicdp.services.attribution.models import attribute
from tests.gateway_kit import WRITER, auth, ev

GOOD_EMAIL = "good@example.ru"


def post_raw(client, body: str):
    return client.post("/v1/events", content=body.encode("utf-8", "surrogatepass"),
                       headers={**auth(WRITER), "content-type": "application/json"})


def batch_text(bad_event_text: str) -> str:
    """A batch of the bad event (as raw JSON text) and a good one."""
    good = json.dumps(ev("good-1", identifiers={"email": GOOD_EMAIL}))
    return '{"events": [' + bad_event_text + ", " + good + "]}"


def assert_bad_rejected_good_stored(client, response, field_prefix: str) -> dict:
    assert response.status_code == 200, response.text
    bad, good = response.json()["results"]
    assert bad["status"] == "rejected", bad
    assert any(v["field"].startswith(field_prefix) for v in bad["violations"]), bad
    assert good["status"] == "accepted"
    journey = client.get(f"/v1/profiles/{good['customer_id']}/events", headers=auth(WRITER))
    assert [e["message_id"] for e in journey.json()["events"]] == ["good-1"]
    return bad


def bad_event_text(**fields_as_json_text: str) -> str:
    """An otherwise valid event whose fields are given as raw JSON text."""
    base = {k: json.dumps(v) for k, v in ev("bad-1").items()}
    base.update(fields_as_json_text)
    return "{" + ", ".join(f'"{k}": {v}' for k, v in base.items()) + "}"


def test_lone_surrogate_in_a_trait_rejects_only_its_event(client) -> None:
    response = post_raw(client, batch_text(bad_event_text(traits='{"city": "a\\ud800"}')))
    bad = assert_bad_rejected_good_stored(client, response, "traits.city")
    assert "surrogate" in bad["violations"][0]["description"]


def test_lone_surrogate_in_a_key_or_message_id_is_not_echoed_raw(client) -> None:
    response = post_raw(client, batch_text(bad_event_text(
        message_id='"m\\udc00"', properties='{"k\\ud800": 1}')))
    bad = assert_bad_rejected_good_stored(client, response, "message_id")
    assert bad["message_id"] is None
    assert any(v["field"] == "properties.k\\ud800" for v in bad["violations"])


@pytest.mark.parametrize("timestamp", [
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z",
    "1700000000", 1700000000, "yesterday", "2026-02-30T00:00:00Z",
])
def test_timestamps_out_of_range_or_not_rfc3339_reject_only_their_event(client,
                                                                        timestamp) -> None:
    response = post_raw(client, batch_text(bad_event_text(timestamp=json.dumps(timestamp))))
    assert_bad_rejected_good_stored(client, response, "timestamp")


def test_epoch_zero_is_stored_as_1970_not_as_the_time_of_receipt(client) -> None:
    body = {"events": [ev("epoch", timestamp="1970-01-01T00:00:00Z",
                          identifiers={"email": "epoch@example.ru"})]}
    [result] = client.post("/v1/events", json=body, headers=auth(WRITER)).json()["results"]
    assert result["status"] == "accepted"
    journey = client.get(f"/v1/profiles/{result['customer_id']}/events",
                         headers=auth(WRITER)).json()
    assert journey["events"][0]["timestamp"] == "1970-01-01T00:00:00Z"


def nested(levels: int, kind: str) -> str:
    opening, closing = ('{"a": ', "}") if kind == "dict" else ("[", "]")
    return opening * levels + "1" + closing * levels


@pytest.mark.parametrize("levels, kind", [
    (MAX_NESTING_DEPTH + 1, "dict"), (33, "dict"), (49, "list"), (600, "dict"),
    (900, "list"), (5000, "dict"), (25_000, "list"),
])
def test_deep_nesting_rejects_only_its_event(client, levels: int, kind: str) -> None:
    response = post_raw(client, batch_text(bad_event_text(
        properties='{"deep": ' + nested(levels, kind) + "}")))
    bad = assert_bad_rejected_good_stored(client, response, "properties.deep")
    assert f"deeper than {MAX_NESTING_DEPTH}" in bad["violations"][0]["description"]


def test_nesting_at_the_limit_is_accepted(client) -> None:
    deep = json.loads(nested(MAX_NESTING_DEPTH - 1, "dict"))
    body = {"events": [ev("deep-ok", properties={"deep": deep})]}
    [result] = client.post("/v1/events", json=body, headers=auth(WRITER)).json()["results"]
    assert result["status"] == "accepted"


@pytest.mark.parametrize("number", [
    "1" + "0" * 400, "-" + "9" * 5000, "1e400", "NaN", "Infinity", "-Infinity",
    str(2**53), "1e300",
])
def test_numbers_out_of_range_reject_only_their_event(client, number: str) -> None:
    response = post_raw(client, batch_text(bad_event_text(properties='{"n": ' + number + "}")))
    assert_bad_rejected_good_stored(client, response, "properties.n")


@pytest.mark.parametrize("revenue", ["NaN", "Infinity", "1.7e308", "1000000000001", "-1"])
def test_revenue_out_of_range_rejects_only_its_event(client, revenue: str) -> None:
    response = post_raw(client, batch_text(bad_event_text(properties='{"revenue": '
                                                          + revenue + "}")))
    assert_bad_rejected_good_stored(client, response, "properties.revenue")


def test_huge_revenues_cannot_break_the_attribution_report(client) -> None:
    email = {"email": "rich@example.ru"}
    client.post("/v1/events", headers=auth(WRITER), json={"events": [
        ev("big-1", identifiers=email, properties={"revenue": 1.7e308}),
        ev("big-2", identifiers=email, properties={"revenue": 1.7e308}),
        ev("fine", identifiers=email, properties={"revenue": 1e12}),
    ]})
    report = client.get("/v1/reports/attribution", headers=auth(WRITER))
    assert report.status_code == 200
    assert report.json()["total_revenue"] == 1e12


def test_revenues_stored_before_the_bound_count_as_unknown_in_reports() -> None:
    when = datetime(2026, 3, 1, tzinfo=UTC)
    events = [sources.to_attribution_event("c", when, "Order Completed", "web",
                                           {"revenue": value})
              for value in (1.7e308, 1.7e308, float("nan"), 50.0)]
    report = attribute([e for e in events if e], "linear")
    assert report.total_revenue == 50.0


@pytest.mark.parametrize("email", ["a\x00b@example.ru", "ma\u200bria@example.ru",
                                   "maria@exam\u2060ple.ru", "x\x07@example.ru"])
def test_emails_with_nul_or_invisible_characters_are_rejected(client, email: str) -> None:
    response = post_raw(client, batch_text(json.dumps(ev("bad-1", identifiers={"email": email}))))
    assert_bad_rejected_good_stored(client, response, "identifiers.email")


def test_nul_in_a_property_string_rejects_only_its_event(client) -> None:
    response = post_raw(client, batch_text(bad_event_text(properties='{"note": "a\\u0000b"}')))
    assert_bad_rejected_good_stored(client, response, "properties.note")


@pytest.mark.parametrize("body", [
    b"\xff\xfe{}", b"[" * 60_000, b'{"events": [' + b"[" * 50_000, b"{" * 3000 + b"}" * 3000,
    b'{"events": 1e999999}', b"",
])
def test_malformed_bodies_are_400_problems_without_echoing_input(client, body: bytes) -> None:
    response = client.post("/v1/events", content=body,
                           headers={**auth(WRITER), "content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert len(response.content) < 1000


def nested_dicts(levels: int) -> object:
    value: object = "leaf"
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.mark.parametrize("value", [
    {"name": "Иван", "tags": ["a", "б", None, True, 1.5, -(2**53 - 1)]},  # all clean
    {"ok": "x", "bad": "a\ud800b"}, {"a\ud800": 1}, {"n": "a\x00b"}, {"\x00": "k"},
    {"big": 2**53}, {"neg": -(2**60)}, {"f": float("nan")}, {"f": float("inf")},
    {"f": 1e300}, [1, [2, [3, "\udfff"]]], nested_dicts(MAX_NESTING_DEPTH),
    nested_dicts(MAX_NESTING_DEPTH + 1), {"x": jsonvalues.OUT_OF_RANGE}, {1: "not a str key"},
    {"t": (1, 2)}, {f"k{i}": "\x00" for i in range(30)},
])
def test_the_quick_check_finds_exactly_what_the_full_walk_finds(value) -> None:
    """Clean values skip building field paths; any value with a problem is reported exactly
    as the full walk reports it (fields, descriptions, the cap on violations)."""
    found: list = []
    jsonvalues._walk(value, "traits", 1, found)
    assert jsonvalues.value_violations(value, "traits", 1) == found[:jsonvalues.MAX_VIOLATIONS]
    if jsonvalues._clean(value, 1):  # else (rare types too) the walk answers
        assert not found


def test_a_retailers_events_pass_the_quick_check() -> None:
    event = {"traits": {"first_name": "Виктор", "address": {"city": "Казань", "zip": "420111"}},
             "properties": {"revenue": 74990.0, "items": [{"sku": "SOFA-1", "qty": 1}]}}
    assert jsonvalues._clean(event, 0)

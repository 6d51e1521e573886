"""The Segment spec's endpoints over HTTP, in front of the real services: the write key as
the SDKs send it, gzip, the answers and limits the SDKs expect, a partly invalid batch,
retries stored once, alias and group, consent-less context, and CORS for the retailer's
pages only on these endpoints."""

from __future__ import annotations

import base64
import gzip
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from omnicdp.services.gateway.keys import ApiKeys
from omnicdp.services.gateway.routes import Backends, create_app
from omnicdp.services.gateway.server import scrub_span
from tests.gateway_kit import READER, WRITER, assert_conforms, auth, write_keys

SHOP = "http://shop.test"
LIMITED = "limited"  # a write key allowed 2 requests a minute


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.fixture
def api(services, tmp_path) -> Iterator[TestClient]:
    backends = Backends.connect(services.address(services.profile),
                                services.address(services.identity),
                                services.address(services.attribution), deadline=10)
    keys = ApiKeys.load(write_keys(tmp_path / "keys.yaml", **{LIMITED: 2}))
    with TestClient(create_app(keys, backends, cors_origins=[SHOP])) as client:
        yield client
    backends.close()


@pytest.fixture
def document(api) -> dict:
    return api.get("/openapi.json").json()


def lookup(api: TestClient, id_type: str, value: str) -> dict:
    response = api.get("/v1/profiles:lookup", params={"type": id_type, "value": value},
                       headers=auth(WRITER))
    assert response.status_code == 200, response.text
    return response.json()


def journey(api: TestClient, customer_id: str) -> list[dict]:
    response = api.get(f"/v1/profiles/{customer_id}/events", headers=auth(WRITER))
    assert response.status_code == 200, response.text
    return response.json()["events"]


def track(message_id: str, user_id: str = "u-1", **fields) -> dict:
    return {"type": "track", "messageId": message_id, "userId": user_id,
            "event": "Product Viewed", "timestamp": "2026-03-01T10:00:00Z", **fields}


def test_a_batch_with_basic_auth_is_stored_and_answered_as_segment_does(api,
                                                                        document) -> None:
    response = api.post("/v1/batch", headers=basic(WRITER), json={"batch": [
        {"type": "identify", "messageId": "i-1", "userId": "u-1", "anonymousId": "a-1",
         "traits": {"email": "Maria@Example.ru", "firstName": "Мария"}},
        track("t-1", properties={"sku": "SOFA-1"})]})
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert_conforms(document, "POST", "/v1/batch", response)
    profile = lookup(api, "email", "maria@example.ru")
    assert profile == lookup(api, "user_id", "u-1") == lookup(api, "anonymous_id", "a-1")
    assert profile["traits"]["first_name"] == "Мария"
    events = journey(api, profile["customer_id"])
    assert [(e["message_id"], e["type"], e["sent_by"], e["source"]) for e in events] == [
        ("t-1", "track", "writer", "writer"), ("i-1", "identify", "writer", "writer")]
    assert events[0]["properties"]["sku"] == "SOFA-1"


def test_the_write_key_in_the_body_on_analytics_js_paths(api) -> None:
    """analytics.js posts text/plain to /v1/t, /v1/p... with writeKey in the body."""
    body = json.dumps(track("t-js", anonymousId="a-js", writeKey=WRITER))
    response = api.post("/v1/t", content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 200 and response.json() == {"success": True}
    batch = {"batch": [{**track("t-js-2", anonymousId="a-js"), "writeKey": WRITER}]}
    assert api.post("/v1/b", content=json.dumps(batch)).status_code == 200
    profile = lookup(api, "anonymous_id", "a-js")
    assert [e["message_id"] for e in journey(api, profile["customer_id"])] == ["t-js", "t-js-2"]


def test_a_wrong_write_key_is_401_as_the_sdks_read_it(api, document) -> None:
    for headers, body in ((basic("wrong"), track("w-1")),
                          ({}, track("w-2")),
                          ({}, {**track("w-3"), "writeKey": "wrong"}),
                          ({"Authorization": "Basic %%%"}, track("w-4"))):
        response = api.post("/v1/track", headers=headers, json=body)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic")
        answer = response.json()
        assert answer["success"] is False and answer["code"] == "UNAUTHENTICATED"
        assert "write key" in answer["message"]
        assert_conforms(document, "POST", "/v1/track", response)
    no_scope = api.post("/v1/track", headers=basic(READER), json=track("w-5"))
    assert no_scope.status_code == 403 and no_scope.json()["code"] == "PERMISSION_DENIED"
    assert_conforms(document, "POST", "/v1/track", no_scope)
    missing = api.get("/v1/profiles:lookup", params={"type": "user_id", "value": "u-1"},
                      headers=auth(WRITER))
    assert missing.status_code == 404  # nothing was stored


def test_a_retried_batch_is_stored_once(api) -> None:
    batch = {"batch": [track("r-1"), track("r-2", event="Order Completed",
                                           properties={"revenue": 990, "order_id": "o-1"})]}
    for _ in range(3):
        response = api.post("/v1/batch", headers=basic(WRITER), json=batch)
        assert response.status_code == 200 and response.json() == {"success": True}
    profile = lookup(api, "user_id", "u-1")
    assert profile["event_count"] == 2
    assert [e["message_id"] for e in journey(api, profile["customer_id"])] == ["r-1", "r-2"]


def test_gzip_bodies(api, document) -> None:
    body = gzip.compress(json.dumps({"batch": [track("g-1")]}).encode())
    response = api.post("/v1/batch", content=body,
                        headers={**basic(WRITER), "content-encoding": "gzip"})
    assert response.status_code == 200
    assert lookup(api, "user_id", "u-1")["event_count"] == 1
    native = api.post("/v1/events", headers={**auth(WRITER), "content-encoding": "gzip"},
                      content=gzip.compress(json.dumps({"events": [{
                          "message_id": "g-2", "type": "track", "event": "X", "channel": "web",
                          "identifiers": {"user_id": "u-1"}}]}).encode()))
    assert native.status_code == 200 and native.json()["accepted"] == 1

    bomb = gzip.compress(b'{"batch": [' + b" " * 600_000 + b"]}")
    assert len(bomb) < 2_000
    refusals = [
        (api.post("/v1/batch", content=bomb,
                  headers={**basic(WRITER), "content-encoding": "gzip"}), 413,
         "PAYLOAD_TOO_LARGE"),
        (api.post("/v1/batch", content=b"not gzip",
                  headers={**basic(WRITER), "content-encoding": "gzip"}), 400, "MALFORMED_BODY"),
        (api.post("/v1/batch", content=body[:-8],
                  headers={**basic(WRITER), "content-encoding": "gzip"}), 400, "MALFORMED_BODY"),
        (api.post("/v1/batch", content=body,
                  headers={**basic(WRITER), "content-encoding": "br"}), 415,
         "UNSUPPORTED_CONTENT_ENCODING"),
    ]
    for response, status, code in refusals:
        assert (response.status_code, response.json()["code"]) == (status, code)
        assert response.json()["success"] is False
        assert_conforms(document, "POST", "/v1/batch", response)


def test_malformed_and_oversized_requests(api, document) -> None:
    def post(path: str, **kwargs):
        response = api.post(path, headers=basic(WRITER), **kwargs)
        assert_conforms(document, "POST", path, response)
        return response.status_code, response.json()["code"]

    assert post("/v1/batch", content=b"{") == (400, "MALFORMED_JSON")
    assert post("/v1/batch", json={"batch": {"type": "track"}}) == (400, "INVALID_ARGUMENT")
    assert post("/v1/track", json=["not", "a", "message"]) == (400, "INVALID_ARGUMENT")
    assert post("/v1/batch", json={"batch": [track(f"m-{i}") for i in range(501)]}) == (
        413, "TOO_MANY_EVENTS")
    assert post("/v1/batch", json={"batch": [
        track(f"b-{i}", properties={"blob": "x" * 30_000}) for i in range(20)]}) == (
        413, "PAYLOAD_TOO_LARGE")  # 600 KB, though each message is within 32 KB
    assert post("/v1/track", json=track("big", properties={"blob": "x" * 33_000})) == (
        400, "INVALID_EVENTS")  # one message over 32 KB


def test_a_partly_invalid_batch_stores_the_rest_and_reports_it_without_personal_data(
        api, document, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="omnicdp.services.gateway")
    response = api.post("/v1/batch", headers=basic(WRITER), json={"batch": [
        track("ok-1"),
        {"type": "identify", "messageId": "bad-1", "traits": {"email": "secret@example.ru"}},
        track("bad-2", event="Order Completed", properties={"revenue": "990 руб."}),
        {"type": "identify", "messageId": "bad-3", "userId": "u-9",
         "traits": {"email": "zero\u200bwidth@example.ru"}},
        {"type": "fax", "messageId": "bad-4", "userId": "u-9"},
        {"type": "page", "anonymousId": "a-9", "properties": {"n": 1.5e300}}]})
    assert response.status_code == 200
    assert_conforms(document, "POST", "/v1/batch", response)
    answer = response.json()
    assert answer["success"] is True
    assert [(r["index"], r["messageId"], [e["field"] for e in r["errors"]])
            for r in answer["rejected"]] == [
        (1, "bad-1", ["userId"]), (2, "bad-2", ["properties.revenue"]),
        (3, "bad-3", ["traits.email"]), (4, "bad-4", ["type"]), (5, None, ["properties.n"])]
    assert lookup(api, "user_id", "u-1")["event_count"] == 1
    logged = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(logged) == 1
    assert "/v1/batch from key writer: 5 of 6 messages rejected" in logged[0]
    assert "#2 properties: a number from 0 to" in logged[0]
    for personal in ("secret", "example.ru", "990", "u-9", "u-1"):
        assert personal not in logged[0]


def test_a_request_with_no_storable_message_is_400(api, document) -> None:
    single = api.post("/v1/track", headers=basic(WRITER), json=track("x-1", event=None))
    assert single.status_code == 400
    assert_conforms(document, "POST", "/v1/track", single)
    assert single.json()["code"] == "INVALID_EVENTS"
    assert single.json()["errors"] == [{"field": "event", "description":
                                        "required for a track, e.g. 'Order Completed'"}]
    batch = api.post("/v1/batch", headers=basic(WRITER), json={"batch": [
        track("x-2", userId=None), track("x-3", timestamp="03/01/2026")]})
    assert batch.status_code == 400
    assert_conforms(document, "POST", "/v1/batch", batch)
    assert [e["field"] for e in batch.json()["errors"]] == ["batch[0].userId",
                                                            "batch[1].timestamp"]
    assert [r["messageId"] for r in batch.json()["rejected"]] == ["x-2", "x-3"]
    empty = api.post("/v1/batch", headers=basic(WRITER), json={"batch": []})
    assert (empty.status_code, empty.json()) == (200, {"success": True})


def test_over_the_rate_limit_is_429_with_retry_after(api, document) -> None:
    statuses = [api.post("/v1/track", headers=basic(LIMITED), json=track(f"l-{i}"))
                for i in range(3)]
    assert [s.status_code for s in statuses] == [200, 200, 429]
    limited = statuses[-1]
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["success"] is False and limited.json()["code"] == "RATE_LIMITED"
    assert_conforms(document, "POST", "/v1/track", limited)


def test_alias_joins_the_anonymous_history_to_the_known_customer(api) -> None:
    def send(*messages: dict) -> None:
        response = api.post("/v1/batch", headers=basic(WRITER), json={"batch": list(messages)})
        assert response.json() == {"success": True}

    send({"type": "page", "messageId": "p-1", "anonymousId": "a-tablet", "name": "Sofas",
          "timestamp": "2026-03-01T09:00:00Z"})
    send({"type": "identify", "messageId": "i-1", "userId": "u-7",
          "traits": {"email": "ivan@example.ru"}, "timestamp": "2026-03-01T09:30:00Z"})
    assert lookup(api, "anonymous_id", "a-tablet")["customer_id"] != lookup(
        api, "user_id", "u-7")["customer_id"]
    send({"type": "alias", "messageId": "al-1", "previousId": "a-tablet", "userId": "u-7",
          "timestamp": "2026-03-01T09:31:00Z"})
    customer = lookup(api, "email", "ivan@example.ru")
    assert lookup(api, "anonymous_id", "a-tablet")["customer_id"] == customer["customer_id"]
    assert [(e["message_id"], e["type"], e["event"]) for e in journey(
        api, customer["customer_id"])] == [("p-1", "page", "Sofas"), ("i-1", "identify", None),
                                           ("al-1", "alias", None)]


def test_group_attaches_the_customer_to_an_account(api) -> None:
    response = api.post("/v1/group", headers=basic(WRITER), json={
        "messageId": "g-1", "userId": "u-b2b", "groupId": "acme-42",
        "traits": {"name": "Acme", "employees": 40},
        "context": {"traits": {"firstName": "Olga"}}})
    assert response.json() == {"success": True}
    profile = lookup(api, "user_id", "u-b2b")
    assert profile["traits"] == {"first_name": "Olga", "group_id": "acme-42"}
    [event] = journey(api, profile["customer_id"])
    assert event["type"] == "group"
    assert event["properties"] == {"group_id": "acme-42",
                                   "group_traits": {"name": "Acme", "employees": 40}}


def test_the_touch_is_kept_and_ip_and_user_agent_are_not_stored(api) -> None:
    sent_at = datetime.now(UTC)
    happened = sent_at - timedelta(days=10)
    response = api.post("/v1/page", headers=basic(WRITER), json={
        "messageId": "p-utm", "anonymousId": "a-utm", "name": "Spring sale",
        "properties": {"url": "https://shop.test/sale?utm_medium=email"},
        "timestamp": happened.isoformat(), "sentAt": sent_at.isoformat(),
        "context": {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0 (X11)",
                    "campaign": {"name": "spring", "medium": "email", "source": "esp"},
                    "page": {"path": "/sale", "referrer": "https://mail.test/"}}})
    assert response.json() == {"success": True}
    [event] = journey(api, lookup(api, "anonymous_id", "a-utm")["customer_id"])
    assert event["channel"] == "email" and event["event"] == "Spring sale"
    assert event["properties"]["campaign"] == "spring"
    assert event["properties"]["context"] == {
        "campaign": {"name": "spring", "medium": "email", "source": "esp"},
        "page": {"path": "/sale", "referrer": "https://mail.test/"}}
    assert "203.0.113.7" not in json.dumps(event) and "Mozilla" not in json.dumps(event)
    # stamped 10 days before it was sent, it happened 10 days before it arrived
    stored = datetime.fromisoformat(event["timestamp"])
    assert abs(stored - (datetime.fromisoformat(event["received_at"]) - timedelta(days=10))) \
        < timedelta(seconds=1)


def test_cors_on_the_segment_endpoints_for_the_configured_origins_only(api) -> None:
    preflight = {"Origin": SHOP, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = api.options("/v1/t", headers=preflight)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    other = api.options("/v1/t", headers={**preflight, "Origin": "http://evil.test"})
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    sent = api.post("/v1/t", headers={"Origin": SHOP, **basic(WRITER)}, json=track("c-1"))
    assert sent.status_code == 200 and sent.headers["access-control-allow-origin"] == SHOP
    refused = api.post("/v1/t", headers={"Origin": SHOP}, json=track("c-2"))
    assert refused.status_code == 401  # the page can read why
    assert refused.headers["access-control-allow-origin"] == SHOP
    # the native API takes secret keys: no browser's to call
    native = api.options("/v1/events", headers=preflight)
    assert "access-control-allow-origin" not in native.headers
    lookup_from_page = api.get("/v1/profiles:lookup", params={"type": "user_id", "value": "u-1"},
                               headers={"Origin": SHOP, **auth(WRITER)})
    assert "access-control-allow-origin" not in lookup_from_page.headers


def test_traces_keep_neither_the_visitors_user_agent_nor_address(services, tmp_path) -> None:
    """analytics.js sends from the visitor's browser: its user agent and address are the
    visitor's, and stay out of the spans as they stay out of the events."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    backends = Backends.connect(services.address(services.profile),
                                services.address(services.identity),
                                services.address(services.attribution), deadline=10)
    app = create_app(ApiKeys.load(write_keys(tmp_path / "keys.yaml")), backends)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider,
                                       server_request_hook=scrub_span)
    browser = {"User-Agent": "Mozilla/5.0 (Visitor)", **basic(WRITER)}
    try:
        with TestClient(app, client=("198.51.100.77", 50000)) as client:
            assert client.post("/v1/t", headers=browser, json=track("tr-1")).status_code == 200
            assert client.post("/v1/events", headers={**browser, **auth(WRITER)},
                               json={"events": []}).status_code == 200
    finally:
        backends.close()
    spans = {s.name: dict(s.attributes or {}) for s in exporter.get_finished_spans()}
    segment_span, native_span = spans["POST /v1/t"], spans["POST /v1/events"]
    assert segment_span["http.user_agent"] == segment_span["net.peer.ip"] == "redacted"
    assert "Visitor" not in repr(segment_span) and "198.51.100.77" not in repr(segment_span)
    assert native_span["http.user_agent"] == "Mozilla/5.0 (Visitor)"  # a partner's server

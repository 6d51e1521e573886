"""The partner HTTP API in front of the real gRPC services."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from omnicdp.services.gateway.keys import ApiKeys, KeyFileError
from tests.gateway_kit import READER, SLOW, WRITER, auth, ev


def test_missing_or_unknown_key_is_401_problem(client) -> None:
    for headers in ({}, auth("wrong"), {"Authorization": "Basic abc"}):
        response = client.post("/v1/events", json={"events": [ev("m-1")]}, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 401


def test_key_without_scope_is_403(client) -> None:
    response = client.post("/v1/events", json={"events": [ev("m-1")]}, headers=auth(READER))
    assert response.status_code == 403
    assert "events:write" in response.json()["detail"]


def test_duplicate_message_id_is_reported_and_stored_once(client) -> None:
    first = client.post("/v1/events", json={"events": [ev("m-1")]}, headers=auth(WRITER))
    second = client.post("/v1/events", json={"events": [ev("m-1")]}, headers=auth(WRITER))
    assert first.json()["results"][0]["status"] == "accepted"
    assert second.json()["results"][0]["status"] == "duplicate"
    customer_id = first.json()["results"][0]["customer_id"]
    journey = client.get(f"/v1/profiles/{customer_id}/events", headers=auth(WRITER)).json()
    assert [e["message_id"] for e in journey["events"]] == ["m-1"]


def test_invalid_event_is_rejected_alone_and_the_rest_accepted(client) -> None:
    batch = [ev("ok-1"), ev("bad-channel", channel="fax"), ev("bad-time", timestamp="yesterday"),
             ev("bad-phone", identifiers={"phone": "12"}), ev("ok-2"), "not an object"]
    response = client.post("/v1/events", json={"events": batch}, headers=auth(WRITER))
    assert response.status_code == 200
    body = response.json()
    assert [r["status"] for r in body["results"]] == [
        "accepted", "rejected", "rejected", "rejected", "accepted", "rejected"]
    assert (body["accepted"], body["rejected"]) == (2, 4)
    fields = [[v["field"] for v in r.get("violations", [])] for r in body["results"]]
    assert fields[1] == ["channel"]
    assert fields[2] == ["timestamp"]
    assert fields[3] == ["identifiers.phone"]
    customer = body["results"][0]["customer_id"]
    stored = client.get(f"/v1/profiles/{customer}/events", headers=auth(WRITER)).json()
    assert [e["message_id"] for e in stored["events"]] == ["ok-1", "ok-2"]


def test_purchase_with_a_mistyped_phone_is_kept_and_the_phone_flagged(client) -> None:
    sale = ev("sale-1", channel="store", identifiers={"loyalty_id": "CARD-5",
                                                       "phone": "0176 01045518"})
    body = client.post("/v1/events", json={"events": [sale]}, headers=auth(WRITER)).json()
    [result] = body["results"]
    assert result["status"] == "accepted"
    assert [w["field"] for w in result["warnings"]] == ["identifiers.phone"]
    profile = client.get("/v1/profiles:lookup", params={"type": "loyalty_id", "value": "CARD-5"},
                         headers=auth(READER)).json()
    assert "phone" not in profile["identifiers"]
    journey = client.get(f"/v1/profiles/{profile['customer_id']}/events",
                         headers=auth(READER)).json()
    assert journey["events"][0]["identifiers"]["phone"] == "0176 01045518"  # stored as sent


def test_profile_lookup_by_identifier(client) -> None:
    client.post("/v1/events", headers=auth(WRITER), json={"events": [ev(
        "id-1", type="identify", event=None, channel="crm",
        identifiers={"email": "Pavel@Example.ru", "crm_id": "CRM-7"},
        traits={"first_name": "Павел", "city": "Kazan"})]})
    found = client.get("/v1/profiles:lookup", params={"type": "crm_id", "value": "CRM-7"},
                       headers=auth(READER))
    assert found.status_code == 200
    profile = found.json()
    assert profile["identifiers"]["email"] == ["pavel@example.ru"]
    assert profile["traits"] == {"first_name": "Павел", "city": "Kazan"}
    direct = client.get(f"/v1/profiles/{profile['customer_id']}", headers=auth(READER))
    assert direct.json()["customer_id"] == profile["customer_id"]


def test_unknown_profile_is_404_problem(client) -> None:
    missing = client.get("/v1/profiles:lookup", params={"type": "email", "value": "no@body.ru"},
                         headers=auth(READER))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/profiles/cus_unknown", headers=auth(READER)).status_code == 404


def test_bad_identifier_type_names_the_field(client) -> None:
    response = client.get("/v1/profiles:lookup", params={"type": "passport", "value": "1"},
                          headers=auth(READER))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "type"


def test_rate_limit_answers_429_with_retry_after(client) -> None:
    codes = [client.get("/v1/profiles/cus_x", headers=auth(SLOW)).status_code for _ in range(3)]
    assert codes[:2] == [404, 404]
    assert codes[2] == 429
    limited = client.get("/v1/profiles/cus_x", headers=auth(SLOW))
    assert int(limited.headers["Retry-After"]) >= 1


def test_oversized_body_is_413_and_malformed_json_400(client) -> None:
    huge = {"events": [ev(f"m-{i}", traits={"note": "x" * 2000}) for i in range(40)]}
    assert client.post("/v1/events", json=huge, headers=auth(WRITER)).status_code == 413
    broken = client.post("/v1/events", content=b"{not json", headers={
        **auth(WRITER), "content-type": "application/json"})
    assert broken.status_code == 400
    too_many = client.post("/v1/events", json={"events": [ev("m")] * 501}, headers=auth(WRITER))
    assert too_many.status_code == 413
    nothing = client.post("/v1/events", json={"evnts": []}, headers=auth(WRITER))
    assert nothing.status_code == 422
    assert nothing.json()["errors"][0]["field"] == "events"


def test_attribution_report_credits_the_touch_before_a_store_purchase(client) -> None:
    email = {"email": "elena@example.ru"}
    client.post("/v1/events", headers=auth(WRITER), json={"events": [
        ev("t-1", event="Email Opened", channel="email", identifiers=email,
           timestamp="2026-03-01T09:00:00Z", properties={}),
        ev("c-1", channel="store", identifiers=email, timestamp="2026-03-02T09:00:00Z",
           properties={"revenue": 5000}),
    ]})
    report = client.get("/v1/reports/attribution", params={"model": "last_touch"},
                        headers=auth(WRITER)).json()
    assert report["total_conversions"] == 1
    assert list(report["channels"]) == ["email"]
    email_credit = report["channels"]["email"]
    assert (email_credit["conversions"], email_credit["revenue"]) == (1.0, 5000.0)
    assert email_credit["by_place"]["store"] == {"conversions": 1.0, "revenue": 5000.0}
    assert email_credit["by_touch"]["view"] == {"conversions": 1.0, "revenue": 5000.0}
    assert email_credit["by_segment"]["new_contact"] == {"conversions": 1.0,
                                                         "revenue": 5000.0}
    bad = client.get("/v1/reports/attribution", params={"model": "magic"}, headers=auth(WRITER))
    assert bad.status_code == 422
    # The e-mail's post-view window is a query parameter: a day is too short for it.
    shorter = client.get("/v1/reports/attribution",
                         params={"model": "last_touch", "post_view": "email:20h"},
                         headers=auth(WRITER)).json()
    assert list(shorter["channels"]) == ["(direct)"]
    by_event = client.get("/v1/reports/attribution",
                          params={"post_view": "email:20h", "event_post_view": "Email Opened:25h"},
                          headers=auth(WRITER)).json()
    assert list(by_event["channels"]) == ["email"]
    malformed = client.get("/v1/reports/attribution", params={"post_view": "email:soon"},
                           headers=auth(WRITER))
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["field"] == "post_view"


def test_a_report_not_waited_for_is_an_operation_to_poll(client) -> None:
    email = {"email": "irina@example.ru"}
    client.post("/v1/events", headers=auth(WRITER), json={"events": [
        ev("t-1", event="Ad Clicked", channel="ads", identifiers=email,
           timestamp="2026-03-01T09:00:00Z", properties={}),
        ev("c-1", channel="web", identifiers=email, timestamp="2026-03-01T10:00:00Z",
           properties={"revenue": 800}),
    ]})
    started = client.get("/v1/reports/attribution", params={"model": "markov", "wait_seconds": 0},
                         headers=auth(WRITER))
    assert started.status_code == 202
    assert started.json()["done"] is False
    location = started.headers["Location"]
    assert location == "/v1/reports/attribution/operations/" + \
        started.json()["name"].removeprefix("operations/")
    for _ in range(600):  # the report is made in the background; poll as a partner would
        polled = client.get(location, headers=auth(WRITER))
        if polled.status_code == 200:
            break
        assert polled.status_code == 202
        time.sleep(0.05)
    report = polled.json()
    assert report["model"] == "markov" and report["method"].startswith("exact")
    assert report["channels"]["ads"]["conversions"] == 1.0
    unknown = client.get("/v1/reports/attribution/operations/nothing-here", headers=auth(WRITER))
    assert unknown.status_code == 404


def test_identity_down_is_503_and_nothing_is_stored(client, services) -> None:
    """Ingestion needs identity: 503, nothing half-written. Lookups do not: the profile
    service answers them alone, so a known customer is still found."""
    before = client.post("/v1/events", json={"events": [ev("m-up")]}, headers=auth(WRITER))
    assert before.json()["results"][0]["status"] == "accepted"
    services.identity.stop(grace=0)
    response = client.post("/v1/events", json={"events": [ev(
        "m-down", identifiers={"email": "down@example.ru"})]}, headers=auth(WRITER))
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "Retry-After" in response.headers

    def lookup(email: str):
        return client.get("/v1/profiles:lookup", params={"type": "email", "value": email},
                          headers=auth(READER))
    known = lookup("maria@example.ru")
    assert known.status_code == 200 and known.json()["event_count"] == 1
    assert lookup("down@example.ru").status_code == 404  # the refused event: not stored


def test_openapi_documents_the_contract(client) -> None:
    document = client.get("/openapi.json").json()
    assert {"/v1/events", "/v1/profiles:lookup", "/v1/profiles/{customer_id}",
            "/v1/profiles/{customer_id}/events"} <= set(document["paths"])
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert document["paths"]["/v1/events"]["post"]["security"] == [{"apiKey": []}]
    assert "security" not in document["paths"]["/healthz"]["get"]
    event_schema = document["components"]["schemas"]["Event"]
    assert "message_id" in event_schema["required"]
    assert json.dumps(document)  # serialisable


def test_health_endpoints(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["services"] == {"profile": "SERVING", "identity": "SERVING",
                                 "attribution": "SERVING"}


@pytest.mark.parametrize("document, message", [
    ("keys: 3", "top-level 'keys:' list"),
    ("keys: [{name: a, key: k, sha256: " + "0" * 64 + "}]", "exactly one of"),
    ("keys: [{name: a, key: k, scopes: [root]}]", "unknown scopes"),
    ("keys: [{name: a, sha256: xyz}]", "64 hex digits"),
])
def test_bad_keys_file_is_refused_with_the_reason(tmp_path: Path, document: str,
                                                  message: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(document)
    with pytest.raises(KeyFileError, match=message):
        ApiKeys.load(path)

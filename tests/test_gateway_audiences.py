"""The gateway's audience routes in front of the real services, on both backends: defining
needs `audiences:write`, reading `audiences:read` (403 without), bad definitions are 400
problems naming each field, members page with identifiers raw or SHA-256, changes list who
joined and left; every answer held to the OpenAPI document."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.gateway_kit import READER, WRITER, assert_conforms, auth, ev, serve_gateway
from tests.test_profile_audiences import SOFA_RETARGETING

PROBLEM = "application/problem+json"
AD_PARTNER = "ad-partner-key"  # audiences:read alone
BOTH = pytest.mark.parametrize("services", ["duckdb", "postgres"], indirect=True)
RECENT = (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def gateway(services, tmp_path) -> Iterator[TestClient]:
    """The writer holds every scope, the reader profiles:read only, the ad partner
    audiences:read only."""
    yield from serve_gateway(services, tmp_path,
                             {"name": "ads", "key": AD_PARTNER, "scopes": ["audiences:read"]})


@pytest.fixture
def document(gateway) -> dict:
    return gateway.get("/openapi.json").json()


# Five people with nothing in common (near-identical test identifiers would be linked).
PEOPLE = [("Anna.Kovaleva@Mail.RU", "+7 916 482-17-30"), ("boris_p@yandex.ru", "+7 903 715-22-84"),
          ("vera.s@example.com.ru", "+7 925 330-91-07"), ("gleb1990@inbox.ru", "+7 977 604-58-16"),
          ("D.Orlova@gmail.ru", "+7 964 219-73-45")]


def viewer(n: int) -> list[dict]:
    email, phone = PEOPLE[n]
    return [ev(f"v-{n}", event="Product Viewed", timestamp=RECENT,
               identifiers={"email": email, "phone": phone},
               properties={"category": "sofas"}),
            ev(f"c-{n}", event="Consent Updated", timestamp=RECENT,
               identifiers={"email": email},
               properties={"purpose": "ad_platform_transfer", "status": "granted"})]


@BOTH
def test_a_partner_defines_reads_and_pages_an_audience(gateway, document) -> None:
    events = [e for n in range(5) for e in viewer(n)]
    posted = gateway.post("/v1/events", json={"events": events}, headers=auth(WRITER))
    assert posted.json()["accepted"] == 10
    put = gateway.put("/v1/audiences/sofa-retargeting", json=SOFA_RETARGETING,
                      headers=auth(WRITER))
    assert_conforms(document, "PUT", "/v1/audiences/{name}", put)
    assert put.status_code == 200
    assert (put.json()["created"], put.json()["joined"], put.json()["member_count"]) == (
        True, 5, 5)
    assert "consent ad_platform_transfer" in put.json()["summary"]

    # The ad partner reads; it may not define, and the reader may not read audiences.
    assert gateway.put("/v1/audiences/x1", json=SOFA_RETARGETING,
                       headers=auth(AD_PARTNER)).status_code == 403
    denied = gateway.get("/v1/audiences/sofa-retargeting/members", headers=auth(READER))
    assert denied.status_code == 403 and denied.json()["code"] == "PERMISSION_DENIED"
    assert_conforms(document, "GET", "/v1/audiences/{name}/members", denied)

    members, token = [], ""
    while True:
        page = gateway.get("/v1/audiences/sofa-retargeting/members",
                           params={"page_size": 2, "page_token": token, "hash": "sha256"},
                           headers=auth(AD_PARTNER))
        assert_conforms(document, "GET", "/v1/audiences/{name}/members", page)
        members += page.json()["members"]
        token = page.json()["next_page_token"]
        if not token:
            break
    assert len(members) == 5 and len({m["customer_id"] for m in members}) == 5
    assert sorted(m["identifiers"]["email"][0] for m in members) == sorted(
        hashlib.sha256(email.lower().encode()).hexdigest() for email, _ in PEOPLE)
    assert sorted(m["identifiers"]["phone"][0] for m in members) == sorted(
        hashlib.sha256(("+7" + "".join(c for c in phone[3:] if c.isdigit())).encode())
        .hexdigest() for _, phone in PEOPLE)
    raw = gateway.get("/v1/audiences/sofa-retargeting/members", headers=auth(AD_PARTNER))
    assert {e for m in raw.json()["members"] for e in m["identifiers"]["email"]} == {
        email.lower() for email, _ in PEOPLE}

    # Viewer 0 buys the sofa in the store: out of the audience, in the changes.
    gateway.post("/v1/events", json={"events": [ev(
        "pos-0", event="Order Completed", channel="store", timestamp=RECENT,
        identifiers={"phone": "8 916 482-17-30"},
        properties={"revenue": 45000, "products": [{"category": "sofas"}]})]},
        headers=auth(WRITER))
    changes = gateway.get("/v1/audiences/sofa-retargeting/changes", headers=auth(AD_PARTNER))
    assert_conforms(document, "GET", "/v1/audiences/{name}/changes", changes)
    assert [(c["change"], c["reason"]) for c in changes.json()["changes"]] == [
        ("joined", "defined")] * 5 + [("left", "ingest")]
    listed = gateway.get("/v1/audiences", headers=auth(AD_PARTNER))
    assert_conforms(document, "GET", "/v1/audiences", listed)
    assert [(a["name"], a["member_count"]) for a in listed.json()["audiences"]] == [
        ("sofa-retargeting", 4)]

    deleted = gateway.delete("/v1/audiences/sofa-retargeting", headers=auth(WRITER))
    assert_conforms(document, "DELETE", "/v1/audiences/{name}", deleted)
    gone = gateway.get("/v1/audiences/sofa-retargeting", headers=auth(AD_PARTNER))
    assert_conforms(document, "GET", "/v1/audiences/{name}", gone)
    assert (gone.status_code, gone.json()["code"]) == (404, "AUDIENCE_NOT_FOUND")


def test_a_bad_definition_is_a_problem_naming_each_field(gateway, document) -> None:
    bad = gateway.put("/v1/audiences/sofa", headers=auth(WRITER), json={
        "include": [{"event": {"name": "Product Viewed", "within_days": 0}},
                    {"trait": {"name": "city", "op": "like"}}],
        "consent": {"purpose": "telepathy"}})
    assert_conforms(document, "PUT", "/v1/audiences/{name}", bad)
    assert bad.status_code == 400 and bad.headers["content-type"].startswith(PROBLEM)
    assert bad.json()["code"] == "INVALID_ARGUMENT"
    assert [e["field"] for e in bad.json()["errors"]] == [
        "include[0].event.within_days", "include[1].trait.op", "consent.purpose"]
    for response in (gateway.put("/v1/audiences/Sofa%20Ads", json=SOFA_RETARGETING,
                                 headers=auth(WRITER)),
                     gateway.get("/v1/audiences/sofa/members", params={"hash": "md5"},
                                 headers=auth(WRITER))):
        assert response.status_code == 422 and response.json()["code"] == "INVALID_ARGUMENT"
    malformed = gateway.put("/v1/audiences/sofa", content=b"{", headers=auth(WRITER))
    assert (malformed.status_code, malformed.json()["code"]) == (400, "MALFORMED_JSON")
    assert gateway.get("/v1/audiences", headers=auth(WRITER)).json()["audiences"] == []


def test_defining_has_a_deadline_of_its_own(services, tmp_path) -> None:
    """Defining evaluates every customer: its call gets the evaluation deadline, not the
    (here impossibly short) deadline of every other call. A microsecond: a local call
    answered from a warm cache came back within 100 us once, and the read then passed."""
    for gateway in serve_gateway(services, tmp_path, deadline=1e-6, evaluate_deadline=30):
        put = gateway.put("/v1/audiences/sofa-retargeting", json=SOFA_RETARGETING,
                          headers=auth(WRITER))
        assert put.status_code == 200 and put.json()["created"] is True
        read = gateway.get("/v1/audiences/sofa-retargeting", headers=auth(WRITER))
        assert read.status_code == 504 and read.json()["code"] == "DEADLINE_EXCEEDED"

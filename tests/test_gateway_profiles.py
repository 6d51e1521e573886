"""The gateway's profile routes in front of the real services: the golden record's JSON,
consents (PUT, current, history), erasure (DELETE, scope `profiles:erase`) and scores
(`GET /v1/customers/{id}/scores`, scope `profiles:read`), each answer held to the OpenAPI
document."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from omnicdp.services.profile.client import CustomerScores, ProfileClient, Score
from tests.gateway_kit import READER, WRITER, assert_conforms, auth, ev, serve_gateway

PROBLEM = "application/problem+json"
POS = "pos-key-events-only"  # a key with events:write alone


@pytest.fixture
def gateway(services, tmp_path) -> Iterator[TestClient]:
    """The writer key holds every scope (profiles:erase included); the reader only
    profiles:read."""
    yield from serve_gateway(services, tmp_path,
                             {"name": "pos", "key": POS, "scopes": ["events:write"]})


@pytest.fixture
def document(gateway) -> dict:
    return gateway.get("/openapi.json").json()


def customer_of(gateway, *events) -> str:
    response = gateway.post("/v1/events", json={"events": list(events)}, headers=auth(WRITER))
    assert response.status_code == 200
    ids = {r["customer_id"] for r in response.json()["results"]}
    assert len(ids) == 1
    return ids.pop()


def test_profile_json_carries_the_golden_record(gateway, document) -> None:
    customer = customer_of(
        gateway, ev("o-1", source="shop", traits={"first_name": "MARIA"}),
        ev("o-2", channel="store", source="pos", identifiers={
            "email": "maria@example.ru", "loyalty_id": "LC 0042"},
           properties={"revenue": 10.0}))
    response = gateway.get(f"/v1/profiles/{customer}", headers=auth(READER))
    assert_conforms(document, "GET", "/v1/profiles/{customer_id}", response)
    profile = response.json()
    assert profile["traits"] == {"first_name": "Maria"}
    assert profile["counters"] == {"events_by_channel": {"store": 1, "web": 1},
                                   "orders_online": 1, "orders_store": 1, "revenue": 1000.0}
    email = next(d for d in profile["identifier_details"] if d["type"] == "email")
    assert email["sources"] == ["pos", "shop"]
    # The lookup answers the same document, sent without FastAPI validating it again.
    found = gateway.get("/v1/profiles:lookup", params={"type": "email",
                                                       "value": "Maria@Example.ru"},
                        headers=auth(READER))
    assert_conforms(document, "GET", "/v1/profiles:lookup", found)
    assert found.json() == profile


def test_consents_are_put_read_and_listed(gateway, document) -> None:
    customer = customer_of(gateway, ev("o-1"))
    path = f"/v1/profiles/{customer}/consents"
    put = gateway.put(path, headers=auth(WRITER), json={"consents": [
        {"purpose": "marketing_email", "channel": "email", "status": "granted",
         "updated_at": "2026-03-01T10:00:00Z", "legal_basis": "consent",
         "proof_reference": "double-opt-in:77"},
        {"purpose": "ad_platform_transfer", "status": "denied",
         "updated_at": "2026-03-01T10:00:00Z"}]})
    assert_conforms(document, "PUT", "/v1/profiles/{customer_id}/consents", put)
    assert put.status_code == 200
    later = gateway.put(path, headers=auth(WRITER), json={"consents": [
        {"purpose": "marketing_email", "channel": "email", "status": "withdrawn",
         "updated_at": "2026-03-02T10:00:00Z"}]})
    assert later.status_code == 200
    current = gateway.get(path, headers=auth(READER))
    assert_conforms(document, "GET", "/v1/profiles/{customer_id}/consents", current)
    assert {(c["purpose"], c["channel"], c["status"], c["source"])
            for c in current.json()["consents"]} == {
        ("marketing_email", "email", "withdrawn", "writer"),
        ("ad_platform_transfer", None, "denied", "writer")}
    profile = gateway.get(f"/v1/profiles/{customer}", headers=auth(READER)).json()
    assert profile["consents"] == current.json()["consents"]
    history = gateway.get(f"{path}/history", params={"page_size": 2}, headers=auth(READER))
    assert_conforms(document, "GET", "/v1/profiles/{customer_id}/consents/history", history)
    page = history.json()
    assert [c["status"] for c in page["consents"]] == ["withdrawn", "granted"]
    rest = gateway.get(f"{path}/history", headers=auth(READER),
                       params={"page_size": 2, "page_token": page["next_page_token"]}).json()
    assert len(rest["consents"]) == 1 and rest["next_page_token"] == ""


def test_consent_errors_are_problems_naming_the_field(gateway, document) -> None:
    customer = customer_of(gateway, ev("o-1"))
    answers = [
        gateway.put(f"/v1/profiles/{customer}/consents", headers=auth(WRITER),
                    json={"consents": [{"purpose": "telepathy", "status": "granted"}]}),
        gateway.put(f"/v1/profiles/{customer}/consents", headers=auth(READER),
                    json={"consents": [{"purpose": "sms", "status": "granted"}]}),
        gateway.put("/v1/profiles/nobody/consents", headers=auth(WRITER),
                    json={"consents": [{"purpose": "sms", "status": "granted"}]}),
    ]
    assert [a.status_code for a in answers] == [422, 403, 404]
    for answer in answers:
        assert answer.headers["content-type"] == PROBLEM
        assert_conforms(document, "PUT", "/v1/profiles/{customer_id}/consents", answer)
    assert answers[0].json()["errors"][0]["field"] == "consents.0.purpose"


def test_delete_erases_with_the_erase_scope_only(gateway, document) -> None:
    customer = customer_of(gateway, ev("o-1"), ev("o-2"))
    path = f"/v1/profiles/{customer}"
    denied = gateway.delete(path, headers=auth(READER))
    assert denied.status_code == 403 and denied.json()["code"] == "PERMISSION_DENIED"
    assert_conforms(document, "DELETE", "/v1/profiles/{customer_id}", denied)
    assert gateway.get(path, headers=auth(READER)).status_code == 200

    erased = gateway.delete(path, headers=auth(WRITER), params={"reason": "ticket 9"})
    assert_conforms(document, "DELETE", "/v1/profiles/{customer_id}", erased)
    assert erased.status_code == 200
    assert erased.json()["events_erased"] == 2 and erased.json()["customer_id"] == customer
    assert gateway.get(path, headers=auth(READER)).status_code == 404
    again = gateway.delete(path, headers=auth(WRITER))
    assert again.status_code == 404 and again.headers["content-type"] == PROBLEM
    later = gateway.post("/v1/events", json={"events": [ev("o-3")]}, headers=auth(WRITER))
    assert later.json()["results"][0]["status"] == "rejected"


@pytest.mark.parametrize("services", ["duckdb", "postgres"], indirect=True)
def test_scores_are_read_with_profiles_read_and_follow_merges(services, gateway,
                                                              document) -> None:
    by_email = customer_of(gateway, ev("o-1", identifiers={"email": "vera@example.ru"}))
    by_phone = customer_of(gateway, ev("o-2", identifiers={"phone": "+79161112233"}))
    at = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
    profiles = ProfileClient(services.address(services.profile))
    try:
        written = profiles.set_scores([
            CustomerScores(by_email, (Score("ltv_clv", 1500.25, "cdp-ltv", "7", at),
                                      Score("p_alive", 0.8125, "cdp-ltv", "7", at)))])
    finally:
        profiles.close()
    assert [w.status for w in written] == ["stored"]
    survivor = customer_of(gateway, ev("o-3", identifiers={"email": "vera@example.ru",
                                                           "phone": "+79161112233"}))
    expected = {"ltv_clv": {"value": 1500.25, "model": "cdp-ltv", "version": "7",
                            "computed_at": "2026-03-10T04:00:00Z"},
                "p_alive": {"value": 0.8125, "model": "cdp-ltv", "version": "7",
                            "computed_at": "2026-03-10T04:00:00Z"}}
    path = "/v1/customers/{customer_id}/scores"
    for asked in (by_email, by_phone):
        answer = gateway.get(f"/v1/customers/{asked}/scores", headers=auth(READER))
        assert_conforms(document, "GET", path, answer)
        assert answer.json() == {"customer_id": survivor, "scores": expected}
    profile = gateway.get(f"/v1/profiles/{survivor}", headers=auth(READER))
    assert_conforms(document, "GET", "/v1/profiles/{customer_id}", profile)
    assert profile.json()["scores"] == expected

    refused = [gateway.get(f"/v1/customers/{survivor}/scores"),
               gateway.get(f"/v1/customers/{survivor}/scores", headers=auth(POS)),
               gateway.get("/v1/customers/nobody/scores", headers=auth(READER))]
    assert [(r.status_code, r.json()["code"]) for r in refused] == [
        (401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (404, "PROFILE_NOT_FOUND")]
    for answer in refused:
        assert answer.headers["content-type"] == PROBLEM
        assert_conforms(document, "GET", path, answer)

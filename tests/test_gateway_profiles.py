"""The gateway's profile routes in front of the real services: the golden record's JSON,
consents (PUT, current, history), and erasure (DELETE, scope `profiles:erase`), each answer
held to the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from omnicdp.services.gateway.keys import ApiKeys
from omnicdp.services.gateway.routes import Backends, create_app
from tests.gateway_kit import READER, WRITER, assert_conforms, auth, ev, write_keys

PROBLEM = "application/problem+json"


@pytest.fixture
def gateway(services, tmp_path) -> Iterator[TestClient]:
    """The writer key holds every scope (profiles:erase included); the reader only
    profiles:read."""
    backends = Backends.connect(services.address(services.profile),
                                services.address(services.identity),
                                services.address(services.attribution), deadline=10)
    app = create_app(ApiKeys.load(write_keys(tmp_path / "keys.yaml")), backends,
                     max_body_bytes=64_000)
    with TestClient(app) as client:
        yield client
    backends.close()


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

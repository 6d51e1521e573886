"""Existing analytics SDKs send to omnicdp unchanged: the real ``segment-analytics-python``
and ``rudder-sdk-python`` clients, configured with the gateway (``cdp serve gateway``, a
process of its own) as host and a write key, identify, track, page, alias and buy; after a
flush the customer is found through the native API by user id, e-mail and both anonymous
ids, with the journey in order. Sending again stores nothing twice; a wrong write key
reaches the client's error path as 401."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from tests.gateway_kit import GatewayProcess, auth

WRITE_KEY, READ_KEY = "wk-web-shop", "reader-secret"


@pytest.fixture
def gateway(services, tmp_path) -> Iterator[GatewayProcess]:
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [
        {"name": "web-shop", "key": WRITE_KEY, "scopes": ["events:write"]},
        {"name": "analyst", "key": READ_KEY, "scopes": ["profiles:read"]}]}))
    process = GatewayProcess(services, keys)
    yield process
    process.stop()


def segment_client(host: str, write_key: str, on_error: Callable) -> SegmentClient:
    return SegmentClient(write_key, host=host, gzip=True, on_error=on_error, max_retries=1)


def rudder_client(host: str, write_key: str, on_error: Callable) -> RudderClient:
    return RudderClient(write_key, host=host, on_error=on_error, max_retries=1)  # gzip: default


CLIENTS = {"segment-analytics-python": segment_client, "rudder-sdk-python": rudder_client}


def send_a_visit_and_a_purchase(client: Any, tag: str) -> list[str]:
    """A visitor browses anonymously, logs in, browses on a second device, which the site
    aliases to the account, and buys; the message ids in the order the events happened."""
    a_laptop, a_phone, user = f"{tag}-anon-laptop", f"{tag}-anon-phone", f"{tag}-user"
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def at(minutes: int) -> dict[str, Any]:
        return {"timestamp": t0 + timedelta(minutes=minutes), "message_id": f"{tag}-{minutes}"}

    client.page(anonymous_id=a_laptop, name="Home",
                properties={"url": "https://shop.example.ru/?utm_medium=email"},
                context={"campaign": {"name": "spring", "medium": "email"},
                         "ip": "198.51.100.23", "userAgent": "Mozilla/5.0 (X11; Linux)"},
                **at(0))
    client.page(anonymous_id=a_laptop, name="Sofas", properties={"path": "/sofas"}, **at(2))
    client.identify(user_id=user, anonymous_id=a_laptop,
                    traits={"email": f"Maria.{tag}@Example.ru", "firstName": "Мария",
                            "lastName": "Иванова"}, **at(5))
    client.track(user_id=user, event="Product Viewed",
                 properties={"product_id": "SOFA-1", "price": 49990}, **at(6))
    client.page(anonymous_id=a_phone, name="Cart", **at(7))
    client.alias(previous_id=a_phone, user_id=user, **at(8))
    client.track(user_id=user, event="Order Completed", properties={
        "order_id": f"{tag}-o-1", "revenue": 49990, "currency": "RUB",
        "products": [{"product_id": "SOFA-1", "quantity": 1, "price": 49990}]}, **at(9))
    client.flush()
    return [f"{tag}-{m}" for m in (0, 2, 5, 6, 7, 8, 9)]


def read(gateway: GatewayProcess, path: str, **params: str) -> dict:
    response = httpx.get(gateway.url + path, params=params, headers=auth(READ_KEY), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("make_client", CLIENTS.values(), ids=CLIENTS.keys())
def test_an_sdk_sends_a_visit_and_a_purchase_to_one_customer(gateway, make_client) -> None:
    errors: list[Exception] = []
    client = make_client(gateway.url, WRITE_KEY, lambda error, _batch: errors.append(error))
    tag = make_client.__name__.split("_")[0]
    try:
        sent = send_a_visit_and_a_purchase(client, tag)
        assert errors == []
        profile = read(gateway, "/v1/profiles:lookup", type="user_id", value=f"{tag}-user")
        customer = profile["customer_id"]
        for id_type, value in (("email", f"maria.{tag}@example.ru"),
                               ("anonymous_id", f"{tag}-anon-laptop"),
                               ("anonymous_id", f"{tag}-anon-phone")):
            found = read(gateway, "/v1/profiles:lookup", type=id_type, value=value)
            assert found["customer_id"] == customer, (id_type, value)
        assert profile["traits"]["first_name"] == "Мария"
        events = read(gateway, f"/v1/profiles/{customer}/events")["events"]
        assert [e["message_id"] for e in events] == sent  # the journey, in order
        assert [(e["type"], e["event"], e["channel"]) for e in events] == [
            ("page", "Home", "email"), ("page", "Sofas", "web"), ("identify", None, "web"),
            ("track", "Product Viewed", "web"), ("page", "Cart", "web"), ("alias", None, "web"),
            ("track", "Order Completed", "web")]
        purchase = events[-1]["properties"]
        assert purchase["revenue"] == 49990 and purchase["currency"] == "RUB"
        assert purchase["products"] == [{"product_id": "SOFA-1", "quantity": 1, "price": 49990}]
        assert {e["sent_by"] for e in events} == {"web-shop"}
        assert "198.51.100.23" not in str(events) and "Mozilla" not in str(events)
        assert events[0]["timestamp"].startswith("2026-03-01T09:00:")  # skew-corrected only

        # The same messages again (an SDK's retry): nothing is stored twice.
        send_a_visit_and_a_purchase(client, tag)
        assert errors == []
        assert read(gateway, f"/v1/profiles/{customer}")["event_count"] == len(sent)
    finally:
        client.shutdown()


@pytest.mark.parametrize("make_client", CLIENTS.values(), ids=CLIENTS.keys())
def test_a_wrong_write_key_reaches_the_sdks_error_path_as_401(gateway, make_client) -> None:
    errors: list[Exception] = []
    client = make_client(gateway.url, "not-our-key", lambda error, _batch: errors.append(error))
    try:
        client.track(user_id="u-wrong", event="Product Viewed", message_id="wrong-1")
        client.flush()
    finally:
        client.shutdown()
    assert len(errors) == 1
    assert (errors[0].status, errors[0].code) == (401, "UNAUTHENTICATED")
    assert "write key" in errors[0].message
    missing = httpx.get(gateway.url + "/v1/profiles:lookup", headers=auth(READ_KEY),
                        params={"type": "user_id", "value": "u-wrong"}, timeout=10)
    assert missing.status_code == 404

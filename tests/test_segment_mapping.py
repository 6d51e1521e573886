"""The Segment spec mapped onto omnicdp's events (services/gateway/segment.py), as pure
functions: identifiers and traits, the kept and dropped context, the channel, the clock-skew
correction, alias and group, credentials, and violations named as the sender wrote them."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from omnicdp.services.gateway import segment

RECEIVED = datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)


def mapped(message: dict, kind: str = "batch", **kwargs) -> dict:
    return segment.to_event(message, kind, RECEIVED, "web-shop", **kwargs).event


def rejected_fields(message: dict, kind: str = "batch") -> list[str]:
    with pytest.raises(segment.Rejected) as caught:
        segment.to_event(message, kind, RECEIVED, None)
    return [v["field"] for v in caught.value.violations]


def test_identify_gives_identifiers_and_traits_in_omnicdp_names() -> None:
    event = mapped({
        "type": "identify", "messageId": "m-1", "userId": "u-42", "anonymousId": "a-1",
        "traits": {"email": "Maria@Example.ru", "phone": "+7 916 123-45-67",
                   "firstName": "Мария", "lastName": "Иванова", "birthday": "1990-05-17T00:00:00Z",
                   "address": {"street": "Тверская 1", "city": "Москва", "postalCode": "125009",
                               "state": "Moscow", "country": "RU", "floor": 3},
                   "plan": "gold", "id": "u-42"},
        "context": {"traits": {"email": "old@example.ru", "loyalty": "silver"},
                    "externalIds": [{"id": "CRM-7", "type": "crmId", "collection": "users"},
                                    {"id": "abc", "type": "ga_client_id"}]}})
    assert event["message_id"] == "m-1" and event["type"] == "identify"
    assert event["source"] == "web-shop"
    assert event["identifiers"] == {"user_id": "u-42", "anonymous_id": "a-1",
                                    "email": "Maria@Example.ru", "phone": "+7 916 123-45-67",
                                    "crm_id": "CRM-7"}
    assert event["traits"] == {"first_name": "Мария", "last_name": "Иванова",
                               "date_of_birth": "1990-05-17", "address_line": "Тверская 1",
                               "city": "Москва", "postcode": "125009", "region": "Moscow",
                               "country": "RU", "address": {"floor": 3}, "plan": "gold",
                               "loyalty": "silver"}
    # an external id of no known type is kept, not lost
    assert event["properties"]["context"]["externalIds"] == [{"id": "abc",
                                                              "type": "ga_client_id"}]


def test_context_keeps_the_touch_and_drops_what_needs_consent() -> None:
    context = {"ip": "203.0.113.7", "userAgent": "Mozilla/5.0", "location": {"city": "Tver"},
               "campaign": {"name": "spring-sale", "source": "newsletter", "medium": "email"},
               "page": {"url": "https://shop.example.ru/sofas", "path": "/sofas"},
               "device": {"id": "dev-1", "advertisingId": "ad-1", "token": "push-1",
                          "model": "Pixel 9"},
               "library": {"name": "analytics.js", "version": "1.84.3"}, "locale": "ru-RU"}
    event = mapped({"type": "page", "messageId": "m-2", "anonymousId": "a-1", "name": "Sofas",
                    "properties": {"title": "Sofas"}, "context": context})
    kept = event["properties"]["context"]
    assert set(kept) == {"campaign", "page", "device", "library", "locale"}
    assert kept["device"] == {"model": "Pixel 9"}
    assert "203.0.113.7" not in repr(event) and "Mozilla" not in repr(event)
    assert "Tver" not in repr(event) and "ad-1" not in repr(event) and "push-1" not in repr(event)
    assert event["identifiers"] == {"anonymous_id": "a-1", "device_id": "dev-1"}
    assert event["properties"]["campaign"] == "spring-sale"
    assert event["properties"]["name"] == "Sofas" and event["event"] == "Sofas"
    assert event["channel"] == "email"  # a landing from an e-mail is that e-mail's touch


@pytest.mark.parametrize("message, channel", [
    ({"type": "track", "event": "Order Completed",
      "context": {"campaign": {"medium": "email"}}}, "web"),  # a purchase stays where it was
    ({"type": "page", "context": {"campaign": {"medium": "cpc"}}}, "ads"),
    ({"type": "page", "context": {"campaign": {"medium": "organic"}}}, "web"),
    ({"type": "screen", "name": "Cart"}, "app"),
    ({"type": "track", "event": "Product Viewed", "context": {"app": {"name": "Shop"}}}, "app"),
    ({"type": "track", "event": "X", "context": {"os": {"name": "Android"}}}, "app"),
    ({"type": "track", "event": "X", "channel": "server"}, "web"),  # RudderStack's server SDK
    ({"type": "track", "event": "X", "channel": "mobile"}, "app"),
    ({"type": "track", "event": "Order Completed", "context": {"channel": "store"}}, "store"),
    ({"type": "identify"}, "web"),
])
def test_channel(message: dict, channel: str) -> None:
    assert mapped({"messageId": "m", "userId": "u", **message})["channel"] == channel


def test_timestamp_is_corrected_for_the_clients_clock_skew() -> None:
    # The client's clock is 5 minutes fast: it stamped the event at 10:00, sent it at its
    # 10:05, and it arrived at 10:00:30, so it happened at 09:55:30.
    message = {"type": "track", "event": "X", "userId": "u", "messageId": "m",
               "timestamp": "2026-03-01T10:00:00Z", "sentAt": "2026-03-01T10:05:00Z"}
    assert mapped(message)["timestamp"] == "2026-03-01T09:55:30Z"
    # a batch's sentAt applies to its messages; a message's own wins
    del message["sentAt"]
    batch = {"sentAt": "2026-03-01T10:00:20+00:00"}
    assert mapped(message, envelope=batch)["timestamp"] == "2026-03-01T10:00:10Z"
    assert mapped({**message, "sentAt": "2026-03-01T10:00:00.000Z"},
                  envelope=batch)["timestamp"] == "2026-03-01T10:00:30Z"
    assert mapped(message)["timestamp"] == "2026-03-01T10:00:00Z"  # no sentAt: as sent
    del message["timestamp"]
    assert "timestamp" not in mapped(message)  # none: the time of receipt
    assert rejected_fields({**message, "timestamp": 1772359200}) == ["timestamp"]
    assert rejected_fields({**message, "timestamp": "2026-03-01T10:00:00Z",
                            "sentAt": "yesterday"}) == ["sentAt"]


def test_alias_joins_previous_id_to_user_id() -> None:
    event = mapped({"type": "alias", "messageId": "m", "previousId": "a-9", "userId": "u-1"})
    assert event["identifiers"] == {"user_id": "u-1", "anonymous_id": "a-9"}
    assert rejected_fields({"type": "alias", "userId": "u-1"}) == ["previousId"]
    assert rejected_fields({"type": "alias", "previousId": "a-9"}) == ["userId"]


def test_group_attaches_the_person_to_an_account_without_taking_its_traits() -> None:
    event = mapped({"type": "group", "messageId": "m", "userId": "u-1", "groupId": 7001,
                    "traits": {"name": "ООО Ромашка", "employees": 40},
                    "context": {"traits": {"firstName": "Ivan"}}})
    assert event["traits"] == {"first_name": "Ivan", "group_id": "7001"}
    assert event["properties"] == {"group_id": "7001",
                                   "group_traits": {"name": "ООО Ромашка", "employees": 40}}
    assert rejected_fields({"type": "group", "userId": "u-1"}) == ["groupId"]


def test_what_the_spec_requires_is_named_as_the_sender_wrote_it() -> None:
    assert rejected_fields({"type": "track", "event": "X"}) == ["userId"]
    assert rejected_fields({"type": "track", "userId": "u"}) == ["event"]
    assert rejected_fields({"userId": "u"}) == ["type"]
    assert rejected_fields({"type": "identify", "userId": ["u"]}) == ["userId"]
    assert rejected_fields({"type": "identify", "userId": "u", "traits": "gold"}) == ["traits"]
    assert rejected_fields("text") == ["message"]
    assert rejected_fields({"type": "track", "userId": "u", "event": "X",
                            "properties": {"blob": "x" * 40_000}}) == ["message"]
    assert rejected_fields({"type": "track", "userId": "u", "event": "X",
                            "properties": {"bad": "\ud800"}}) == ["properties.bad"]
    result = segment.to_event({"type": "identify", "userId": "u",
                               "context": {"traits": {"email": "x\u200b@example.ru",
                                                      "firstName": "Ivan"}}},
                              "batch", RECEIVED, None)
    # native checks name native fields; the answer names the message's
    assert result.name_as_sent([
        {"field": "identifiers.email", "description": "d"},
        {"field": "traits.first_name", "description": "d"},
        {"field": "identifiers.user_id", "description": "d"},
        {"field": "properties.revenue", "description": "d"},
    ]) == [{"field": "context.traits.email", "description": "d"},
           {"field": "context.traits.firstName", "description": "d"},
           {"field": "userId", "description": "d"},
           {"field": "properties.revenue", "description": "d"}]


def test_message_ids_as_the_sdks_send_them() -> None:
    assert mapped({"type": "identify", "userId": 42, "messageId": 7})["message_id"] == "7"
    assert mapped({"type": "identify", "userId": 42})["identifiers"] == {"user_id": "42"}
    generated = {mapped({"type": "identify", "userId": "u"})["message_id"] for _ in range(2)}
    assert len(generated) == 2  # none sent: a fresh one each time, as Segment does


def test_write_key_from_basic_auth_bearer_or_body() -> None:
    basic = "Basic " + base64.b64encode(b"wk-123:").decode()
    assert segment.header_key(basic) == "wk-123"
    assert segment.header_key("Bearer wk-123") == "wk-123"
    assert segment.header_key(None) is None
    assert segment.header_key("Basic not*base64") == ""
    assert segment.header_key("Digest x") == ""
    assert segment.body_key({"writeKey": "wk-1", "batch": []}) == "wk-1"
    assert segment.body_key({"batch": [{"writeKey": "wk-2"}, {"writeKey": "wk-2"}]}) == "wk-2"
    assert segment.body_key({"batch": [{"writeKey": "wk-2"}, {"writeKey": "wk-3"}]}) is None
    assert segment.body_key({"batch": [{}]}) is None
    assert segment.body_key([1]) is None


def test_paths() -> None:
    assert segment.PATHS["/v1/batch"] == "batch" and segment.PATHS["/v1/b"] == "batch"
    assert segment.PATHS["/v1/t"] == "track" and segment.PATHS["/v1/identify"] == "identify"
    assert "/v1/events" not in segment.PATHS

"""Consent per purpose and channel over real gRPC, on both backends: decisions from
UpdateConsents and from partners' `Consent Updated` events, the latest by decision time is
current, every decision is kept and listed, merges carry them to the survivor."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from omnicdp.api.common.v1 import common_pb2
from omnicdp.api.profile.v1 import profile_pb2
from omnicdp.core import protoconv
from tests.test_profile_service import T0, event, ingest

GRANTED, DENIED, WITHDRAWN = (profile_pb2.CONSENT_STATUS_GRANTED,
                              profile_pb2.CONSENT_STATUS_DENIED,
                              profile_pb2.CONSENT_STATUS_WITHDRAWN)


def decision(purpose: str, status: int, at, channel: str = "", **more) -> profile_pb2.Consent:
    return profile_pb2.Consent(purpose=purpose, status=status,
                               channel=protoconv.channel_value(channel or None),
                               updated_at=protoconv.timestamp_from_datetime(at), **more)


def consent_event(message_id: str, at, **properties) -> common_pb2.Event:
    message = event(message_id, name="Consent Updated", channel="email", at=at,
                    email="anna@example.ru")
    message.source = "esp"
    message.properties.CopyFrom(protoconv.struct_from_dict(properties))
    return message


def current(stub, customer_id: str) -> dict:
    profile = stub.GetProfile(profile_pb2.GetProfileRequest(customer_id=customer_id),
                              timeout=5).profile
    return {(c.purpose, protoconv.channel_name(c.channel) if c.channel else ""):
            (profile_pb2.ConsentStatus.Name(c.status), c.source, c.legal_basis,
             c.proof_reference) for c in profile.consents}


@pytest.mark.parametrize("services", ["duckdb", "postgres"], indirect=True)
def test_latest_decision_wins_and_history_is_kept(services) -> None:
    stub = services.profile_stub
    [first] = ingest(stub, event("m-1", email="anna@example.ru", at=T0))
    customer = first.customer_id
    stub.UpdateConsents(profile_pb2.UpdateConsentsRequest(customer_id=customer, consents=[
        decision("marketing_email", GRANTED, T0, "email", source="web-form",
                 legal_basis="consent", proof_reference="double-opt-in:8812"),
        decision("sms", DENIED, T0, "sms", source="web-form")]), timeout=5)
    # A partner's event withdraws the e-mail consent a day later...
    [withdrawn] = ingest(stub, consent_event("c-1", T0 + timedelta(days=1),
                                             purpose="marketing_email", channel="email",
                                             status="withdrawn", proof_reference="unsub:1"))
    assert withdrawn.status == profile_pb2.INGEST_STATUS_ACCEPTED
    # ...and a decision older than it, arriving late, changes the history only.
    response = stub.UpdateConsents(profile_pb2.UpdateConsentsRequest(
        customer_id=customer, consents=[decision("marketing_email", GRANTED,
                                                 T0 + timedelta(hours=12), "email",
                                                 source="call-centre")]), timeout=5)
    assert {c.purpose: profile_pb2.ConsentStatus.Name(c.status)
            for c in response.consents} == {"marketing_email": "CONSENT_STATUS_WITHDRAWN",
                                            "sms": "CONSENT_STATUS_DENIED"}
    assert current(stub, customer) == {
        ("marketing_email", "email"): ("CONSENT_STATUS_WITHDRAWN", "esp", "consent",
                                       "unsub:1"),
        ("sms", "sms"): ("CONSENT_STATUS_DENIED", "web-form", "consent", "")}
    history, token = [], ""
    while True:
        page = stub.ListConsentHistory(profile_pb2.ListConsentHistoryRequest(
            customer_id=customer, page_size=2, page_token=token), timeout=5)
        history += page.consents
        token = page.next_page_token
        if not token:
            break
    assert [(h.purpose, h.source) for h in history] == [
        ("marketing_email", "esp"), ("marketing_email", "call-centre"),
        ("sms", "web-form"), ("marketing_email", "web-form")]
    assert all(h.HasField("recorded_at") for h in history)
    assert history[-1].updated_at.ToDatetime().replace(tzinfo=None) == T0.replace(tzinfo=None)


@pytest.mark.parametrize("services", ["duckdb", "postgres"], indirect=True)
def test_a_retried_update_records_each_decision_once(services) -> None:
    stub = services.profile_stub
    [first] = ingest(stub, event("m-1", email="anna@example.ru"))
    request = profile_pb2.UpdateConsentsRequest(customer_id=first.customer_id, consents=[
        decision("push", GRANTED, T0, "push", source="app")])
    for _ in range(3):
        stub.UpdateConsents(request, timeout=5)
    history = stub.ListConsentHistory(profile_pb2.ListConsentHistoryRequest(
        customer_id=first.customer_id), timeout=5).consents
    assert len(history) == 1


def test_invalid_decisions_and_unknown_customers_are_refused(services) -> None:
    stub = services.profile_stub
    [first] = ingest(stub, event("m-1", email="anna@example.ru"))
    with pytest.raises(grpc.RpcError) as refused:
        stub.UpdateConsents(profile_pb2.UpdateConsentsRequest(
            customer_id=first.customer_id,
            consents=[profile_pb2.Consent(purpose="telepathy", legal_basis="whim")]), timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as unknown:
        stub.UpdateConsents(profile_pb2.UpdateConsentsRequest(
            customer_id="nobody", consents=[decision("sms", GRANTED, T0)]), timeout=5)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    [bad] = ingest(stub, consent_event("c-1", T0, purpose="sms", status="maybe"))
    assert bad.status == profile_pb2.INGEST_STATUS_REJECTED
    assert [v.field for v in bad.violations] == ["properties.status"]


@pytest.mark.parametrize("services", ["duckdb", "postgres"], indirect=True)
def test_a_merge_carries_consents_to_the_survivor(services) -> None:
    stub = services.profile_stub
    [by_email] = ingest(stub, event("m-1", email="anna@example.ru"))
    [by_phone] = ingest(stub, event("m-2", phone="+79161234567"))
    stub.UpdateConsents(profile_pb2.UpdateConsentsRequest(
        customer_id=by_phone.customer_id, consents=[decision("sms", GRANTED, T0, "sms")]),
        timeout=5)
    [both] = ingest(stub, event("m-3", email="anna@example.ru", phone="+79161234567"))
    survivor = both.customer_id
    assert {by_email.customer_id, by_phone.customer_id} >= {survivor}
    for customer in (by_email.customer_id, by_phone.customer_id):
        assert current(stub, customer)[("sms", "sms")][0] == "CONSENT_STATUS_GRANTED"
    profile = stub.GetProfile(profile_pb2.GetProfileRequest(customer_id=survivor),
                              timeout=5).profile
    assert profile.event_count == 3


"""The profile service over real gRPC, with the real identity service behind it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from omnicdp.api.common.v1 import common_pb2
from omnicdp.api.profile.v1 import profile_pb2
from omnicdp.core import protoconv

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def event(message_id: str, *, type_: str = "track", name: str = "Page Viewed",
          channel: str = "web", at: datetime = T0, **identifiers: str) -> common_pb2.Event:
    return common_pb2.Event(
        message_id=message_id, type=protoconv.event_type_value(type_), event=name,
        channel=protoconv.channel_value(channel), source="test",
        timestamp=protoconv.timestamp_from_datetime(at),
        identifiers=protoconv.identifiers_from_dict(identifiers))


def ingest(stub, *events: common_pb2.Event) -> list[profile_pb2.EventResult]:
    return list(stub.IngestEvents(profile_pb2.IngestEventsRequest(events=events),
                                  timeout=10).results)


@pytest.mark.parametrize("services", ["duckdb", "postgres"], indirect=True)
def test_retried_batch_is_stored_once(services) -> None:
    stub = services.profile_stub
    batch = [event("m-1", email="anna@example.ru"), event("m-2", email="anna@example.ru")]
    first = ingest(stub, *batch)
    again = ingest(stub, *batch)
    assert [r.status for r in first] == [profile_pb2.INGEST_STATUS_ACCEPTED] * 2
    assert [r.status for r in again] == [profile_pb2.INGEST_STATUS_DUPLICATE] * 2
    assert again[0].customer_id == first[0].customer_id
    profile = stub.GetProfile(profile_pb2.GetProfileRequest(customer_id=first[0].customer_id),
                              timeout=5).profile
    assert profile.event_count == 2


def test_repeated_message_id_within_a_batch_is_a_duplicate(services) -> None:
    results = ingest(services.profile_stub, event("m-1", email="anna@example.ru"),
                     event("m-1", email="anna@example.ru"))
    assert [r.status for r in results] == [profile_pb2.INGEST_STATUS_ACCEPTED,
                                           profile_pb2.INGEST_STATUS_DUPLICATE]
    assert results[1].customer_id == results[0].customer_id


def test_invalid_event_is_rejected_alone(services) -> None:
    results = ingest(
        services.profile_stub,
        event("ok-1", email="anna@example.ru"),
        event("bad-email", email="not an email"),
        event("no-channel", channel="", email="anna@example.ru"),
        event("no-ids"),
        event("ok-2", phone="+7 916 123-45-67"),
    )
    statuses = [profile_pb2.IngestStatus.Name(r.status) for r in results]
    assert statuses == ["INGEST_STATUS_ACCEPTED", "INGEST_STATUS_REJECTED",
                        "INGEST_STATUS_REJECTED", "INGEST_STATUS_REJECTED",
                        "INGEST_STATUS_ACCEPTED"]
    assert [v.field for v in results[1].violations] == ["identifiers.email"]
    assert [v.field for v in results[2].violations] == ["channel"]
    assert [v.field for v in results[3].violations] == ["identifiers"]


def test_lookup_by_any_identifier_in_any_format(services) -> None:
    stub = services.profile_stub
    [result] = ingest(stub, event("m-1", type_="identify", email="Viktor.Ivanov@Mail.ru",
                                  phone="8 (916) 123-45-67", loyalty_id="LC 0042"))
    for id_type, value in [("email", "viktor.ivanov@mail.ru"), ("phone", "+79161234567"),
                           ("phone", "9161234567"), ("loyalty_id", "lc0042")]:
        found = stub.LookupProfile(profile_pb2.LookupProfileRequest(
            type=protoconv.identifier_type_value(id_type), value=value), timeout=5).profile
        assert found.customer_id == result.customer_id, (id_type, value)
    assert {protoconv.identifier_type_name(i.type): i.value for i in found.identifiers} == {
        "email": "viktor.ivanov@mail.ru", "phone": "+79161234567", "loyalty_id": "LC0042"}


def test_unknown_profile_is_not_found_with_error_info(services) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        services.profile_stub.GetProfile(profile_pb2.GetProfileRequest(customer_id="cus_nope"),
                                         timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    status = rpc_status.from_call(caught.value)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.reason == "PROFILE_NOT_FOUND"


def test_anonymous_sessions_join_the_profile_once_identified(services) -> None:
    stub = services.profile_stub
    anonymous = ingest(stub, event("a-1", anonymous_id="cookie-1"),
                       event("a-2", anonymous_id="cookie-1", at=T0 + timedelta(minutes=5)))
    known = ingest(stub, event("a-3", type_="identify", anonymous_id="cookie-1",
                               email="olga@example.ru", at=T0 + timedelta(hours=1)))
    assert {r.customer_id for r in anonymous + known} == {anonymous[0].customer_id}
    profile = stub.LookupProfile(profile_pb2.LookupProfileRequest(
        type=protoconv.identifier_type_value("email"), value="olga@example.ru"),
        timeout=5).profile
    assert profile.event_count == 3


@pytest.mark.parametrize("services", ["duckdb", "postgres"], indirect=True)
def test_merge_moves_events_to_the_older_customer(services) -> None:
    stub = services.profile_stub
    [by_email] = ingest(stub, event("m-1", email="ivan@example.ru"))
    [by_card] = ingest(stub, event("m-2", channel="store", loyalty_id="CARD1",
                                   at=T0 + timedelta(days=1)))
    assert by_email.customer_id != by_card.customer_id
    [linking] = ingest(stub, event("m-3", email="ivan@example.ru", loyalty_id="CARD1",
                                   at=T0 + timedelta(days=2)))
    assert linking.customer_id == by_email.customer_id
    merged = stub.GetProfile(profile_pb2.GetProfileRequest(customer_id=by_card.customer_id),
                             timeout=5).profile
    assert merged.customer_id == by_email.customer_id
    assert merged.event_count == 3
    assert list(merged.merged_customer_ids) == [by_card.customer_id]


def test_journey_pages_are_in_time_order_and_complete(services) -> None:
    stub = services.profile_stub
    times = [T0 + timedelta(hours=h) for h in (5, 1, 3, 2, 4)]
    ingest(stub, *[event(f"j-{i}", at=t, email="pages@example.ru") for i, t in enumerate(times)])
    customer_id = stub.LookupProfile(profile_pb2.LookupProfileRequest(
        type=protoconv.identifier_type_value("email"), value="pages@example.ru"),
        timeout=5).profile.customer_id
    seen, token = [], ""
    while True:
        page = stub.ListProfileEvents(profile_pb2.ListProfileEventsRequest(
            customer_id=customer_id, page_size=2, page_token=token), timeout=5)
        assert len(page.events) <= 2
        seen += [protoconv.timestamp_to_datetime(e.timestamp) for e in page.events]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(times)


def test_a_listing_of_every_event_reads_the_events_stored_when_it_began(services) -> None:
    """A report pages through every event while ingestion goes on: its pages hold the
    events stored when its first page was read, and a new listing holds the later ones."""
    stub = services.profile_stub
    ingest(stub, *[event(f"snap-{i}", email=f"snap{i}@example.ru") for i in range(3)])
    first = stub.ListEvents(profile_pb2.ListEventsRequest(page_size=2), timeout=5)
    assert len(first.events) == 2 and first.next_page_token and first.snapshot_seq
    ingest(stub, *[event(f"late-{i}", email=f"snap{i}@example.ru") for i in range(2)])
    rest = stub.ListEvents(profile_pb2.ListEventsRequest(
        page_size=2, page_token=first.next_page_token), timeout=5)
    assert [e.message_id for e in [*first.events, *rest.events]] == [
        "snap-0", "snap-1", "snap-2"]
    assert not rest.next_page_token and rest.snapshot_seq == first.snapshot_seq
    again = stub.ListEvents(profile_pb2.ListEventsRequest(page_size=10), timeout=5)
    assert [e.message_id for e in again.events][-2:] == ["late-0", "late-1"]
    assert again.snapshot_seq > first.snapshot_seq


def test_bad_page_token_names_the_field(services) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        services.profile_stub.ListEvents(profile_pb2.ListEventsRequest(page_token="garbage!"),
                                         timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in rpc_status.from_call(caught.value).details)
    assert [v.field for v in bad.field_violations] == ["page_token"]


def test_a_merge_made_at_identity_alone_reaches_the_profile_through_the_change_log(
        services) -> None:
    """Another caller of identity (a batch import, another replica) merges two customers
    the profile holds events for: the change log stream brings the merge, and both ids then
    answer one profile with both events, without any event passing through the profile."""
    from omnicdp.api.identity.v1 import identity_pb2

    stub = services.profile_stub
    [by_email] = ingest(stub, event("m-1", email="lost@example.ru"))
    [by_card] = ingest(stub, event("m-2", loyalty_id="CARD9", at=T0 + timedelta(days=1)))
    assert by_email.customer_id != by_card.customer_id
    both = protoconv.identifiers_from_dict({"email": "lost@example.ru", "loyalty_id": "CARD9"})
    services.identity_stub.ResolveIdentities(identity_pb2.ResolveIdentitiesRequest(
        records=[identity_pb2.IdentityRecord(record_id="import", identifiers=both)]), timeout=5)

    def merged_profile() -> profile_pb2.Profile | None:
        profile = stub.GetProfile(profile_pb2.GetProfileRequest(
            customer_id=by_card.customer_id), timeout=5).profile
        return profile if profile.event_count == 2 else None

    deadline = time.monotonic() + 10
    while (profile := merged_profile()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert profile is not None, "the merge never reached the profile"
    assert profile.customer_id == by_email.customer_id
    assert list(profile.merged_customer_ids) == [by_card.customer_id]
    [later] = ingest(stub, event("m-3", loyalty_id="CARD9", at=T0 + timedelta(days=3)))
    assert later.customer_id == by_email.customer_id
    caught_up = stub.GetProfile(profile_pb2.GetProfileRequest(customer_id=by_card.customer_id),
                                timeout=5).profile
    assert caught_up.customer_id == by_email.customer_id
    assert caught_up.event_count == 3


def test_internal_callers_get_the_same_limits_as_partners(services) -> None:
    """Over gRPC too, an out-of-range value rejects only its event, with its field."""
    stub = services.profile_stub
    nan = event("nan", email="nan@example.ru")
    nan.properties.update({"revenue": float("nan")})
    huge = event("huge", email="huge@example.ru")
    huge.properties.update({"revenue": 1.7e308, "n": float("inf")})
    invisible = event("zw", email="ma\u200bria@example.ru")
    epoch = event("epoch", email="epoch@example.ru", at=datetime(1970, 1, 1, tzinfo=UTC))
    results = ingest(stub, nan, huge, invisible, epoch)
    assert [r.status for r in results] == [profile_pb2.INGEST_STATUS_REJECTED] * 3 + [
        profile_pb2.INGEST_STATUS_ACCEPTED]
    assert [sorted(v.field for v in r.violations) for r in results[:3]] == [
        ["properties.revenue"], ["properties.n", "properties.revenue"],
        ["identifiers.email"]]
    page = stub.ListProfileEvents(profile_pb2.ListProfileEventsRequest(
        customer_id=results[3].customer_id), timeout=10)
    assert page.events[0].timestamp.seconds == 0 and page.events[0].HasField("timestamp")

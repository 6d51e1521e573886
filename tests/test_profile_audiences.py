"""Audiences over real gRPC on both backends: definitions checked field by field; members
chosen by events with properties within N days, counts, traits, scores, counters, consent
and exclusions; membership kept up to date within the call that changes it (ingest, merges,
consent decisions, scores; erasure leaves nothing); the sofa story; hashed and raw exports;
racing ingests; windows closing on refresh."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from omnicdp.api.profile.v1 import audience_pb2, audience_pb2_grpc, profile_pb2
from omnicdp.cli.main import main
from omnicdp.core import protoconv
from omnicdp.core.errors import InvalidArgument
from omnicdp.core.sql import utc_now
from omnicdp.services.profile.audiences import rules
from omnicdp.services.profile.client import AudienceClient
from omnicdp.services.profile.store import audiences as audience_store
from tests import test_profile_store as contract
from tests.test_profile_service import event, ingest
from tests.test_profile_store import stored

store_url, store, log = contract.store_url, contract.store, contract.log

NOW = datetime.now(UTC)
BOTH = pytest.mark.parametrize("services", ["duckdb", "postgres"], indirect=True)
GRANTED, WITHDRAWN = profile_pb2.CONSENT_STATUS_GRANTED, profile_pb2.CONSENT_STATUS_WITHDRAWN

#: The seed's story: sofa ads for who viewed a sofa on the web in the last 14 days and did
#: not buy one since, if they allowed the transfer of their data to ad platforms.
SOFA_RETARGETING = {
    "description": "viewed a sofa in the last 14 days, bought none",
    "include": [{"event": {"name": "Product Viewed", "channel": "web", "within_days": 14,
                           "where": [{"property": "category", "op": "eq",
                                      "value": "sofas"}]}}],
    "exclude": [{"event": {"name": "Order Completed", "within_days": 14,
                           "where": [{"property": "products.category", "op": "eq",
                                      "value": "sofas"}]}}],
    "consent": {"purpose": "ad_platform_transfer"},
}


def tracked(message_id: str, name: str, at: datetime = NOW, channel: str = "web",
            properties: dict | None = None, traits: dict | None = None, **identifiers: str):
    message = event(message_id, name=name, channel=channel, at=at, **identifiers)
    message.properties.CopyFrom(protoconv.struct_from_dict(properties or {}))
    message.traits.CopyFrom(protoconv.struct_from_dict(traits or {}))
    return message


def audiences(services) -> AudienceClient:
    client = AudienceClient(services.address(services.profile))
    services.channels.append(client._channel)
    return client


def member_ids(client: AudienceClient, name: str) -> set[str]:
    return {m.customer_id for m in client.export(name)}


def grant(stub, customer_id: str, purpose: str = "ad_platform_transfer",
          status: int = GRANTED, channel: str = "") -> None:
    stub.UpdateConsents(profile_pb2.UpdateConsentsRequest(customer_id=customer_id, consents=[
        profile_pb2.Consent(purpose=purpose, status=status, source="web-form",
                            channel=protoconv.channel_value(channel or None))]), timeout=5)


def all_changes(client: AudienceClient, name: str) -> list:
    changes, token = [], ""
    while True:
        page, token = client.changes(name, 2, token)
        changes += page
        if not token:
            return changes


def test_a_bad_definition_names_each_failing_field() -> None:
    with pytest.raises(InvalidArgument) as refused:
        rules.parse("Sofa Ads!", {
            "include": [{"event": {"name": "", "within_days": 0, "min_count": 3,
                                   "max_count": 1, "channel": "tv",
                                   "where": [{"property": "price", "op": "gt",
                                              "value": "cheap"}]}},
                        {"trait": {"name": "city", "op": "like", "value": "M%"}},
                        {"score": {"name": "p_alive", "op": "gte", "value": "high"}},
                        {"counter": {"name": "visits", "op": "gt", "value": 1}},
                        {"weather": {}}],
            "consent": {"purpose": "telepathy"}, "colour": "red"})
    assert [v.field for v in refused.value.violations] == [
        "name", "colour", "include[0].event.name", "include[0].event.channel",
        "include[0].event.within_days", "include[0].event.max_count",
        "include[0].event.where[0].value", "include[1].trait.op", "include[2].score.value",
        "include[3].counter.name", "include[4]", "consent.purpose"]
    with pytest.raises(InvalidArgument) as empty:
        rules.parse("nobody", {})
    assert [v.field for v in empty.value.violations] == ["include"]


def test_a_bad_definition_is_invalid_argument_with_fields_over_grpc(services) -> None:
    stub = services.stub(services.profile, audience_pb2_grpc.AudienceServiceStub)
    with pytest.raises(grpc.RpcError) as refused:
        stub.PutAudience(audience_pb2.PutAudienceRequest(audience=audience_pb2.Audience(
            name="x", include=[audience_pb2.AudienceCondition(
                event=audience_pb2.EventCondition(name="Product Viewed", within_days=-1))])),
            timeout=5)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = rpc_status.from_call(refused.value).details
    bad_request = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad_request) for d in details)
    assert [v.field for v in bad_request.field_violations] == [
        "name", "include[0].event.within_days"]
    with pytest.raises(grpc.RpcError) as unknown:
        stub.GetAudience(audience_pb2.GetAudienceRequest(name="nothing"), timeout=5)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


@BOTH
def test_the_sofa_ads_stop_when_he_buys_the_sofa_in_the_store(services) -> None:
    stub, client = services.profile_stub, audiences(services)
    client.put("sofa-retargeting", SOFA_RETARGETING)
    # Viktor browses sofas on the web, signed in with his e-mail and phone.
    results = ingest(stub, tracked("v-1", "Identify", email="viktor.ivanov@mail.ru",
                                   phone="+7 916 123-45-67", at=NOW - timedelta(days=3)),
                     tracked("v-2", "Product Viewed", properties={"category": "sofas",
                                                                  "name": "Диван угловой"},
                             email="viktor.ivanov@mail.ru", at=NOW - timedelta(days=2)))
    viktor = results[0].customer_id
    assert {r.customer_id for r in results} == {viktor}
    assert member_ids(client, "sofa-retargeting") == set()  # no consent to ad platforms yet
    grant(stub, viktor)
    assert member_ids(client, "sofa-retargeting") == {viktor}

    # One call to IngestEvents: the till's purchase, known by his phone as the cashier typed it.
    [purchase] = ingest(stub, tracked(
        "pos-1", "Order Completed", channel="store", phone="8 (916) 123-45-67",
        properties={"order_id": "POS-77", "revenue": 54990,
                    "products": [{"category": "sofas", "name": "Диван угловой"}]}))
    assert purchase.status == profile_pb2.INGEST_STATUS_ACCEPTED
    assert purchase.customer_id == viktor

    assert member_ids(client, "sofa-retargeting") == set()  # already, on acknowledgement
    assert client.get("sofa-retargeting").members == 0
    changes = all_changes(client, "sofa-retargeting")
    assert [(c.customer_id, c.change, c.reason) for c in changes] == [
        (viktor, "joined", "consent"), (viktor, "left", "ingest")]
    assert [c.seq for c in changes] == [1, 2]
    assert changes[0].at <= changes[1].at <= datetime.now(UTC)
    assert changes[1].at >= NOW


@BOTH
def test_audiences_include_and_exclude_the_right_customers(services, monkeypatch) -> None:
    # Defining evaluates everyone by ranges of customer ids: two a range here, so the three
    # customers span two ranges, and a range's reads hold customers of the other.
    monkeypatch.setattr(audience_store, "CHUNK", 2)
    monkeypatch.setattr(audience_store, "INDEXED_CHUNK", 2)
    stub, client = services.profile_stub, audiences(services)
    anna, boris, vera = ("anna@example.ru", "boris@example.ru", "vera@example.ru")
    for message in [
            tracked("a-1", "Product Viewed", properties={"category": "sofas", "price": 45000},
                    email=anna, traits={"city": "Kazan"}, at=NOW - timedelta(days=1)),
            tracked("a-2", "Product Viewed", properties={"category": "sofas", "price": 9000},
                    email=anna, at=NOW - timedelta(days=20)),
            tracked("b-1", "Product Viewed", properties={"category": "beds"}, email=boris,
                    traits={"city": "MOSCOW"}, at=NOW - timedelta(days=1)),
            tracked("b-2", "Order Completed", channel="store", email=boris,
                    properties={"revenue": 100, "products": [{"category": "beds"}]},
                    at=NOW - timedelta(days=40)),
            tracked("v-1", "Product Viewed", channel="app", properties={"category": "sofas"},
                    email=vera, at=NOW - timedelta(days=2)),
            tracked("v-2", "Product Viewed", channel="app", properties={"category": "Sofas"},
                    email=vera, at=NOW - timedelta(days=3))]:
        ingest(stub, message)
    ids = {email: stub.LookupProfile(profile_pb2.LookupProfileRequest(
        type=protoconv.identifier_type_value("email"), value=email), timeout=5
    ).profile.customer_id for email in (anna, boris, vera)}
    a, b, v = ids[anna], ids[boris], ids[vera]
    definitions = {
        # An event with properties within N days (Anna's old view is out of the window).
        "sofa-web-14d": {"include": [{"event": {"name": "Product Viewed", "channel": "web",
                                                "within_days": 14, "where": [
                                                    {"property": "category", "op": "eq",
                                                     "value": "sofas"},
                                                    {"property": "price", "op": "gte",
                                                     "value": 10000}]}}]},
        # Counts: two sofa views, any channel, any time ("contains" ignores case).
        "sofa-twice": {"include": [{"event": {"name": "Product Viewed", "min_count": 2,
                                              "where": [{"property": "category",
                                                         "op": "contains",
                                                         "value": "sofa"}]}}]},
        # Did not buy in 30 days, among those who ever viewed something.
        "no-order-30d": {"include": [{"event": {"name": "Product Viewed"}},
                                     {"event": {"name": "Order Completed", "within_days": 30,
                                                "max_count": 0}}]},
        # A trait (cleaned as the golden record keeps it) and a counter.
        "moscow-buyers": {"include": [{"trait": {"name": "city", "op": "in",
                                                 "value": ["Moscow", "Saint Petersburg"]}},
                                      {"counter": {"name": "orders", "op": "gte",
                                                   "value": 1}}]},
        # Exclusion: everyone who viewed something, but not the app's visitors.
        "not-app": {"include": [{"counter": {"name": "event_count", "op": "gt", "value": 0}}],
                    "exclude": [{"event": {"name": "Product Viewed", "channel": "app"}}]},
        # A score, written later.
        "valuable": {"include": [{"score": {"name": "ltv_clv", "op": "gte",
                                            "value": 10000}}]},
    }
    created = {name: client.put(name, d) for name, d in definitions.items()}
    assert {name: member_ids(client, name) for name in definitions} == {
        "sofa-web-14d": {a}, "sofa-twice": {a, v}, "no-order-30d": {a, b, v},
        "moscow-buyers": {b}, "not-app": {a, b}, "valuable": set()}
    assert {n: (s.created, s.joined, s.members) for n, s in created.items()} == {
        "sofa-web-14d": (True, 1, 1), "sofa-twice": (True, 2, 2),
        "no-order-30d": (True, 3, 3), "moscow-buyers": (True, 1, 1),
        "not-app": (True, 2, 2), "valuable": (True, 0, 0)}

    stub.SetScores(profile_pb2.SetScoresRequest(customers=[
        profile_pb2.CustomerScores(customer_id=c, scores=[profile_pb2.Score(
            name="ltv_clv", value=value, model="cdp-ltv", model_version="1",
            computed_at=protoconv.timestamp_from_datetime(NOW))])
        for c, value in ((a, 52000.0), (b, 900.0))]), timeout=5)
    assert member_ids(client, "valuable") == {a}
    # Vera buys online today: she leaves the audience of those who did not.
    ingest(stub, tracked("v-3", "Order Completed", email=vera, properties={"revenue": 10}))
    assert member_ids(client, "no-order-30d") == {a, b}
    # Redefining is an upsert: evaluated again, the same name.
    again = client.put("valuable", {"include": [{"score": {"name": "ltv_clv", "op": "lt",
                                                          "value": 10000}}]})
    assert (again.created, again.joined, again.left) == (False, 1, 1)
    assert member_ids(client, "valuable") == {b}
    listed, token = client.list(page_size=4)
    rest, last = client.list(page_size=4, page_token=token)
    assert [s.audience.name for s in listed + rest] == sorted(definitions) and last == ""
    client.delete("valuable")
    with pytest.raises(Exception) as gone:
        client.get("valuable")
    assert gone.value.reason == "AUDIENCE_NOT_FOUND"


@BOTH
def test_consent_granted_brings_in_and_withdrawn_drops(services) -> None:
    stub, client = services.profile_stub, audiences(services)
    client.put("email-ready", {"include": [{"counter": {"name": "event_count", "op": "gte",
                                                          "value": 1}}],
                               "consent": {"purpose": "marketing_email", "channel": "email"}})
    [anna] = ingest(stub, tracked("a-1", "Page Viewed", email="anna@example.ru"))
    assert member_ids(client, "email-ready") == set()
    grant(stub, anna.customer_id, "marketing_email")  # every channel
    assert member_ids(client, "email-ready") == {anna.customer_id}
    # The e-mail channel's own decision, from a partner's event, overrides every channel's.
    withdraw = tracked("c-1", "Consent Updated", channel="email", email="anna@example.ru",
                       properties={"purpose": "marketing_email", "channel": "email",
                                   "status": "withdrawn"})
    ingest(stub, withdraw)
    assert member_ids(client, "email-ready") == set()
    assert [(c.change, c.reason) for c in all_changes(client, "email-ready")] == [
        ("joined", "consent"), ("left", "ingest")]


@BOTH
def test_a_merge_and_an_erasure_update_membership(services) -> None:
    stub, client = services.profile_stub, audiences(services)
    client.put("sofa-kazan", {"include": [
        {"event": {"name": "Product Viewed", "where": [{"property": "category", "op": "eq",
                                                        "value": "sofas"}]}},
        {"trait": {"name": "city", "op": "eq", "value": "Kazan"}}]})
    client.put("sofa-viewers", {"include": [{"event": {"name": "Product Viewed"}}]})
    [by_email] = ingest(stub, tracked("m-1", "Product Viewed", properties={
        "category": "sofas"}, email="olga@example.ru"))
    [by_phone] = ingest(stub, tracked("m-2", "Identify", traits={"city": "Kazan"},
                                      phone="+79161112233"))
    assert member_ids(client, "sofa-kazan") == set()
    assert member_ids(client, "sofa-viewers") == {by_email.customer_id}

    [both] = ingest(stub, tracked("m-3", "Identify", email="olga@example.ru",
                                  phone="+79161112233"))
    survivor = both.customer_id
    merged_away = ({by_email.customer_id, by_phone.customer_id} - {survivor}).pop()
    assert member_ids(client, "sofa-kazan") == {survivor}
    assert member_ids(client, "sofa-viewers") == {survivor}
    assert [(c.change, c.reason) for c in all_changes(client, "sofa-viewers")
            if c.customer_id == merged_away] in ([], [("joined", "ingest"), ("left", "merged")])

    stub.EraseProfile(profile_pb2.EraseProfileRequest(
        customer_id=survivor, actor="privacy-desk", reason="ticket 1"), timeout=10)
    for name in ("sofa-kazan", "sofa-viewers"):  # nothing of her, under either id
        assert member_ids(client, name) == set()
        assert all_changes(client, name) == []


@BOTH
def test_hashed_export_is_sha256_of_the_normalised_identifiers(services) -> None:
    stub, client = services.profile_stub, audiences(services)
    client.put("everyone", {"include": [{"counter": {"name": "event_count", "op": "gte",
                                                       "value": 1}}]})
    [viktor] = ingest(stub, tracked("v-1", "Identify", email="  Viktor.Ivanov@Mail.RU ",
                                    phone="8 (916) 123-45-67", anonymous_id="anon-77"))
    [raw] = list(client.export("everyone"))
    assert raw.customer_id == viktor.customer_id and not raw.hashed
    assert sorted(raw.identifiers) == [("anonymous_id", "anon-77"),
                                       ("email", "viktor.ivanov@mail.ru"),
                                       ("phone", "+79161234567")]
    [hashed] = list(client.export("everyone", hashed=True))
    assert hashed.hashed
    assert sorted(hashed.identifiers) == [
        ("email", hashlib.sha256(b"viktor.ivanov@mail.ru").hexdigest()),
        ("phone", hashlib.sha256(b"+79161234567").hexdigest())]
    page, token = client.members("everyone", hashed=True)
    assert page == [hashed] and token == ""


@BOTH
def test_racing_ingests_of_one_customer_leave_membership_right(services) -> None:
    client = audiences(services)
    client.put("sofa", {k: v for k, v in SOFA_RETARGETING.items() if k != "consent"})
    rounds, failures = 6, []

    def send(message) -> None:
        try:
            ingest(services.profile_stub, message)
        except Exception as error:  # noqa: BLE001 (reported below)
            failures.append(error)

    for i in range(rounds):
        email = f"racer{i}@example.ru"
        view = tracked(f"r-{i}-view", "Product Viewed", properties={"category": "sofas"},
                       email=email)
        buy = tracked(f"r-{i}-buy", "Order Completed", channel="store", email=email,
                      properties={"products": [{"category": "sofas"}]}) if i % 2 else \
            tracked(f"r-{i}-other", "Product Viewed", properties={"category": "sofas"},
                    email=email)
        threads = [threading.Thread(target=send, args=(m,)) for m in (view, buy)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
    [refreshed] = client.refresh(["sofa"])
    assert refreshed[1:3] == (0, 0)  # a fresh evaluation changes nothing
    assert len(member_ids(client, "sofa")) == rounds // 2
    per_customer: dict[str, list[str]] = {}
    for change in all_changes(client, "sofa"):
        per_customer.setdefault(change.customer_id, []).append(change.change)
    for history in per_customer.values():  # never two joins in a row
        assert history in (["joined"], ["joined", "left"]), history


@BOTH
def test_a_window_closes_on_refresh(services, monkeypatch) -> None:
    stub, client = services.profile_stub, audiences(services)
    client.put("sofa", {k: v for k, v in SOFA_RETARGETING.items() if k != "consent"})
    [anna] = ingest(stub, tracked("a-1", "Product Viewed", properties={"category": "sofas"},
                                  email="anna@example.ru", at=NOW - timedelta(days=13)))
    assert member_ids(client, "sofa") == {anna.customer_id}
    monkeypatch.setattr(audience_store, "now", lambda: utc_now() + timedelta(days=2))
    assert client.refresh() == [("sofa", 0, 1, 0)]
    assert [(c.change, c.reason) for c in all_changes(client, "sofa")] == [
        ("joined", "ingest"), ("left", "refresh")]


def test_the_cli_defines_lists_and_refreshes(services, tmp_path, capsys) -> None:
    address = ["--profile-addr", services.address(services.profile), "--json"]
    ingest(services.profile_stub, tracked("a-1", "Product Viewed", email="anna@example.ru",
                                          properties={"category": "sofas"}))
    definition = tmp_path / "sofa.json"
    definition.write_text(json.dumps({k: v for k, v in SOFA_RETARGETING.items()
                                      if k != "consent"}))
    assert main(["audiences", "define", "sofa-retargeting", str(definition), *address]) == 0
    assert json.loads(capsys.readouterr().out)["members"] == 1
    assert main(["audiences", "list", *address]) == 0
    assert [a["name"] for a in json.loads(capsys.readouterr().out)] == ["sofa-retargeting"]
    assert main(["audiences", "refresh", *address]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"name": "sofa-retargeting", "joined": 0, "left": 0, "members": 1}]
    definition.write_text(json.dumps({"include": [{"trait": {"name": "city", "op": "??"}}]}))
    assert main(["audiences", "define", "bad", str(definition), *address]) == 2
    assert "include[0].trait.op" in capsys.readouterr().err


def test_a_split_evaluates_both_parts_again(store, log) -> None:
    """At the store: the record that bought the sofa is split off the viewer's customer, who
    then belongs to the audience again (the change log written out by hand)."""
    now = datetime.now(UTC)
    viewed = replace(stored("v-1", "c1", at=now - timedelta(days=2), record="rec-web"),
                     event="Product Viewed", properties={"category": "sofas"})
    bought = replace(stored("o-1", "c1", at=now - timedelta(days=1), record="rec-pos"),
                     event="Order Completed", channel="store",
                     properties={"products": [{"category": "sofas"}]})
    store.apply_changes([log.created("c1", "rec-web"), log.linked("c1", "rec-pos")])
    store.append([viewed, bought], [])
    audience = rules.parse("sofa", {k: v for k, v in SOFA_RETARGETING.items()
                                    if k != "consent"})
    assert store.put_audience(audience).members == 0
    store.apply_changes([log.split("c2", "c1", "rec-pos")])
    assert [m.customer_id for m in store.audience_members("sofa", "", 10)] == ["c1"]
    assert [(c.customer_id, c.change, c.reason)
            for c in store.audience_changes("sofa", 0, 10)] == [("c1", "joined", "identity")]

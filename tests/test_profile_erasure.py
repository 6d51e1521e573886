"""Erasure over real gRPC on both backends: after EraseProfile no table of the profile or the
identity store holds any of the person's identifiers or names, raw or normalised, JSON
included, nor the digests the placeholder guard kept of his names; the audit entry holds
none; a later event with the person's e-mail is rejected or accepted without a profile, as
configured, while a phone another customer still holds keeps bringing that customer's
events; no log line carries them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from omnicdp.api.profile.v1 import profile_pb2
from omnicdp.core import protoconv
from omnicdp.services.identity.client import IdentityClient
from omnicdp.services.identity.store.graph import name_digest
from omnicdp.services.profile.client import AudienceClient
from tests.conftest import Services, running_services
from tests.pg import temporary_database
from tests.store_scan import rows_as_text
from tests.test_profile_service import T0, event, ingest

# Zinovy Quarkov as partners sent him, and as the stores would normalise him.
PERSON = {"email": "Zinovy.Quarkov@Mail.ru", "phone": "+7 916 555-12-34",
          "loyalty_id": "LC 990177", "anonymous_id": "anon-zq-5521"}
NEEDLES = ("zinovy", "quarkov", "зиновий", "кварков", "555-12-34", "9165551234",
           "lc 990177", "lc990177", "anon-zq-5521", "1983-07-")
# The birth dates his card's forms gave with his e-mail (which made it a placeholder), and
# the digests the placeholder guard keeps of them and of his first name.
FORM_BIRTHS = tuple(f"1983-07-{day:02}" for day in range(1, 21))
NAME_DIGESTS = (name_digest("first_name", "zinovy"),
                *(name_digest("date_of_birth", birth) for birth in FORM_BIRTHS))
OTHER_EMAIL = "olga.control@mail.ru"


class Stack:
    def __init__(self, services: Services, database_url: str, data_dir: Path) -> None:
        self.services, self.database_url, self.data_dir = services, database_url, data_dir
        self.stub = services.profile_stub

    def rows_as_text(self) -> Iterator[tuple[str, str]]:
        """(table, row as text) for every row of every table of both stores."""
        return rows_as_text(self.database_url, self.data_dir)

    def score_rows(self) -> list[str]:
        return [text for table, text in self.rows_as_text() if table.endswith("scores")]

    def audience_rows(self) -> list[str]:
        return [text for table, text in self.rows_as_text()
                if table.split(":")[-1].split(".")[-1].startswith("audience_")]

    def personal_data_left(self) -> list[tuple[str, str]]:
        return [(table, needle) for table, text in self.rows_as_text()
                for needle in (*NEEDLES, *NAME_DIGESTS) if needle in text.lower()]


@pytest.fixture(params=["duckdb", "postgres"])
def backend(request) -> str:
    return request.param


def start(backend: str, tmp_path: Path, cleanup: ExitStack, **settings) -> Stack:
    url = cleanup.enter_context(temporary_database()) if backend == "postgres" else ""
    generator = running_services(tmp_path, url, **settings)
    services = next(generator)
    cleanup.callback(lambda: next(generator, None))
    return Stack(services, url, tmp_path)


def define_store_buyers(services: Services) -> None:
    """An audience the person joins with his store purchase (and Olga does not)."""
    client = AudienceClient(services.address(services.profile))
    try:
        client.put("store-buyers", {"include": [{"counter": {"name": "orders_store",
                                                             "op": "gte", "value": 1}}]})
    finally:
        client.close()


def load_the_person(stub) -> str:
    anonymous = ingest(stub, event("zq-1", type_="page", name="", at=T0,
                                   anonymous_id=PERSON["anonymous_id"]))[0]
    known = event("zq-2", type_="identify", name="", at=T0 + timedelta(minutes=5),
                  **{k: v for k, v in PERSON.items()})
    known.traits.CopyFrom(protoconv.struct_from_dict({
        "first_name": "ZINOVY", "last_name": "quarkov", "date_of_birth": "1983-07-19",
        "city": "Kazan", "full_name_local": "Зиновий Кварков"}))
    order = event("zq-3", name="Order Completed", channel="store", at=T0 + timedelta(days=1),
                  loyalty_id=PERSON["loyalty_id"])
    order.properties.CopyFrom(protoconv.struct_from_dict({
        "order_id": "POS-1", "revenue": 54000, "buyer_note": "for Zinovy Quarkov"}))
    results = ingest(stub, known, order, event("olga-1", email=OTHER_EMAIL))
    assert all(r.status == profile_pb2.INGEST_STATUS_ACCEPTED for r in [anonymous, *results]), [
        (r.message_id, r.status, [v.field for v in r.violations]) for r in results]
    customer = results[0].customer_id
    assert results[1].customer_id == customer
    stub.UpdateConsents(profile_pb2.UpdateConsentsRequest(customer_id=customer, consents=[
        profile_pb2.Consent(purpose="marketing_email", status=profile_pb2.CONSENT_STATUS_GRANTED,
                            channel=protoconv.channel_value("email"), source="web-form",
                            proof_reference="double-opt-in: Zinovy.Quarkov@Mail.ru")]),
        timeout=5)
    stub.SetScores(profile_pb2.SetScoresRequest(customers=[
        profile_pb2.CustomerScores(customer_id=c, scores=[profile_pb2.Score(
            name="ltv_clv", value=value, model="cdp-ltv", model_version="1",
            computed_at=protoconv.timestamp_from_datetime(T0 + timedelta(days=2)))])
        for c, value in ((customer, 54000.0), (results[2].customer_id, 10.0))]), timeout=5)
    profile = stub.GetProfile(profile_pb2.GetProfileRequest(customer_id=customer),
                              timeout=5).profile
    assert profile.event_count == 3 and profile.traits["first_name"] == "Zinovy"
    assert dict(profile.scores) == {"ltv_clv": 54000.0}
    return anonymous.customer_id


def make_his_email_a_placeholder(services: Services, customer: str) -> None:
    """His card's forms carry his e-mail with 20 birth dates (a form that demanded one):
    the guard finds the e-mail not identifying, while his card keeps the records his."""
    forms = []
    for i, birth in enumerate(FORM_BIRTHS):
        form = event(f"zq-form-{i}", type_="identify", name="", at=T0 + timedelta(hours=i + 2),
                     email="zinovy.quarkov@mail.ru", loyalty_id=PERSON["loyalty_id"])
        form.traits.CopyFrom(protoconv.struct_from_dict({"first_name": "Zinovy",
                                                         "date_of_birth": birth}))
        forms.append(form)
    results = ingest(services.profile_stub, *forms)
    assert {r.customer_id for r in results} == {customer}
    identity = IdentityClient(services.address(services.identity))
    try:
        assert identity.lookup("email", PERSON["email"]) is None  # links no one now
        assert identity.lookup("loyalty_id", PERSON["loyalty_id"]) == customer
    finally:
        identity.close()


def lookup_code(stub, value: str) -> grpc.StatusCode:
    try:
        stub.LookupProfile(profile_pb2.LookupProfileRequest(
            type=protoconv.identifier_type_value("email"), value=value), timeout=5)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_erasure_leaves_nothing_of_the_person_and_rejects_later_events(
        backend: str, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    with ExitStack() as cleanup:
        stack = start(backend, tmp_path, cleanup)
        stub = stack.stub
        define_store_buyers(stack.services)
        first_id = load_the_person(stub)  # the anonymous visitor's id, merged away since
        customer = stub.GetProfile(profile_pb2.GetProfileRequest(customer_id=first_id),
                                   timeout=5).profile.customer_id
        make_his_email_a_placeholder(stack.services, customer)
        found = {needle for _, needle in stack.personal_data_left()}
        assert found >= {"zinovy", "lc990177", *NAME_DIGESTS}  # the scan finds him before
        assert [t for t, _ in stack.rows_as_text() if t.endswith("placeholders")]
        assert len(stack.score_rows()) == 2  # his and Olga's
        assert len(stack.audience_rows()) == 2  # his membership and its joining

        erased = stub.EraseProfile(profile_pb2.EraseProfileRequest(
            customer_id=first_id, actor="privacy-desk", reason="ticket 4711"), timeout=10)

        assert (erased.events_erased, erased.consents_erased) == (3 + len(FORM_BIRTHS), 1)
        assert erased.identifiers_erased == 4 and erased.records_erased >= 3
        assert stack.personal_data_left() == []
        # Scores carry no identifier the scan would find: his row is gone, Olga's stays.
        assert [erased.customer_id in text for text in stack.score_rows()] == [False]
        # Nor do memberships: his membership and its history are gone.
        assert stack.audience_rows() == []
        for customer_id in (first_id, erased.customer_id):
            with pytest.raises(grpc.RpcError) as gone:
                stub.GetProfile(profile_pb2.GetProfileRequest(customer_id=customer_id),
                                timeout=5)
            assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        assert lookup_code(stub, PERSON["email"]) == grpc.StatusCode.NOT_FOUND
        assert lookup_code(stub, OTHER_EMAIL) == grpc.StatusCode.OK  # others stay

        # Later events carrying his e-mail (in another spelling) are refused, not rebuilt.
        [again] = ingest(stub, event("zq-4", email="ZINOVY.QUARKOV@mail.ru",
                                     anonymous_id="anon-new-1"))
        assert again.status == profile_pb2.INGEST_STATUS_REJECTED
        assert [v.field for v in again.violations] == ["identifiers"]
        assert lookup_code(stub, PERSON["email"]) == grpc.StatusCode.NOT_FOUND
        assert stack.personal_data_left() == []
        assert "anon-new-1" not in " ".join(text for _, text in stack.rows_as_text())

        # The audit entry: who, which customer, when, counts; scanned above like every row.
        audit = [text for table, text in stack.rows_as_text() if "erasure_audit" in table]
        assert len(audit) == 1
        assert "privacy-desk" in audit[0] and erased.customer_id in audit[0]

    logged = "\n".join(record.getMessage() for record in caplog.records).lower()
    assert "erased customer" in logged
    assert not [n for n in NEEDLES if n in logged]


def test_later_events_of_an_erased_person_can_be_accepted_without_a_profile(
        backend: str, tmp_path: Path) -> None:
    with ExitStack() as cleanup:
        stack = start(backend, tmp_path, cleanup, erased_events="accept")
        stub = stack.stub
        customer = load_the_person(stub)
        stub.EraseProfile(profile_pb2.EraseProfileRequest(
            customer_id=customer, actor="privacy-desk", reason="ticket 4712"), timeout=10)
        [again] = ingest(stub, event("zq-4", email=PERSON["email"], phone=PERSON["phone"]))
        assert again.status == profile_pb2.INGEST_STATUS_ACCEPTED
        assert again.customer_id == ""
        assert [w.field for w in again.warnings] == ["identifiers"]
        assert lookup_code(stub, PERSON["email"]) == grpc.StatusCode.NOT_FOUND
        assert stack.personal_data_left() == []


def test_a_home_phone_the_other_spouse_holds_still_brings_her_events(
        backend: str, tmp_path: Path) -> None:
    """Spouses, two customers by their own e-mails, share the home phone. Erasing him
    tombstones his e-mail, not the phone: her later store purchase with it is accepted onto
    her profile, while an event with his e-mail is still refused."""
    with ExitStack() as cleanup:
        stack = start(backend, tmp_path, cleanup)
        stub = stack.stub
        his, hers = ingest(
            stub, event("p-1", type_="identify", name="", email="pavel.home@mail.ru",
                        phone="+7 495 123-45-67"),
            event("i-1", type_="identify", name="", at=T0 + timedelta(minutes=1),
                  email="irina.home@mail.ru", phone="8 (495) 123-45-67"))
        assert his.customer_id and hers.customer_id and his.customer_id != hers.customer_id

        stub.EraseProfile(profile_pb2.EraseProfileRequest(
            customer_id=his.customer_id, actor="privacy-desk", reason="ticket 4713"), timeout=10)

        purchase, again = ingest(
            stub, event("i-2", name="Order Completed", channel="store",
                        at=T0 + timedelta(days=1), phone="84951234567"),
            event("p-2", at=T0 + timedelta(days=1), email="Pavel.Home@mail.ru"))
        assert purchase.status == profile_pb2.INGEST_STATUS_ACCEPTED
        assert purchase.customer_id == hers.customer_id
        assert stub.GetProfile(profile_pb2.GetProfileRequest(customer_id=hers.customer_id),
                               timeout=5).profile.event_count == 2
        assert again.status == profile_pb2.INGEST_STATUS_REJECTED
        assert [v.field for v in again.violations] == ["identifiers"]
        left = " ".join(text for _, text in stack.rows_as_text()).lower()
        assert "pavel" not in left and "irina.home@mail.ru" in left


def test_erasure_needs_an_actor_and_a_known_customer(services) -> None:
    stub = services.profile_stub
    [known] = ingest(stub, event("m-1", email="anna@example.ru"))
    for request, code in [
            (profile_pb2.EraseProfileRequest(customer_id=known.customer_id),
             grpc.StatusCode.INVALID_ARGUMENT),
            (profile_pb2.EraseProfileRequest(customer_id="nobody", actor="privacy-desk",
                                             reason="ticket 1"),
             grpc.StatusCode.NOT_FOUND)]:
        with pytest.raises(grpc.RpcError) as refused:
            stub.EraseProfile(request, timeout=5)
        assert refused.value.code() == code
    assert stub.GetProfile(profile_pb2.GetProfileRequest(customer_id=known.customer_id),
                           timeout=5).profile.event_count == 1

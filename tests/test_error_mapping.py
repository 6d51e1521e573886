"""Domain errors keep their meaning across every hop.

Two real gRPC servers in a chain, as in production: a far service (identity-shaped) raises,
a middle service (profile-shaped) calls it through ``IdentityClient`` and lets the error
propagate, and the test calls the middle one through ``ProfileClient``, then through the
gateway over HTTP. Each status must arrive as the same domain error class, with the same
reason, violations and metadata, and as the right problem+json.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from omnicdp.api.identity.v1 import identity_pb2, identity_pb2_grpc
from omnicdp.api.profile.v1 import profile_pb2, profile_pb2_grpc
from omnicdp.core import errors
from omnicdp.core.digests import sha256_hex
from omnicdp.core.server import Registration, ServiceHost
from omnicdp.services.gateway.keys import ApiKeys
from omnicdp.services.gateway.routes import Backends, create_app
from omnicdp.services.identity.client import IdentityClient
from omnicdp.services.profile.client import ProfileClient

KEY = "reader-secret"


@dataclass
class FarIdentity(identity_pb2_grpc.IdentityServiceServicer):
    """GetCustomer fails as its customer_id says; records what it saw."""

    calls: int = 0
    time_remaining: list[float | None] = field(default_factory=list)

    def GetCustomer(self, request, context):  # noqa: N802
        self.calls += 1
        self.time_remaining.append(context.time_remaining())
        kind = request.customer_id
        if kind == "invalid":
            raise errors.InvalidArgument("customer_id is malformed", [
                errors.FieldViolation("customer_id", "cus_ and 24 hex digits")],
                reason="BAD_CUSTOMER_ID")
        if kind == "missing":
            raise errors.NotFound("no customer missing", reason="CUSTOMER_NOT_FOUND",
                                  metadata={"customer_id": "missing"})
        if kind == "erased":
            raise errors.FailedPrecondition("the customer was erased", reason="CUSTOMER_ERASED")
        if kind == "slow":
            time.sleep(1.5)
        if kind == "crash":
            raise RuntimeError("driver said: ivan.petrov@mail.ru violates a key")
        return identity_pb2.GetCustomerResponse(
            customer=identity_pb2.Customer(customer_id=kind))


class MiddleProfile(profile_pb2_grpc.ProfileServiceServicer):
    """GetProfile asks the far service, as the profile service asks identity."""

    def __init__(self, identity: IdentityClient) -> None:
        self.identity = identity
        self.calls = 0

    def GetProfile(self, request, context):  # noqa: N802
        self.calls += 1
        customer = self.identity.get_customer(request.customer_id)
        return profile_pb2.GetProfileResponse(
            profile=profile_pb2.Profile(customer_id=customer.customer_id, event_count=1))


@dataclass
class Chain:
    far: FarIdentity
    far_host: ServiceHost
    middle: MiddleProfile
    middle_address: str


def _host(name: str, add, servicer, service: str) -> ServiceHost:
    host = ServiceHost(name, [Registration(add, servicer, service)], "127.0.0.1:0",
                       grace_seconds=0)
    host.start()
    return host


@pytest.fixture
def chain() -> Iterator[Chain]:
    far = FarIdentity()
    far_host = _host("far", identity_pb2_grpc.add_IdentityServiceServicer_to_server, far,
                     "omnicdp.identity.v1.IdentityService")
    identity = IdentityClient(f"127.0.0.1:{far_host.port}")
    middle = MiddleProfile(identity)
    middle_host = _host("middle", profile_pb2_grpc.add_ProfileServiceServicer_to_server,
                        middle, "omnicdp.profile.v1.ProfileService")
    yield Chain(far, far_host, middle, f"127.0.0.1:{middle_host.port}")
    middle_host.stop(grace=0)
    identity.close()
    far_host.stop(grace=0)


@pytest.fixture
def profiles(chain: Chain) -> Iterator[ProfileClient]:
    client = ProfileClient(chain.middle_address, deadline=5)
    yield client
    client.close()


@pytest.fixture
def http(chain: Chain, tmp_path: Path) -> Iterator[TestClient]:
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [
        {"name": "reader", "sha256": sha256_hex(KEY), "scopes": ["profiles:read"]}]}))
    backends = Backends.connect(chain.middle_address, chain.middle_address,
                                chain.middle_address, deadline=5)
    with TestClient(create_app(ApiKeys.load(keys), backends)) as client:
        yield client
    backends.close()


def test_invalid_argument_keeps_reason_and_field_violations_across_two_hops(profiles) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        profiles.get_profile("invalid")
    assert caught.value.reason == "BAD_CUSTOMER_ID"
    assert caught.value.message == "customer_id is malformed"
    assert caught.value.violations == [
        errors.FieldViolation("customer_id", "cus_ and 24 hex digits")]


def test_not_found_keeps_reason_and_metadata_across_two_hops(profiles) -> None:
    with pytest.raises(errors.NotFound) as caught:
        profiles.get_profile("missing")
    assert caught.value.reason == "CUSTOMER_NOT_FOUND"
    assert caught.value.metadata == {"customer_id": "missing"}


def test_failed_precondition_keeps_its_meaning_across_two_hops(profiles) -> None:
    with pytest.raises(errors.FailedPrecondition) as caught:
        profiles.get_profile("erased")
    assert caught.value.reason == "CUSTOMER_ERASED"


def test_callers_deadline_reaches_the_far_service_and_comes_back_as_deadline_exceeded(
        chain: Chain) -> None:
    client = ProfileClient(chain.middle_address, deadline=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceeded):
            client.get_profile("slow")
        assert time.monotonic() - started < 1.4  # not the middle's own 10 s deadline
    finally:
        client.close()
    # The middle service passed on what was left of 0.5 s, not its own default.
    assert chain.far.time_remaining[0] is not None and chain.far.time_remaining[0] <= 0.5


def test_unavailable_is_retried_once_along_the_chain_not_multiplied(chain: Chain,
                                                                     profiles) -> None:
    chain.far_host.stop(grace=0)
    with pytest.raises(errors.Unavailable) as caught:
        profiles.get_profile("anyone")
    assert caught.value.reason == "UNAVAILABLE"
    assert "127.0.0.1" not in caught.value.message  # no internal address reaches the caller
    # The middle service retried the far one; its pushback stopped our channel retrying it.
    assert chain.middle.calls == 1


def test_unexpected_failure_is_internal_without_its_text(profiles) -> None:
    with pytest.raises(errors.Internal) as caught:
        profiles.get_profile("crash")
    assert "ivan.petrov" not in caught.value.message
    assert caught.value.reason == "INTERNAL"


@pytest.mark.parametrize("customer_id, status, code", [
    ("invalid", 400, "BAD_CUSTOMER_ID"),
    ("missing", 404, "CUSTOMER_NOT_FOUND"),
    ("erased", 409, "CUSTOMER_ERASED"),
    ("crash", 500, "INTERNAL"),
])
def test_gateway_answers_problem_json_with_the_reason_as_code(http, customer_id: str,
                                                                status: int, code: str) -> None:
    response = http.get(f"/v1/profiles/{customer_id}", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["code"]) == (status, code)
    assert "Retry-After" not in response.headers  # retrying these cannot help
    if customer_id == "invalid":
        assert problem["errors"] == [{"field": "customer_id",
                                      "description": "cus_ and 24 hex digits"}]
    if customer_id == "crash":
        assert "ivan.petrov" not in response.text


def test_gateway_answers_503_with_retry_after_when_a_service_is_down(chain: Chain, http) -> None:
    chain.far_host.stop(grace=0)
    response = http.get("/v1/profiles/anyone", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 503
    assert response.json()["code"] == "UNAVAILABLE"
    assert response.headers["Retry-After"] == "1"


def test_gateway_answers_504_when_the_chain_misses_the_deadline(chain: Chain,
                                                                tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump({"keys": [{"name": "r", "key": KEY,
                                              "scopes": ["profiles:read"]}]}))
    backends = Backends.connect(chain.middle_address, chain.middle_address,
                                chain.middle_address, deadline=0.5)
    try:
        with TestClient(create_app(ApiKeys.load(keys), backends)) as client:
            response = client.get("/v1/profiles/slow",
                                  headers={"Authorization": f"Bearer {KEY}"})
    finally:
        backends.close()
    assert response.status_code == 504
    assert response.json()["code"] == "DEADLINE_EXCEEDED"


def test_concurrent_failures_do_not_leak_deadlines_between_requests(chain: Chain) -> None:
    """The serving deadline is per request: a slow request's deadline never shortens
    another's, though both run on the middle service's thread pool."""
    short = ProfileClient(chain.middle_address, deadline=0.5)
    long = ProfileClient(chain.middle_address, deadline=8)
    outcomes: dict[str, object] = {}

    def run(name: str, client: ProfileClient, customer_id: str) -> None:
        try:
            outcomes[name] = client.get_profile(customer_id).customer_id
        except errors.DomainError as error:
            outcomes[name] = type(error)

    try:
        threads = [threading.Thread(target=run, args=("short", short, "slow")),
                   threading.Thread(target=run, args=("long", long, "slow"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
    finally:
        short.close()
        long.close()
    assert outcomes == {"short": errors.DeadlineExceeded, "long": "slow"}


def test_status_table_is_one_to_one() -> None:
    from omnicdp.core import status

    kinds = [kind for kind, _ in status.CODES]
    codes = [code for _, code in status.CODES]
    assert len(set(kinds)) == len(kinds) and len(set(codes)) == len(codes)
    for kind, code in status.CODES:
        error = kind.rebuild("message", "SOME_REASON", metadata={"k": "v"})
        assert status.code_for(error) is code
        assert status.to_status_proto(error).code == code.value[0]


def test_a_client_refuses_a_bad_argument_with_a_domain_error_before_calling() -> None:
    from omnicdp.services.attribution.client import AttributionClient

    client = AttributionClient("127.0.0.1:1")  # nothing listens: the call is never made
    try:
        with pytest.raises(errors.InvalidArgument) as caught:
            client.run("magic")
    finally:
        client.close()
    assert caught.value.violations[0].field == "model"

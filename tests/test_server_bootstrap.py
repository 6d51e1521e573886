"""The shared gRPC bootstrap: health, reflection, graceful shutdown."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from omnicdp.api.profile.v1 import profile_pb2, profile_pb2_grpc
from omnicdp.core import telemetry
from omnicdp.core.channels import traced_call
from omnicdp.core.server import Registration, ServiceHost


class SlowProfiles(profile_pb2_grpc.ProfileServiceServicer):
    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def GetProfile(self, request, context):  # noqa: N802
        self.started.set()
        self.release.wait(10)
        return profile_pb2.GetProfileResponse(
            profile=profile_pb2.Profile(customer_id=request.customer_id))


def host_with(servicer) -> ServiceHost:
    host = ServiceHost("test", [Registration(
        profile_pb2_grpc.add_ProfileServiceServicer_to_server, servicer,
        "omnicdp.profile.v1.ProfileService")], "127.0.0.1:0", grace_seconds=5)
    host.start()
    return host


def test_health_and_reflection_are_served() -> None:
    host = host_with(SlowProfiles())
    try:
        with grpc.insecure_channel(f"127.0.0.1:{host.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "omnicdp.profile.v1.ProfileService"):
                reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            services = ProtoReflectionDescriptorDatabase(channel).get_services()
            assert "omnicdp.profile.v1.ProfileService" in services
            assert "grpc.health.v1.Health" in services
    finally:
        host.stop(grace=0)


def test_sigterm_path_reports_not_serving_and_lets_in_flight_calls_finish() -> None:
    servicer = SlowProfiles()
    host = host_with(servicer)
    with grpc.insecure_channel(f"127.0.0.1:{host.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=20)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        in_flight = profile_pb2_grpc.ProfileServiceStub(channel).GetProfile.future(
            profile_pb2.GetProfileRequest(customer_id="cus_1"), timeout=20)
        assert servicer.started.wait(5)
        stopper = threading.Thread(target=host.stop)
        stopper.start()
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
        servicer.release.set()
        assert in_flight.result().profile.customer_id == "cus_1"
        stopper.join(10)
        assert not stopper.is_alive()


def test_a_taken_port_is_refused_with_a_clear_error() -> None:
    first = host_with(SlowProfiles())
    try:
        second = ServiceHost("second", [], f"127.0.0.1:{first.port}")
        with pytest.raises(SystemExit, match="cannot listen on .* in use"):
            second.start()
    finally:
        first.stop(grace=0)


def test_identity_refuses_a_bad_blocked_values_file_naming_the_line(tmp_path) -> None:
    from omnicdp.services.identity.server import build
    from omnicdp.services.identity.settings import Settings

    patterns = tmp_path / "blocked.txt"
    patterns.write_text("email:.*@shop\\.ru\nphone:(+7\n", "utf-8")
    with pytest.raises(SystemExit, match=r"CDP_BLOCKED_VALUES: .*blocked\.txt, line 2"):
        build(Settings(data_dir=tmp_path, blocked_values=str(patterns)))
    with pytest.raises(SystemExit, match="CDP_BLOCKED_VALUES: .*No such file"):
        build(Settings(data_dir=tmp_path, blocked_values=str(tmp_path / "missing.txt")))


def test_a_method_the_service_does_not_implement_answers_unimplemented() -> None:
    """Handlers are mounted guarded; a generated default method keeps its own status."""
    host = host_with(SlowProfiles())
    try:
        with (grpc.insecure_channel(f"127.0.0.1:{host.port}") as channel,
              pytest.raises(grpc.RpcError) as raised):
            profile_pb2_grpc.ProfileServiceStub(channel).LookupProfile(
                profile_pb2.LookupProfileRequest(value="x"), timeout=5)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        host.stop(0)


def test_tracing_is_off_without_an_exporter_and_skips_health_checks(monkeypatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert telemetry.setup_tracing("cdp-test") is None
    assert not telemetry.tracing()
    # Where it is on, every call but the health checks is traced (server and client side).
    assert not traced_call(SimpleNamespace(method="/grpc.health.v1.Health/Check"))
    assert not traced_call(SimpleNamespace(full_method="/grpc.health.v1.Health/Watch"))
    assert traced_call(SimpleNamespace(method=b"/omnicdp.profile.v1.ProfileService/GetProfile"))
    assert traced_call(SimpleNamespace(full_method="/omnicdp.profile.v1.ProfileService/Get"))

"""`cdp up` end to end: separate processes, a partner request through the gateway, one
trace across the services (collected by a real OTLP/gRPC receiver), and a clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Collects exported spans: trace id -> {(service.name, span name)}."""

    def __init__(self) -> None:
        self.spans: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self.attribute_values: list[str] = []
        self.lock = threading.Lock()

    def Export(self, request, context):  # noqa: N802 (OTLP's name)
        with self.lock:
            for resource_spans in request.resource_spans:
                service = next((a.value.string_value for a in resource_spans.resource.attributes
                                if a.key == "service.name"), "?")
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans[span.trace_id.hex()].add((service, span.name))
                        self.attribute_values += [str(a.value) for a in span.attributes]
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans_of(self, trace_id: str) -> set[tuple[str, str]]:
        with self.lock:
            return set(self.spans.get(trace_id, set()))

    def services_in(self, trace_id: str) -> set[str]:
        return {service for service, _ in self.spans_of(trace_id)}


@pytest.fixture
def otlp():
    receiver = OtlpReceiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield receiver, port
    server.stop(0)


def start_cdp_up(data_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen, dict]:
    process = subprocess.Popen(
        [sys.executable, "-m", "omnicdp.cli", "up", "--data-dir", str(data_dir), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, **env}, start_new_session=True)
    line = process.stdout.readline()
    if not line:
        process.kill()
        pytest.fail(f"cdp up did not start: {process.stderr.read()}")
    return process, json.loads(line)


def request(url: str, key: str, body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                 headers={"Authorization": f"Bearer {key}",
                                          "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        # The problem document names what failed (which service, why): keep it in the
        # error a failing test shows.
        error.msg = f"{error.msg}: {error.read()[:500]!r}"
        raise


def wait_until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def assert_all_exited(pids: list[int], timeout: float = 20.0) -> None:
    assert wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=timeout), \
        [p for p in pids if pid_alive(p)]


def test_partner_request_is_one_trace_across_gateway_profile_identity(tmp_path, otlp) -> None:
    receiver, port = otlp
    process, up = start_cdp_up(tmp_path / "cdp", {
        "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100"})
    try:
        url, key = up["gateway_url"], up["api_key"]
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        status, body = request(f"{url}/v1/events", key, {"events": [{
            "message_id": "e2e-1", "type": "identify", "channel": "web",
            "identifiers": {"email": "Sergei.Smirnov@Mail.ru", "phone": "8 903 555-12-34"},
            "traits": {"first_name": "Сергей"}}]},
            headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
        assert status == 200
        assert body["results"][0]["status"] == "accepted"
        status, profile = request(f"{url}/v1/profiles:lookup?type=phone&value=%2B79035551234",
                                  key)
        assert status == 200
        assert profile["customer_id"] == body["results"][0]["customer_id"]
        assert profile["identifiers"]["email"] == ["sergei.smirnov@mail.ru"]

        expected = {
            ("cdp-gateway", "POST /v1/events"),
            ("cdp-gateway", "/omnicdp.profile.v1.ProfileService/IngestEvents"),
            ("cdp-profile", "/omnicdp.profile.v1.ProfileService/IngestEvents"),
            ("cdp-profile", "/omnicdp.identity.v1.IdentityService/ResolveIdentities"),
            ("cdp-identity", "/omnicdp.identity.v1.IdentityService/ResolveIdentities"),
        }  # client and server span of every hop, all in the partner's trace
        assert wait_until(lambda: expected <= receiver.spans_of(trace_id)), \
            receiver.spans_of(trace_id)
        assert receiver.services_in(trace_id) == {"cdp-gateway", "cdp-profile", "cdp-identity"}
        assert wait_until(lambda: any("profiles:lookup" in v for v in receiver.attribute_values))
        leaked = [v for v in receiver.attribute_values if "9035551234" in v or "smirnov" in v]
        assert leaked == [], "identifiers must not reach traces"
        assert not any("Health" in name for spans in receiver.spans.values()
                       for _, name in spans), "health checks must not be traced"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_sigterm_stops_every_process(tmp_path) -> None:
    process, up = start_cdp_up(tmp_path / "cdp", {"OTEL_TRACES_EXPORTER": "none"})
    pids = [s["pid"] for s in up["services"].values()]
    assert len(pids) == 4 and all(pid_alive(p) for p in pids)
    try:
        status, _ = request(f"{up['gateway_url']}/v1/events", up["api_key"], {"events": [{
            "message_id": "durable-1", "type": "track", "event": "Order Completed",
            "channel": "store", "identifiers": {"loyalty_id": "CARD-1"},
            "properties": {"revenue": 100}}]})
        assert status == 200
        with pytest.raises(urllib.error.HTTPError) as caught:
            request(f"{up['gateway_url']}/v1/profiles/cus_x", "not-a-key")
        assert caught.value.code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert_all_exited(pids, timeout=10)
    # What was acknowledged survived the stop: a new system on the same data finds it.
    process, up = start_cdp_up(tmp_path / "cdp", {"OTEL_TRACES_EXPORTER": "none"})
    try:
        status, profile = request(
            f"{up['gateway_url']}/v1/profiles:lookup?type=loyalty_id&value=CARD-1",
            up["api_key"])
        assert status == 200 and profile["event_count"] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_killed_supervisor_leaves_no_orphans(tmp_path) -> None:
    process, up = start_cdp_up(tmp_path / "cdp", {"OTEL_TRACES_EXPORTER": "none"})
    pids = [s["pid"] for s in up["services"].values()]
    process.kill()
    process.wait(timeout=10)
    assert_all_exited(pids)


def test_ctrl_c_stops_every_process(tmp_path) -> None:
    """Ctrl-C in a terminal sends SIGINT to the whole foreground process group."""
    process, up = start_cdp_up(tmp_path / "cdp", {"OTEL_TRACES_EXPORTER": "none"})
    pids = [s["pid"] for s in up["services"].values()]
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=30) == 0
    assert_all_exited(pids, timeout=10)

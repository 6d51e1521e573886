"""Bounded resources at the gateway, run as its own process (uvicorn, real sockets): bodies
refused while they stream, slow clients closed, requests in flight capped, probes fast
under load, pages bounded by bytes."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import pytest

from omnicdp.api.common.v1 import common_pb2
from omnicdp.api.profile.v1 import profile_pb2, profile_pb2_grpc
from omnicdp.core import protoconv
from omnicdp.core.channels import MAX_MESSAGE_BYTES
from tests.gateway_kit import READER, WRITER, GatewayProcess, auth, ev, write_keys


@pytest.fixture
def gateway(services, tmp_path: Path):
    process = GatewayProcess(services, write_keys(tmp_path / "keys.yaml", other=6000),
                             "--header-timeout-seconds", "1", "--body-timeout-seconds", "2",
                             "--max-in-flight", "6", "--max-in-flight-per-key", "3")
    yield process
    process.stop()


KUBELET_PROBE_TIMEOUT = 1.0  # seconds: Kubernetes' default timeoutSeconds (k8s/ sets none)

def connect(gateway: GatewayProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=10)


def read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_chunked_body_over_the_limit_is_refused_before_it_is_read(gateway) -> None:
    """A 300 MB chunked body (no Content-Length): the 413 comes after about the limit, and
    the gateway's memory does not grow with the body."""
    rss_before = gateway.rss_bytes()
    sock = connect(gateway)
    sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + WRITER.encode() + b"\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b" " * (1 << 20))
    sent, answer = 0, b""
    sock.setblocking(False)
    while sent < 300 << 20:
        readable, writable, _ = select.select([sock], [sock], [], 10)
        if readable:
            answer = sock.recv(65536)
            break
        if writable:
            try:
                sent += sock.send(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                continue
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert sent < 32 << 20, f"{sent >> 20} MB sent before the 413"
    assert gateway.rss_bytes() - rss_before < 50 << 20


def test_slow_clients_are_closed_and_healthz_keeps_answering(gateway) -> None:
    """200 connections trickling their headers a byte at a time are closed after the
    header timeout (1 s here), while /healthz answers each probe within the kubelet's
    probe timeout."""
    slow = [connect(gateway) for _ in range(200)]
    for sock in slow:
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    open_ = set(slow)
    with httpx.Client(base_url=gateway.url) as probe:
        while open_ and time.monotonic() - started < 15:
            for sock in list(open_):
                try:
                    sock.send(b"X")
                except OSError:
                    open_.discard(sock)
            assert probe.get("/healthz", timeout=KUBELET_PROBE_TIMEOUT).status_code == 200
            readable, _, _ = select.select(list(open_), [], [], 0.2)
            for sock in readable:
                try:
                    closed = sock.recv(1024) == b""
                except OSError:  # reset: closed too
                    closed = True
                if closed:
                    open_.discard(sock)
    closed_after = time.monotonic() - started
    for sock in slow:
        sock.close()
    assert not open_, f"{len(open_)} slow connections still open"
    assert closed_after < 5  # closed by the 1 s header timeout, not by the test's 15 s


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Trickle header bytes until the gateway closes the connection: how long that took,
    or ``None`` if it stayed open for ``seconds``."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            sock.send(b"X")
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable and sock.recv(1024) == b"":
                return time.monotonic() - started
        except OSError:  # reset: closed too
            return time.monotonic() - started
    return None


def test_a_kept_alive_connection_owes_each_requests_headers_in_time(gateway) -> None:
    """After a response the header deadline starts again: a next request sent within it is
    answered on the same connection, and one whose headers trickle is closed after the
    header timeout (1 s here) like a new connection's."""
    sock = connect(gateway)
    probe = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with sock:
        for _ in range(3):
            sock.sendall(probe)
            head = read_response(sock)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < length:  # the whole response, so the next read starts clean
                body += sock.recv(65536)
            time.sleep(0.6)  # idle for most of the deadline: each response restarts it
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        took = closed_within(sock, 10)
    assert took is not None and took < 5, took


def test_connections_beyond_the_cap_are_closed_at_once(services, tmp_path: Path) -> None:
    """With 3 connections open (the cap here) a fourth is closed without an answer, and
    once one of them goes, a new connection is served."""
    capped = GatewayProcess(services, write_keys(tmp_path / "keys.yaml"),
                            "--max-connections", "3", "--header-timeout-seconds", "30")
    try:
        held = [connect(capped) for _ in range(3)]
        extra = connect(capped)
        readable, _, _ = select.select([extra], [], [], 5)  # it sends nothing: no answer due
        assert readable and extra.recv(1024) == b"", "the fourth connection stayed open"
        held.pop().close()
        time.sleep(0.2)  # the gateway sees the close
        with connect(capped) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(sock).startswith(b"HTTP/1.1 200")
        for sock in [*held, extra]:
            sock.close()
    finally:
        capped.stop()


def test_requests_in_flight_are_capped_per_key_and_in_total(gateway) -> None:
    """Requests whose bodies do not arrive hold their slots: past 3 of one key, that key
    gets 429 with Retry-After; past 6 in all, everyone gets 503 with Retry-After; the held
    ones end in 408 after the body timeout, and health probes pass throughout."""
    def hold(key: str) -> socket.socket:
        sock = connect(gateway)
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                     b"Authorization: Bearer " + key.encode() + b"\r\n\r\n")
        return sock

    held = [hold(WRITER) for _ in range(3)]
    with httpx.Client(base_url=gateway.url) as client:
        deadline = time.monotonic() + 5
        while (response := client.get("/v1/profiles/x", headers=auth(WRITER))).status_code \
                != 429 and time.monotonic() < deadline:
            pass  # until the held requests have reached the key check
        assert response.status_code == 429
        assert response.json()["code"] == "TOO_MANY_CONCURRENT_REQUESTS"
        assert response.headers["Retry-After"] == "1"
        assert client.get("/v1/profiles/x", headers=auth(READER)).status_code == 404
        held += [hold("other") for _ in range(3)]
        # Probe with the capped key: its probes never reach a service, so they hold a slot
        # only for an instant and cannot take one from the requests being held.
        deadline = time.monotonic() + 5
        while (response := client.get("/v1/profiles/x", headers=auth(WRITER))).status_code \
                != 503 and time.monotonic() < deadline:
            pass
        assert response.status_code == 503
        assert response.json()["code"] == "OVERLOADED"
        assert response.headers["Retry-After"] == "1"
        assert client.get("/healthz").status_code == 200
        answers = [read_response(sock) for sock in held]
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
        assert client.get("/v1/profiles/x", headers=auth(WRITER)).status_code == 404


LOAD = """
import asyncio, sys, httpx
url, path, key = sys.argv[1:4]
async def main():
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        async def read():
            while True:
                reply = await client.get(path, headers={"Authorization": "Bearer " + key})
                if "retry-after" in reply.headers:  # as the gateway asks
                    await asyncio.sleep(float(reply.headers["retry-after"]))
        await asyncio.gather(*[read() for _ in range(64)])
asyncio.run(main())
"""


def test_healthz_answers_the_kubelet_under_64_concurrent_heavy_reads(services,
                                                                     tmp_path: Path) -> None:
    """64 clients reading 200-event journeys without pause (a process of their own; they
    wait when told to retry later), the gateway at its default caps: every /healthz probe
    is answered, not refused by admission, within the kubelet's probe timeout (k8s/ sets
    none: Kubernetes' default, 1 s), so a busy gateway is not restarted."""
    gateway = GatewayProcess(services, write_keys(tmp_path / "keys.yaml"))
    email = {"email": "heavy@example.ru"}
    batch = [ev(f"h-{i}", identifiers=email, properties={"note": "x" * 2000})
             for i in range(200)]
    try:
        with httpx.Client(base_url=gateway.url) as client:
            stored = client.post("/v1/events", json={"events": batch}, headers=auth(WRITER))
            customer = stored.json()["results"][0]["customer_id"]
            path = f"/v1/profiles/{customer}/events?page_size=1000"
            assert client.get(path, headers=auth(READER)).status_code == 200
            # The clients would be other machines: here they yield the CPU to the system.
            load = subprocess.Popen([sys.executable, "-c", LOAD, gateway.url, path, READER],
                                    preexec_fn=lambda: os.nice(19))
            try:
                while gateway.cpu_seconds() < 1.0:  # until the load is on
                    assert load.poll() is None
                    client.get("/healthz")
                for _ in range(30):
                    assert client.get("/healthz", timeout=KUBELET_PROBE_TIMEOUT
                                      ).status_code == 200
                assert load.poll() is None  # the load lasted through every probe
            finally:
                load.kill()
                load.wait()
    finally:
        gateway.stop()


def test_a_page_of_large_events_stays_under_the_message_limit(services) -> None:
    """600 events of ~30 KB (18 MB, over the 16 MiB gRPC limit) in one journey: pages are
    cut by bytes, each is sendable, and together they hold every event once."""
    channel = grpc.insecure_channel(services.address(services.profile), options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)])  # as the services' clients
    services.channels.append(channel)
    stub = profile_pb2_grpc.ProfileServiceStub(channel)
    note = "x" * 30_000
    for start in range(0, 600, 100):
        batch = []
        for i in range(start, start + 100):
            event = common_pb2.Event(
                message_id=f"big-{i}", type=protoconv.event_type_value("track"),
                event="Page Viewed", channel=protoconv.channel_value("web"),
                identifiers=protoconv.identifiers_from_dict({"email": "big@example.ru"}))
            event.properties.update({"note": note})
            batch.append(event)
        results = stub.IngestEvents(profile_pb2.IngestEventsRequest(events=batch),
                                    timeout=30).results
        customer = results[0].customer_id
    seen, token, pages = [], "", 0
    while True:
        page = stub.ListProfileEvents(profile_pb2.ListProfileEventsRequest(
            customer_id=customer, page_size=1000, page_token=token), timeout=30)
        assert page.ByteSize() < MAX_MESSAGE_BYTES
        seen += [e.message_id for e in page.events]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages >= 2
    assert sorted(seen) == sorted(f"big-{i}" for i in range(600))

"""`cdp up` heals: each child killed during a stream of batches is restarted, the partner
sees only 200s and 503s with Retry-After, and nothing acknowledged is lost."""

from __future__ import annotations

import os
import signal
import stat
import threading
from collections import Counter
from pathlib import Path

import httpx

from omnicdp.cli import supervisor
from tests.test_e2e import start_cdp_up, wait_until

CARD = "CARD-FAULT"


def child_pid(supervisor: int, name: str) -> int | None:
    """The live child of the supervisor serving ``name``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == supervisor and fields[0] != "Z" and b"serve" in command \
                and name.encode() in command:
            return int(entry.name)
    return None


class BatchStream:
    """Sends batches one after another from a thread, retrying a batch after a 503 as told,
    and records every status and every message id acknowledged."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.statuses: Counter[str] = Counter()
        self.acknowledged: set[str] = set()
        self.lock = threading.Lock()
        self.running = threading.Event()
        self.idle = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        client = httpx.Client(timeout=60)
        while not self.done.is_set():
            if not self.running.is_set():
                # Paused: a keep-alive connection may be to a gateway about to be killed,
                # which could only drop it; the next batch opens a new one.
                client.close()
                client = httpx.Client(timeout=60)
                self.idle.set()
                self.running.wait(0.1)
                continue
            self.idle.clear()
            batch = [{"message_id": f"f-{n}-{i}", "type": "track",
                      "event": "Order Completed", "channel": "store",
                      "identifiers": {"loyalty_id": CARD}, "properties": {"revenue": 1}}
                     for i in range(5)]
            try:
                answer = client.post(f"{self.url}/v1/events", json={"events": batch},
                                     headers={"Authorization": f"Bearer {self.key}"})
            except httpx.TransportError as error:
                with self.lock:
                    self.statuses[type(error).__name__] += 1
                continue
            with self.lock:
                if answer.status_code == 503 and "Retry-After" in answer.headers:
                    self.statuses["503 with Retry-After"] += 1
                    continue  # the same batch again
                self.statuses[str(answer.status_code)] += 1
                if answer.status_code == 200:
                    self.acknowledged |= {r["message_id"] for r in answer.json()["results"]
                                          if r["status"] in ("accepted", "duplicate")}
                    n += 1
        client.close()

    def count(self) -> int:
        with self.lock:
            return len(self.acknowledged)


def test_each_killed_child_is_restarted_and_nothing_acknowledged_is_lost(tmp_path) -> None:
    process, up = start_cdp_up(tmp_path / "cdp", {"OTEL_TRACES_EXPORTER": "none"})
    stream = BatchStream(up["gateway_url"], up["api_key"])
    try:
        for name in ("identity", "profile", "attribution", "gateway"):
            stream.running.set()
            before = stream.count()
            assert wait_until(lambda b=before: stream.count() >= b + 10, timeout=60)
            if name == "gateway":  # no request in flight: a killed one has no answer to give
                stream.running.clear()
                assert stream.idle.wait(60)
            old = child_pid(process.pid, name)
            assert old is not None
            os.kill(old, signal.SIGKILL)
            assert wait_until(lambda n=name, o=old: child_pid(process.pid, n) not in (None, o),
                              timeout=30), f"{name} was not restarted"
            stream.running.set()
            after = stream.count()
            assert wait_until(lambda a=after: stream.count() >= a + 10, timeout=60), \
                f"no batch stored after {name} restarted: {stream.statuses}"
    finally:
        stream.done.set()
        stream.thread.join(timeout=60)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    assert code == 0
    assert set(stream.statuses) <= {"200", "503 with Retry-After"}, stream.statuses
    assert "restarting" in process.stderr.read()
    # Nothing acknowledged was lost: a new system on the same data holds every event.
    process, up = start_cdp_up(tmp_path / "cdp", {"OTEL_TRACES_EXPORTER": "none"})
    try:
        auth = {"Authorization": f"Bearer {up['api_key']}"}
        with httpx.Client(base_url=up["gateway_url"], headers=auth, timeout=60) as client:
            profile = client.get("/v1/profiles:lookup",
                                 params={"type": "loyalty_id", "value": CARD}).json()
            stored, token = set(), ""
            while True:
                page = client.get(f"/v1/profiles/{profile['customer_id']}/events",
                                  params={"page_size": 1000, "page_token": token}).json()
                stored |= {e["message_id"] for e in page["events"]}
                token = page["next_page_token"]
                if not token:
                    break
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert stream.acknowledged <= stored, len(stream.acknowledged - stored)
    # Data files and logs are the owner's alone.
    for path in (tmp_path / "cdp").rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_supervisor_gives_up_on_a_child_that_keeps_failing(tmp_path, monkeypatch) -> None:
    """Restarts are bounded: after MAX_RESTARTS within the window the supervisor stops
    everything and `cdp up` exits non-zero (run_until_signal returns 1)."""
    monkeypatch.setattr(supervisor, "FIRST_BACKOFF", 0.01)
    monkeypatch.setattr(supervisor, "MAX_BACKOFF", 0.02)
    stack = supervisor.Stack(data_dir=tmp_path)
    stack._spawn("nonexistent-service", [], "")  # exits at once with a usage error
    reports: list[str] = []
    code = supervisor.run_until_signal(stack, lambda: False, report=reports.append)
    assert code == 1
    assert sum("restarted" in r for r in reports) == supervisor.MAX_RESTARTS
    assert "giving up" in reports[-1]
    assert stack.children == []

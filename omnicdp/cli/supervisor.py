"""`cdp up`: the whole system as separate processes on loopback.

Starts identity, profile, attribution and the gateway together, each on a free port, waits
until each is healthy, and stops them all on Ctrl-C or SIGTERM. Children are
asked to die with the supervisor (PR_SET_PDEATHSIG), so no orphan survives even a SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omnicdp.services.gateway.keys import SCOPES, digest

SERVICES = ("identity", "profile", "attribution")
START_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the supervisor dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class StartupError(RuntimeError):
    pass


def ensure_api_keys(data_dir: Path) -> tuple[Path, str]:
    """A local keys file with one all-scopes key, made once and reused by later runs."""
    key_file = data_dir / "local-api-key"
    keys_path = data_dir / "api-keys.yaml"
    if not key_file.exists() or not keys_path.exists():
        key = "cdp_local_" + secrets.token_urlsafe(24)
        data_dir.mkdir(parents=True, exist_ok=True)
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        keys_path.write_text(yaml.safe_dump({"keys": [{
            "name": "local", "sha256": digest(key), "scopes": sorted(SCOPES),
            "rate_limit_per_minute": 600_000}]}))
    return keys_path, key_file.read_text().strip()


@dataclass
class Child:
    name: str
    address: str
    process: subprocess.Popen
    log_path: Path


@dataclass
class Stack:
    """The running system; use as a context manager or call start()/stop()."""

    data_dir: Path
    http_port: int = 0
    api_keys: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)
    api_key: str | None = None
    gateway_url: str = ""

    def _spawn(self, name: str, args: list[str], address: str) -> Child:
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        env = {**os.environ, **self.env, "OTEL_SERVICE_NAME": f"cdp-{name}"}
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "omnicdp.cli", "serve", name, *args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                preexec_fn=_die_with_parent)  # noqa: PLW1509 (no threads yet at spawn)
        child = Child(name, address, process, log_path)
        self.children.append(child)
        return child

    def _wait_grpc(self, child: Child, deadline: float) -> None:
        with grpc.insecure_channel(child.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                self._check_alive(child)
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise StartupError(f"{child.name} did not become healthy; see {child.log_path}")

    def _wait_http(self, child: Child, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive(child)
            try:
                with urllib.request.urlopen(f"{self.gateway_url}/readyz", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise StartupError(f"gateway did not become ready; see {child.log_path}")

    @staticmethod
    def _check_alive(child: Child) -> None:
        if child.process.poll() is not None:
            tail = child.log_path.read_text(errors="replace").splitlines()[-15:]
            raise StartupError(f"{child.name} exited with code {child.process.returncode}:\n"
                               + "\n".join(tail))

    def start(self, progress=lambda message: None) -> Stack:
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.api_keys is None:
            self.api_keys, self.api_key = ensure_api_keys(self.data_dir)
        deadline = time.monotonic() + START_TIMEOUT
        addresses = {name: f"127.0.0.1:{free_port()}" for name in SERVICES}
        common = ["--data-dir", str(self.data_dir)]
        try:
            # Channels connect lazily, so all four can start at once; each is then awaited.
            dependencies = {
                "identity": [],
                "profile": ["--identity-addr", addresses["identity"]],
                "attribution": ["--profile-addr", addresses["profile"]],
            }
            services = []
            for name in SERVICES:
                progress(f"starting {name}")
                extra = common if name != "attribution" else []
                services.append(self._spawn(name, ["--address", addresses[name], *extra,
                                                   *dependencies[name]], addresses[name]))
            port = self.http_port or free_port()
            self.gateway_url = f"http://127.0.0.1:{port}"
            progress("starting gateway")
            gateway = self._spawn("gateway", [
                "--http-port", str(port), "--api-keys", str(self.api_keys),
                "--profile-addr", addresses["profile"],
                "--identity-addr", addresses["identity"],
                "--attribution-addr", addresses["attribution"]], self.gateway_url)
            for child in services:
                self._wait_grpc(child, deadline)
            self._wait_http(gateway, deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM every child, newest first, then SIGKILL what outlives the timeout."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        self.children.clear()

    def describe(self) -> dict:
        return {"gateway_url": self.gateway_url, "data_dir": str(self.data_dir),
                "api_keys_file": str(self.api_keys),
                "services": {c.name: {"address": c.address, "pid": c.process.pid,
                                      "log": str(c.log_path)} for c in self.children}}

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def catch_stop_signals() -> Callable[[], bool]:
    """From now on SIGTERM and SIGINT only ask to stop; call this before starting anything,
    so that a signal arriving during start-up is not lost."""
    received: list[int] = []

    def handle(signum: int, _frame: object) -> None:
        received.append(signum)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return lambda: bool(received)


def run_until_signal(stack: Stack, stop_requested: Callable[[], bool]) -> None:
    """Block until a stop is requested or a child dies, then stop everything."""
    try:
        while not stop_requested():
            dead = [c for c in stack.children if c.process.poll() is not None]
            if dead:
                print(f"{dead[0].name} exited with code {dead[0].process.returncode}; "
                      f"stopping (log: {dead[0].log_path})", file=sys.stderr)
                break
            time.sleep(0.2)
    finally:
        stack.stop()

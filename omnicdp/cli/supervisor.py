"""`cdp up`: the whole system as separate processes on loopback.

Starts identity, profile, attribution and the gateway together, each on a free port, waits
until each is healthy, and stops them all on Ctrl-C or SIGTERM: the gateway first, so it
drains its requests while the services still answer, then the services, callers before
callees. Children are asked to die with the supervisor (PR_SET_PDEATHSIG), so no orphan
survives even a SIGKILL.

A child that exits on its own is restarted on the same address, after a backoff that
doubles from 0.5 s to 8 s, as systemd's ``Restart=on-failure`` does; more than
``MAX_RESTARTS`` restarts of one child within ``RESTART_WINDOW`` seconds and the supervisor
gives up, stops everything and exits non-zero. The supervisor holds the gateway's listening
socket and hands it to each gateway it starts, so while a gateway restarts partners'
connections wait in the backlog instead of being refused.
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

from omnicdp.core.digests import sha256_hex
from omnicdp.core.tracking import tracking_uri
from omnicdp.services.gateway.keys import SCOPES

SERVICES = ("identity", "profile", "attribution")
START_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 8.0


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
            "name": "local", "sha256": sha256_hex(key), "scopes": sorted(SCOPES),
            "rate_limit_per_minute": 600_000}]}))
    return keys_path, key_file.read_text().strip()


@dataclass
class Child:
    name: str
    address: str
    process: subprocess.Popen
    log_path: Path
    args: list[str] = field(default_factory=list)
    restarts: list[float] = field(default_factory=list)  # monotonic times of restarts
    restart_at: float | None = None  # when a dead child is due to start again


class GaveUp(RuntimeError):
    pass


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
    http_socket: socket.socket | None = None

    def _popen(self, name: str, args: list[str]) -> tuple[subprocess.Popen, Path]:
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        env = {**os.environ, **self.env, "OTEL_SERVICE_NAME": f"cdp-{name}"}
        passed = (self.http_socket.fileno(),) if self.http_socket is not None else ()
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "omnicdp.cli", "serve", name, *args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                pass_fds=passed if name == "gateway" else (),
                preexec_fn=_die_with_parent)  # noqa: PLW1509 (no threads yet at spawn)
        return process, log_path

    def _spawn(self, name: str, args: list[str], address: str) -> Child:
        process, log_path = self._popen(name, args)
        child = Child(name, address, process, log_path, list(args))
        self.children.append(child)
        return child

    def heal(self, report: Callable[[str], None]) -> None:
        """Restart every child that exited on its own, once its backoff has passed; raise
        :class:`GaveUp` when one restarts too often."""
        now = time.monotonic()
        for child in self.children:
            if child.process.poll() is None:
                continue
            if child.restart_at is None:
                child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW]
                if len(child.restarts) >= MAX_RESTARTS:
                    raise GaveUp(f"{child.name} exited with code {child.process.returncode} "
                                 f"after {MAX_RESTARTS} restarts in {RESTART_WINDOW:g} s; "
                                 f"giving up (log: {child.log_path})")
                delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** len(child.restarts))
                child.restart_at = now + delay
                report(f"{child.name} exited with code {child.process.returncode}; restarting "
                       f"in {delay:g} s (log: {child.log_path})")
            elif now >= child.restart_at:
                child.process, _ = self._popen(child.name, child.args)
                child.restarts.append(now)
                child.restart_at = None
                report(f"{child.name} restarted (pid {child.process.pid})")

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
        self.addresses = addresses
        common = ["--data-dir", str(self.data_dir)]
        try:
            # Channels connect lazily, so all four can start at once; each is then awaited.
            dependencies = {
                "identity": [],
                "profile": ["--identity-addr", addresses["identity"]],
                "attribution": ["--profile-addr", addresses["profile"],
                                "--tracking-uri", tracking_uri(self.data_dir)],
            }
            services = []
            for name in SERVICES:
                progress(f"starting {name}")
                extra = common if name != "attribution" else []
                services.append(self._spawn(name, ["--address", addresses[name], *extra,
                                                   *dependencies[name]], addresses[name]))
            self.http_socket = socket.create_server(("127.0.0.1", self.http_port),
                                                    backlog=1024)
            port = self.http_socket.getsockname()[1]
            self.gateway_url = f"http://127.0.0.1:{port}"
            progress("starting gateway")
            gateway = self._spawn("gateway", [
                "--http-port", str(port), "--http-fd", str(self.http_socket.fileno()),
                "--api-keys", str(self.api_keys),
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
        """Stop the children one after another, newest first: the gateway drains while the
        services still answer, then each service after the ones that call it. Each gets
        SIGTERM (its graceful shutdown), then SIGKILL if it outlives its share of time."""
        if self.http_socket is not None:  # the gateway keeps its copy while it drains
            self.http_socket.close()
            self.http_socket = None
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
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


def _to_stderr(message: str) -> None:
    print(f"cdp up: {message}", file=sys.stderr, flush=True)


def run_until_signal(stack: Stack, stop_requested: Callable[[], bool],
                     report: Callable[[str], None] = _to_stderr) -> int:
    """Keep the children running (restarting those that exit) until a stop is requested,
    then stop everything. 0 after a requested stop, 1 when a child kept failing."""
    try:
        while not stop_requested():
            stack.heal(report)
            time.sleep(0.1)
        return 0
    except GaveUp as error:
        report(str(error))
        return 1
    finally:
        stack.stop()

"""What the gateway's tests share: API keys, an event to vary, the auth header. The
``client`` fixture (conftest.py) serves the gateway in front of the real services."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import schemathesis
import yaml
from fastapi.testclient import TestClient

from omnicdp.services.gateway.keys import SCOPES

WRITER, READER, SLOW = "writer-secret", "reader-secret", "slow-secret"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ev(message_id: str, **overrides) -> dict:
    body = {"message_id": message_id, "type": "track", "event": "Order Completed",
            "channel": "web", "timestamp": "2026-03-01T10:00:00Z",
            "identifiers": {"email": "maria@example.ru"}, "properties": {"revenue": 990.0}}
    body.update(overrides)
    return body


def assert_conforms(document: dict, method: str, path: str, response) -> None:
    """``response`` is what the document declares for this operation: status, media type,
    required headers and body."""
    declared = document["paths"][path][method.lower()]["responses"]
    status = str(response.status_code)
    assert status in declared, f"{method} {path} answered {status}, declared {list(declared)}"
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type in declared[status]["content"]
    for name, header in declared[status].get("headers", {}).items():
        if header.get("required"):
            assert name.lower() in {h.lower() for h in response.headers}, name
    schema = schemathesis.openapi.from_dict(document)
    schema[path][method.upper()].validate_response(response)


def serve_gateway(services, tmp_path, *extra_keys: dict, deadline: float = 10,
                  evaluate_deadline: float = 120) -> Iterator[TestClient]:
    """The gateway's app in front of the test's services, with ``write_keys``'s keys and
    ``extra_keys`` (entries of the keys file)."""
    from omnicdp.services.gateway.keys import ApiKeys
    from omnicdp.services.gateway.routes import Backends, create_app

    backends = Backends.connect(services.address(services.profile),
                                services.address(services.identity),
                                services.address(services.attribution), deadline,
                                evaluate_deadline)
    keys_file = write_keys(tmp_path / "keys.yaml")
    keys = yaml.safe_load(keys_file.read_text())
    keys["keys"] += list(extra_keys)
    keys_file.write_text(yaml.safe_dump(keys))
    try:
        with TestClient(create_app(ApiKeys.load(keys_file), backends,
                                   max_body_bytes=64_000)) as client:
            yield client
    finally:
        backends.close()


def write_keys(path, **rate_limits: int):
    """A keys file: ``writer`` and ``reader`` (all their scopes) and one key per name in
    ``rate_limits`` (every scope, that many requests a minute); the key is the name."""
    keys = [{"name": "writer", "key": WRITER, "scopes": sorted(SCOPES)},
            {"name": "reader", "key": READER, "scopes": ["profiles:read"]}]
    keys += [{"name": name, "key": name, "scopes": sorted(SCOPES),
              "rate_limit_per_minute": limit} for name, limit in rate_limits.items()]
    path.write_text(yaml.safe_dump({"keys": keys}))
    return path


class GatewayProcess:
    """``cdp serve gateway`` as a process of its own, in front of the test's services."""

    def __init__(self, services, keys_file, *flags: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "omnicdp.cli", "serve", "gateway",
             "--http-port", str(self.port), "--api-keys", str(keys_file),
             "--profile-addr", services.address(services.profile),
             "--identity-addr", services.address(services.identity),
             "--attribution-addr", services.address(services.attribution), *flags],
            env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
        self._await_healthy()

    def _await_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "gateway exited"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("gateway did not become healthy")

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.process.pid}/status") as status:
            line = next(x for x in status if x.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)

"""Rate limits shared by two gateway processes through the real local Redis (each test
with a key prefix of its own), and per process without it."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.gateway_kit import GatewayProcess, auth, write_keys

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def two_gateways(services, tmp_path: Path, request):
    keys = write_keys(tmp_path / "keys.yaml", shared=10)
    flags = (["--redis-url", REDIS_URL, "--rate-limit-prefix", f"test-{uuid.uuid4().hex}"]
             if request.param == "redis" else [])
    gateways = [GatewayProcess(services, keys, *flags) for _ in range(2)]
    yield gateways
    for gateway in gateways:
        gateway.stop()


def statuses(gateways: list[GatewayProcess], requests_each: int) -> list[httpx.Response]:
    answers = []
    clients = [httpx.Client(base_url=g.url) for g in gateways]
    for _ in range(requests_each):
        for client in clients:
            answers.append(client.get("/v1/profiles/cus_x", headers=auth("shared")))
    for client in clients:
        client.close()
    return answers


@pytest.mark.parametrize("two_gateways", ["redis"], indirect=True)
def test_limit_holds_across_two_gateways_sharing_redis(two_gateways) -> None:
    answers = statuses(two_gateways, 8)
    allowed = [a for a in answers if a.status_code == 404]
    limited = [a for a in answers if a.status_code == 429]
    assert (len(allowed), len(limited)) == (10, 6)
    assert [a.headers["RateLimit-Remaining"] for a in allowed] == [str(n) for n in range(9, -1, -1)]
    for answer in limited:
        assert answer.json()["code"] == "RATE_LIMITED"
        assert 1 <= int(answer.headers["Retry-After"]) <= 60
        assert answer.headers["RateLimit-Limit"] == "10"
        assert answer.headers["RateLimit-Remaining"] == "0"


@pytest.mark.parametrize("two_gateways", ["memory"], indirect=True)
def test_without_redis_each_gateway_counts_alone(two_gateways) -> None:
    answers = statuses(two_gateways, 8)
    assert sum(a.status_code == 404 for a in answers) == 16


def test_gateway_counts_in_memory_when_redis_does_not_answer(services, tmp_path: Path) -> None:
    keys = write_keys(tmp_path / "keys.yaml", shared=3)
    gateway = GatewayProcess(services, keys, "--redis-url", "redis://127.0.0.1:9/0")
    try:
        answers = statuses([gateway], 5)
    finally:
        gateway.stop()
    assert [a.status_code for a in answers] == [404, 404, 404, 429, 429]

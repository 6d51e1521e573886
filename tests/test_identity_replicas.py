"""Several identity replicas on one PostgreSQL database stay one identity graph.

Two identity server processes share a database and resolve one stream of batches, handed to
them alternately and sent at once from two clients. The result must be serializable: the
clusters of records equal those of one process resolving the same batches one after another
in the order they committed (each response's ``change_seq``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omnicdp.cli.supervisor import free_port
from omnicdp.services.identity.client import IdentityClient, IdentityRecord, Resolution
from omnicdp.services.identity.linkage.model import LinkageModel
from omnicdp.services.identity.matching import Matcher
from omnicdp.services.identity.resolver import Resolver
from omnicdp.services.identity.store.duckdb import DuckDBIdentityStore
from omnicdp.synth import generate_retailer
from tests.pg import temporary_database

BATCH = 25


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> list[list[IdentityRecord]]:
    out = tmp_path_factory.mktemp("retailer")
    generate_retailer(40, 11, out)
    records = []
    for line in (out / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        records.append(IdentityRecord(
            event["message_id"], event.get("identifiers") or {},
            datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")),
            source=event.get("source") or event["channel"], traits=event.get("traits") or {}))
    return [records[i:i + BATCH] for i in range(0, len(records), BATCH)]


def _serve(database_url: str, tmp_path: Path) -> tuple[subprocess.Popen, str]:
    address = f"127.0.0.1:{free_port()}"
    tmp_path.mkdir(parents=True, exist_ok=True)
    log_path = tmp_path / "identity.log"
    log = open(log_path, "wb")  # noqa: SIM115 (the child writes to it)
    process = subprocess.Popen(
        [sys.executable, "-m", "omnicdp.cli", "serve", "identity", "--address", address,
         "--data-dir", str(tmp_path)],
        env={**os.environ, "CDP_DATABASE_URL": database_url, "OTEL_TRACES_EXPORTER": "none"},
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    with grpc.insecure_channel(address) as channel:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return process, address
            except grpc.RpcError:
                time.sleep(0.1)
    raise AssertionError("identity replica did not start")


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[str]]:
    with temporary_database() as url:
        started = [_serve(url, tmp_path / "a"), _serve(url, tmp_path / "b")]
        try:
            yield [address for _, address in started]
        finally:
            for process, _ in started:
                process.terminate()
            for process, _ in started:
                process.wait(30)


def clusters(record_ids: list[str], customer_of: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for record_id in record_ids:
        groups.setdefault(customer_of[record_id], set()).add(record_id)
    return {frozenset(group) for group in groups.values()}


def test_two_replicas_resolve_as_one_process_in_commit_order(replicas, batches) -> None:
    clients = [IdentityClient(address) for address in replicas]
    committed: list[tuple[int, int, list[Resolution]]] = []  # (change_seq, batch, results)
    failures: list[BaseException] = []
    start = threading.Barrier(2)

    def send(replica: int) -> None:
        start.wait()
        for number in range(replica, len(batches), 2):
            try:
                batch = clients[replica].resolve_batch(batches[number])
            except BaseException as error:  # reported below
                failures.append(error)
                return
            committed.append((batch.change_seq, number, batch.resolutions))

    threads = [threading.Thread(target=send, args=(r,)) for r in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    try:
        assert failures == [] and len(committed) == len(batches)
        final = {}
        for _, _, resolutions in committed:
            for r in resolutions:
                if r.customer_id:
                    final[r.record_id] = clients[0].get_customer(r.customer_id).customer_id
    finally:
        for client in clients:
            client.close()
    assert len(set(final.values())) > 10  # many customers, not one blob

    # One process, the same batches one after another in the order they committed.
    # The replicas serve the packaged model (no champion in their registry): so does it.
    with DuckDBIdentityStore(":memory:") as store:
        resolver = Resolver(store, matcher=Matcher(LinkageModel.load_default()))
        serial = {}
        for _, number, _ in sorted(committed):
            for r in resolver.resolve(batches[number]):
                if r.customer_id:
                    serial[r.record_id] = r.customer_id
        serial = {record: store.resolve_redirects(c) for record, c in serial.items()}
    assert set(final) == set(serial)
    assert clusters(list(final), final) == clusters(list(serial), serial)

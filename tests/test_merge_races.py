"""Merges race ingestion and nothing acknowledged is lost or doubled (issue 6's scenario).

For each person, three customers exist (one event with an e-mail, one with a device id, one
with an anonymous id). Then two single-event batches arrive at the same instant from
different clients: A = {anonymous_id, device_id} and B = {email, device_id}; between them
they merge all three customers. Every acknowledged event must then be in its customer's
journey and its golden record (``event_count``, counters, identifiers) exactly once, and
every identifier must resolve to that one customer, before and after a restart, on both
backends.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omnicdp.core.errors import NotFound
from omnicdp.services.profile.client import EventIn, ProfileClient
from tests.conftest import Services, running_services
from tests.pg import temporary_database

PERSONS = 24
CLIENTS = 6
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def identifiers(i: int) -> dict[str, dict[str, str]]:
    return {"email": {"email": f"person{i}@mail.ru"}, "device": {"device_id": f"dev-{i}"},
            "anonymous": {"anonymous_id": f"anon-{i}"},
            "A": {"anonymous_id": f"anon-{i}", "device_id": f"dev-{i}"},
            "B": {"email": f"person{i}@mail.ru", "device_id": f"dev-{i}"}}


def event(message_id: str, ids: dict[str, str], minutes: int) -> EventIn:
    return EventIn(message_id=message_id, type="track", channel="web", event="Page Viewed",
                   timestamp=T0 + timedelta(minutes=minutes), identifiers=ids)


@contextlib.contextmanager
def stack(tmp_path: Path, database_url: str) -> Iterator[Services]:
    running = running_services(tmp_path, database_url)
    try:
        yield next(running)
    finally:
        with contextlib.suppress(StopIteration):
            next(running)


@pytest.fixture(params=["duckdb", "postgres"])
def database_url(request) -> Iterator[str]:
    if request.param == "duckdb":
        yield ""
    else:
        with temporary_database() as url:
            yield url


def test_racing_merges_lose_no_acknowledged_event(tmp_path: Path, database_url: str) -> None:
    acknowledged: dict[str, str] = {}  # message_id -> customer_id answered
    with stack(tmp_path, database_url) as services:
        clients = [ProfileClient(services.address(services.profile)) for _ in range(CLIENTS)]
        try:
            for i in range(PERSONS):
                for n, kind in enumerate(("email", "device", "anonymous")):
                    [result] = clients[0].ingest([event(f"{kind}-{i}", identifiers(i)[kind], n)])
                    assert result.status == "accepted"
                    acknowledged[result.message_id] = result.customer_id
            start = threading.Barrier(2 * PERSONS)
            failures: list[BaseException] = []

            def send(i: int, kind: str, client: ProfileClient) -> None:
                start.wait()
                try:
                    [result] = client.ingest([event(f"{kind}-{i}", identifiers(i)[kind], 10)])
                    assert result.status == "accepted", result
                    acknowledged[result.message_id] = result.customer_id
                except BaseException as error:  # reported below
                    failures.append(error)

            threads = [threading.Thread(target=send, args=(i, kind, clients[(2 * i + k) % CLIENTS]))
                       for i in range(PERSONS) for k, kind in enumerate(("A", "B"))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert failures == []
            first = check_every_person(clients[0], acknowledged)
        finally:
            for client in clients:
                client.close()

    with stack(tmp_path, database_url) as services:  # a restart on the same data
        client = ProfileClient(services.address(services.profile))
        try:
            assert check_every_person(client, acknowledged) == first
        finally:
            client.close()


def check_every_person(client: ProfileClient, acknowledged: dict[str, str]) -> dict[int, str]:
    """Each person is one customer holding each of their five events exactly once."""
    customers = {}
    for i in range(PERSONS):
        ids = identifiers(i)
        owners = {client.lookup_profile(t, v).customer_id
                  for kind in ("email", "device", "anonymous") for t, v in ids[kind].items()}
        assert len(owners) == 1, (i, owners)
        [customer_id] = owners
        mine = {f"{kind}-{i}" for kind in ("email", "device", "anonymous", "A", "B")}
        for message_id in mine:  # every id ever answered resolves to the survivor
            assert client.get_profile(acknowledged[message_id]).customer_id == customer_id
        journey: list[str] = []
        token = ""
        while True:
            page, token = client.journey(customer_id, 100, token)
            journey += [e.message_id for e in page]
            if not token:
                break
        assert sorted(journey) == sorted(mine), (i, journey)
        # The golden record, kept at write time while merges raced ingestion, counts the
        # same: each acknowledged event once, every identifier of the three customers.
        profile = client.get_profile(customer_id)
        assert profile.event_count == len(mine)
        assert profile.counters.events_by_channel == {"web": len(mine)}
        assert {t for t, _ in profile.identifiers} == {"email", "device_id", "anonymous_id"}
        customers[i] = customer_id
    with pytest.raises(NotFound):
        client.lookup_profile("email", "nobody@mail.ru")
    return customers

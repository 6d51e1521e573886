"""Who sent an event: the name of the API key is recorded on every event it sends (never
taken from the body) and returned in the journey, on both profile stores, including stores
created before the column existed (migration 2). A key limited to some sources has an
event of any other source rejected alone, with field ``source`` named."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from omnicdp.core.sql import DuckDBDatabase, PostgresDatabase, migrate, naive_utc
from omnicdp.services.gateway.keys import ApiKeys, KeyFileError
from omnicdp.services.gateway.routes import Backends, create_app
from omnicdp.services.profile.store import duckdb as duckdb_store
from omnicdp.services.profile.store import open_store
from omnicdp.services.profile.store import postgres as postgres_store
from tests.gateway_kit import READER, WRITER, auth, ev
from tests.pg import temporary_database
from tests.test_profile_store import T0, Log, stored

POS = "pos-secret"


@pytest.fixture
def gateway(services, tmp_path: Path) -> Iterator[TestClient]:
    """The gateway in front of the real services with three keys: ``pos-moscow`` limited to
    the sources ``pos-moscow-1`` and ``pos-moscow-2``, ``ecommerce`` (any source) and a
    reader."""
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(yaml.safe_dump({"keys": [
        {"name": "pos-moscow", "key": POS, "scopes": ["events:write"],
         "sources": ["pos-moscow-1", "pos-moscow-2"]},
        {"name": "ecommerce", "key": WRITER, "scopes": ["events:write", "profiles:read"]},
        {"name": "analyst", "key": READER, "scopes": ["profiles:read"]},
    ]}))
    backends = Backends.connect(services.address(services.profile),
                                services.address(services.identity),
                                services.address(services.attribution), deadline=10)
    with TestClient(create_app(ApiKeys.load(keys_file), backends)) as client:
        yield client
    backends.close()


def journey(gateway: TestClient, customer_id: str) -> list[dict]:
    response = gateway.get(f"/v1/profiles/{customer_id}/events", headers=auth(READER))
    assert response.status_code == 200
    return response.json()["events"]


@pytest.mark.parametrize("services", ["duckdb", "postgres"], indirect=True)
def test_each_event_records_the_key_that_sent_it_not_what_the_body_claims(gateway) -> None:
    by_pos = gateway.post("/v1/events", headers=auth(POS), json={"events": [
        ev("till-1", source="pos-moscow-1", sent_by="ecommerce")]})
    by_shop = gateway.post("/v1/events", headers=auth(WRITER), json={"events": [
        ev("web-1", source="web-shop", timestamp="2026-03-01T11:00:00Z")]})
    customer_id = by_pos.json()["results"][0]["customer_id"]
    assert by_shop.json()["results"][0]["customer_id"] == customer_id
    events = journey(gateway, customer_id)
    assert [(e["message_id"], e["sent_by"]) for e in events] == [
        ("till-1", "pos-moscow"), ("web-1", "ecommerce")]


def test_a_key_limited_to_sources_has_other_sources_rejected_alone(gateway) -> None:
    batch = [ev("till-1", source="pos-moscow-1"), ev("shop-1", source="web-shop"),
             ev("nosource-1"),
             ev("till-2", source="pos-moscow-2", timestamp="2026-03-02T10:00:00Z")]
    response = gateway.post("/v1/events", headers=auth(POS), json={"events": batch})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected", "rejected", "accepted"]
    for rejected in (results[1], results[2]):
        assert [v["field"] for v in rejected["violations"]] == ["source"]
        assert "pos-moscow-1, pos-moscow-2" in rejected["violations"][0]["description"]
    assert [r["message_id"] for r in results] == ["till-1", "shop-1", "nosource-1", "till-2"]
    stored_ids = [e["message_id"] for e in journey(gateway, results[0]["customer_id"])]
    assert stored_ids == ["till-1", "till-2"]
    # A key without a list writes any source, or none.
    unlimited = gateway.post("/v1/events", headers=auth(WRITER), json={"events": [
        ev("shop-2", source="web-shop"), ev("nosource-2")]})
    assert [r["status"] for r in unlimited.json()["results"]] == ["accepted", "accepted"]


@pytest.mark.parametrize("sources", ["[]", "pos-1", "[pos-1, '']", "[3]"])
def test_a_keys_file_with_a_bad_sources_list_is_refused(tmp_path: Path, sources: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys: [{{name: a, key: k, scopes: [events:write], sources: {sources}}}]")
    with pytest.raises(KeyFileError, match="sources must be a non-empty list"):
        ApiKeys.load(path)


def _version_1_store(url: str) -> None:
    """A profile store as migration 1 left it, with one event stored then."""
    event = ("m-old", "rec-c1", "c1", "track", "Page Viewed", "web", "test", naive_utc(T0),
             naive_utc(T0), '{"email": "x@example.ru"}', "{}", "{}")
    insert = ("INSERT INTO events (message_id, record_id, customer_id, type, event, channel, "
              "source, ts, received_at, identifiers, traits, properties) VALUES "
              f"({', '.join(['%s'] * len(event))})")
    if url.startswith("duckdb://"):
        db = DuckDBDatabase(url.removeprefix("duckdb:///"), "profile")
        with db.session() as session:
            migrate(session, duckdb_store.MIGRATIONS[:1], "profile")
            session.execute(insert, event)
    else:
        db = PostgresDatabase(url, postgres_store.SCHEMA, "profile")
        db.setup(postgres_store.SCHEMA, 1, postgres_store.MIGRATIONS[:1])
        with db.session() as session:
            session.execute(insert, event)
    db.close()


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_a_store_from_before_sent_by_is_migrated_and_keeps_its_events(backend: str,
                                                                     tmp_path: Path) -> None:
    if backend == "duckdb":
        _check_migration(f"duckdb:///{tmp_path / 'profile.duckdb'}", tmp_path)
    else:
        with temporary_database() as url:
            _check_migration(url, tmp_path)


def _check_migration(url: str, tmp_path: Path) -> None:
    _version_1_store(url)
    store = open_store(url, tmp_path)
    try:
        store.apply_changes([Log().created("c1")])
        store.append([replace(stored("m-new", "c1"), sent_by="pos-moscow")], [])
        events = store.list_customer_events("c1", None, 10)
        assert [(e.message_id, e.sent_by) for e in events] == [("m-old", ""),
                                                                 ("m-new", "pos-moscow")]
    finally:
        store.close()
    again = open_store(url, tmp_path)  # reopening applies nothing twice
    try:
        assert [e.sent_by for e in again.list_events(0, 10)] == ["", "pos-moscow"]
    finally:
        again.close()

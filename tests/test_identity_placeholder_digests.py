"""The placeholder guard keeps no personal data: on both backends, the names seen with an
e-mail or phone and the identifiers found to be placeholders are stored as SHA-256 digests
(identity migration 7 converts a store that kept them raw), they still count and still stop
linking, and a 64-bit lookup key two values share lends neither the other's names."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omnicdp.core.digests import sha256_hex
from omnicdp.core.sql import DuckDBDatabase, PostgresDatabase, migrate, naive_utc
from omnicdp.services.identity.model import IdentityRecord
from omnicdp.services.identity.records import normalize_features
from omnicdp.services.identity.resolver import Resolver
from omnicdp.services.identity.store import postgres as postgres_store
from omnicdp.services.identity.store.duckdb import EMBEDDED_MIGRATIONS, DuckDBIdentityStore
from omnicdp.services.identity.store.graph import key_hash, name_digest
from omnicdp.services.identity.store.postgres import PostgresIdentityStore
from omnicdp.services.identity.store.sql import MIGRATIONS, SqlIdentityStore
from tests.pg import temporary_database

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FAMILY, KASSA = ("email", "family@mail.ru"), ("email", "kassa@shop.ru")


@pytest.fixture(params=["duckdb", "postgres"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def pg_url(backend: str) -> Iterator[str]:
    """A PostgreSQL database of the test's own (none for DuckDB)."""
    if backend == "postgres":
        with temporary_database() as url:
            yield url
    else:
        yield ""


@contextmanager
def opened(backend: str, tmp_path: Path, pg_url: str) -> Iterator[SqlIdentityStore]:
    """The test's store (a DuckDB file, or its PostgreSQL database), opened again each time."""
    store: SqlIdentityStore = (DuckDBIdentityStore(tmp_path / "identity.duckdb")
                               if backend == "duckdb" else PostgresIdentityStore(pg_url))
    with store:
        yield store


@pytest.fixture
def store(backend: str, tmp_path: Path, pg_url: str) -> Iterator[SqlIdentityStore]:
    with opened(backend, tmp_path, pg_url) as store:
        yield store


def record(record_id: str, minutes: int, first_name: str, **identifiers: str) -> IdentityRecord:
    return IdentityRecord(record_id, identifiers, T0 + timedelta(minutes=minutes),
                          traits={"first_name": first_name})


def guard_rows(store: SqlIdentityStore) -> str:
    """Every row of the placeholder guard's tables, as text."""
    return repr([store._run(lambda s, t=table: s.fetch(f"SELECT * FROM {t}"))
                 for table in ("identifier_names", "placeholders")])


def seen(store: SqlIdentityStore, key: tuple[str, str]) -> tuple[int, bool]:
    """(first names counted, placeholder) for an identifier, as a batch reads them."""
    with store.transaction() as graph:
        graph.prefetch([key])
        return graph.names_seen(key), graph.is_placeholder(key)


def linked(store: SqlIdentityStore, resolver: Resolver, value: str, names: list[str]) -> bool:
    """Whether records carrying ``value`` with their own loyalty cards become one customer."""
    resolutions = resolver.resolve([record(f"{value}-{i}", 100 + i, name, email=value,
                                           loyalty_id=f"CARD-{value}-{i}")
                                    for i, name in enumerate(names)])
    return len({r.customer_id for r in resolutions}) == 1


def test_names_and_placeholders_are_kept_as_digests(pg_url: str, backend: str,
                                                     tmp_path: Path) -> None:
    with opened(backend, tmp_path, pg_url) as store:
        resolver = Resolver(store, placeholder_threshold=3)
        resolver.resolve([record(f"k{i}", i, name, email=KASSA[1], loyalty_id=f"L-{i}")
                          for i, name in enumerate(["Anna", "Boris", "Vera"])])
        resolver.resolve([record("f1", 5, "Anna", email=FAMILY[1], phone="+79161112233")])
        assert seen(store, KASSA) == (3, True)
        assert seen(store, FAMILY) == (1, False)
        rows = guard_rows(store).lower()
        for personal in ("kassa", "family", "anna", "boris", "vera", "79161112233"):
            assert personal not in rows
        anna = normalize_features({"first_name": "Anna"})["first_name"]
        assert sha256_hex(KASSA[1]) in rows and name_digest("first_name", anna) in rows
        assert not linked(store, resolver, KASSA[1], ["Gleb", "Dina"])  # links no one
        assert linked(store, resolver, FAMILY[1], ["Anna", "Boris"])  # two names: still links


def _version_6_store(backend: str, path: Path, url: str) -> None:
    """An identity store as migration 6 left it: the guard's rows raw."""
    names = [(key_hash(*FAMILY), *FAMILY, "first_name", name) for name in ("anna", "boris")]
    names += [(key_hash(*KASSA), *KASSA, kind, name) for kind, name in (
        ("first_name", "anna"), ("first_name", "boris"), ("first_name", "vera"),
        ("date_of_birth", "1990-01-01"))]
    placeholders = [(key_hash(*KASSA), *KASSA, naive_utc(T0), "email seen with 3 different "
                     "first names")]

    def fill(session) -> None:
        session.insert("identifier_names", ("key", "id_type", "value", "kind", "name"), names)
        session.insert("placeholders", ("key", "id_type", "value", "detected_at", "reason"),
                       placeholders)
    if backend == "duckdb":
        db = DuckDBDatabase(path, "identity")
        with db.session() as session:
            migrate(session, MIGRATIONS + EMBEDDED_MIGRATIONS, "identity")
            fill(session)
    else:
        schema = postgres_store.SCHEMA
        db = PostgresDatabase(url, schema, "identity")
        db.setup(schema, 1, MIGRATIONS, before=(
            f"CREATE SEQUENCE IF NOT EXISTS {schema}.change_seq AS BIGINT",))
        with db.session() as session:
            fill(session)
    db.close()


def test_a_store_that_kept_names_raw_is_converted_and_keeps_counting(
        pg_url: str, backend: str, tmp_path: Path) -> None:
    _version_6_store(backend, tmp_path / "identity.duckdb", pg_url)
    with opened(backend, tmp_path, pg_url) as store:
        rows = guard_rows(store).lower()
        for personal in ("family", "kassa", "anna", "boris", "vera", "1990-01-01"):
            assert personal not in rows
        assert seen(store, KASSA) == (3, True)
        assert seen(store, FAMILY) == (2, False)
        resolver = Resolver(store, placeholder_threshold=3)
        # A name seen before is recognised by its digest; a third one makes a placeholder.
        resolver.resolve([record("f1", 1, "anna", email=FAMILY[1])])
        assert seen(store, FAMILY) == (2, False)
        resolver.resolve([record("f2", 2, "vera", email=FAMILY[1])])
        assert seen(store, FAMILY) == (3, True)
        assert not linked(store, resolver, KASSA[1], ["gleb", "dina"])
        tables = {t for (t,) in store._run(lambda s: s.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema()"))}
        assert not {t for t in tables if t.endswith("_hashed")}
    with opened(backend, tmp_path, pg_url) as again:  # reopening applies nothing twice
        assert seen(again, FAMILY) == (3, True)
        assert again._run(lambda s: s.fetch(
            "SELECT count(*) FROM schema_migrations WHERE version = 7"))[0][0] == 1


def test_a_lookup_key_two_values_share_lends_neither_the_others_names(
        store: SqlIdentityStore) -> None:
    """A stranger's e-mail whose 64-bit key another value's rows carry (a collision,
    written here by hand) is no placeholder and counts only its own names."""
    stranger = ("email", "stranger@mail.ru")
    other = sha256_hex("someone.else@mail.ru")
    store._run(lambda s: (
        s.insert("placeholders", ("key", "id_type", "value_sha256", "detected_at", "reason"),
                 [(key_hash(*stranger), "email", other, naive_utc(T0), "collision")]),
        s.insert("identifier_names", ("key", "id_type", "value_sha256", "kind", "name_sha256"),
                 [(key_hash(*stranger), "email", other, "first_name", name_digest(
                     "first_name", name)) for name in ("x", "y", "z")])), write=True)
    assert seen(store, stranger) == (0, False)
    resolver = Resolver(store, placeholder_threshold=3)
    assert linked(store, resolver, stranger[1], ["Anna", "Anna"])
    assert seen(store, stranger) == (1, False)


def test_a_name_seen_again_is_stored_once(pg_url: str, backend: str, tmp_path: Path) -> None:
    """DuckDB adds names without a conflict check (one writer, and a batch adds only names it
    did not find stored): the same name with the same e-mail in later batches, in a batch
    of its own, and after the store is opened again (nothing cached) adds no second row and
    fails no batch."""
    def anna(store: SqlIdentityStore, record_id: str, minutes: int) -> None:
        [resolution] = Resolver(store, placeholder_threshold=3).resolve(
            [record(record_id, minutes, "Anna", email=FAMILY[1], loyalty_id=f"L-{record_id}")])
        assert resolution.customer_id and not resolution.violations

    with opened(backend, tmp_path, pg_url) as store:
        anna(store, "a1", 1)
        anna(store, "a2", 2)
        Resolver(store, placeholder_threshold=3).resolve([
            record("a3", 3, "Anna", email=FAMILY[1]), record("a4", 4, "Anna", email=FAMILY[1])])
    with opened(backend, tmp_path, pg_url) as store:
        anna(store, "a5", 5)
        rows = store._run(lambda s: s.fetch(
            "SELECT kind, name_sha256 FROM identifier_names WHERE value_sha256 = %s",
            [sha256_hex(FAMILY[1])]))
        assert sorted(rows) == [("first_name", name_digest(
            "first_name", normalize_features({"first_name": "Anna"})["first_name"]))]
        assert seen(store, FAMILY) == (1, False)

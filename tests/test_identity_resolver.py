"""Deterministic identity resolution: normalisation, linking rules, persistence, threads."""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from omnicdp.core.digests import sha256_hex
from omnicdp.core.errors import InvalidArgument, NotFound
from omnicdp.core.identifiers import (
    BlockedValues,
    is_placeholder,
    normalize_identifier,
    normalize_usable_identifiers,
)
from omnicdp.services.identity.model import IdentityRecord, Resolution
from omnicdp.services.identity.records import normalize_features
from omnicdp.services.identity.resolver import Resolver
from omnicdp.services.identity.store import IdentityStore
from omnicdp.services.identity.store.duckdb import DuckDBIdentityStore
from omnicdp.services.identity.store.graph import name_digest
from omnicdp.services.identity.store.postgres import PostgresIdentityStore
from omnicdp.services.identity.store.sql import SqlIdentityStore
from tests.pg import temporary_database

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["duckdb", "postgres"])
def store(request) -> Iterator[IdentityStore]:
    """Every rule and store behaviour runs on both backends (PostgreSQL: a database of the
    test's own)."""
    if request.param == "duckdb":
        with DuckDBIdentityStore(":memory:") as store:
            yield store
    else:
        with temporary_database() as url, PostgresIdentityStore(url) as store:
            yield store


@pytest.fixture
def resolver(store: IdentityStore) -> Resolver:
    return Resolver(store)


def resolve_one(
    resolver: Resolver, minutes: int = 0, record_id: str = "r", **identifiers: str
) -> Resolution:
    record = IdentityRecord(record_id, identifiers, T0 + timedelta(minutes=minutes))
    (resolution,) = resolver.resolve([record])
    assert resolution.violations == ()
    return resolution


SNAPSHOT_TABLES = {
    "customers": "customer_id", "identifiers": "id_type, value, customer_id",
    "records": "record_id", "record_identifiers": "record_id, id_type, value",
    "links": "record_a, record_b, rule", "changes": "seq",
}


def snapshot(store: SqlIdentityStore) -> dict[str, list[tuple]]:
    """Every row of every table, as stored."""
    return {table: store._run(lambda s, t=table, o=order: s.fetch(
        f"SELECT * FROM {t} ORDER BY {o}")) for table, order in SNAPSHOT_TABLES.items()}


# -- normalisation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["89161234567", "8-916-123-45-67", "+7 (916) 123-45-67", "9161234567", " 8 916 1234567 "]
)
def test_phone_formats_normalise_to_one_e164(raw: str) -> None:
    assert normalize_identifier("phone", raw) == "+79161234567"


def test_phone_of_another_country_keeps_its_country_code() -> None:
    assert normalize_identifier("phone", "+44 20 7946 0958") == "+442079460958"


def test_email_is_trimmed_and_lower_cased_but_keeps_dots_and_tags_outside_gmail() -> None:
    normalized = normalize_identifier("email", "  Ivan.Petrov+Shop@Mail.RU ")
    assert normalized == "ivan.petrov+shop@mail.ru"


@pytest.mark.parametrize(
    "raw", ["Ivan.Petrov@gmail.com", "ivanpetrov+promo@gmail.com", "I.van.Petrov@GoogleMail.com"]
)
def test_gmail_ignores_dots_and_plus_tags_and_googlemail_is_gmail(raw: str) -> None:
    assert normalize_identifier("email", raw) == "ivanpetrov@gmail.com"


@pytest.mark.parametrize(
    "raw",
    [
        "ivan",
        "ivan@",
        "@mail.ru",
        "ivan petrov@mail.ru",
        "ivan@mail",
        "ivan@mail,ru",
        "ivan@@mail.ru",
        "ivan..petrov@mail.ru",
        "+tag@gmail.com",
    ],
)
def test_invalid_email_raises_with_the_field_named(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_identifier("email", raw)
    assert [v.field for v in caught.value.violations] == ["identifiers.email"]
    assert "e-mail" in caught.value.violations[0].description or "Gmail" in str(caught.value)


@pytest.mark.parametrize("raw", ["12", "call me", "+7 916 123", "+1 212"])
def test_invalid_phone_raises_with_the_field_named(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_identifier("phone", raw)
    assert [v.field for v in caught.value.violations] == ["identifiers.phone"]


def test_internationalised_email_domain_is_accepted() -> None:
    assert normalize_identifier("email", "Иван@Почта.РФ") == "иван@почта.рф"


def test_loyalty_id_drops_spaces_and_dashes_and_is_upper_cased() -> None:
    assert normalize_identifier("loyalty_id", " ab-12 34 ") == "AB1234"


def test_other_ids_are_only_stripped() -> None:
    assert normalize_identifier("user_id", "  U-42 ") == "U-42"
    assert normalize_identifier("anonymous_id", "\tAbC\n") == "AbC"


def test_empty_id_is_none_and_overlong_id_is_rejected() -> None:
    assert normalize_identifier("crm_id", "   ") is None
    with pytest.raises(InvalidArgument) as caught:
        normalize_identifier("device_id", "d" * 257)
    assert caught.value.violations[0].field == "identifiers.device_id"
    assert normalize_identifier("device_id", "d" * 256) == "d" * 256


@pytest.mark.parametrize(
    ("id_type", "raw"),
    [
        ("user_id", "0"),
        ("user_id", "000-000"),
        ("user_id", "-1"),
        ("user_id", "NULL"),
        ("anonymous_id", "undefined"),
        ("anonymous_id", "anonymous"),
        ("crm_id", "Unknown"),
        ("crm_id", "n/a"),
        ("loyalty_id", "none"),
        ("email", "noemail@mail.ru"),
        ("email", "NO@yandex.ru"),
        ("email", "none@gmail.com"),
        ("email", "test@test.ru"),
        ("email", "123@mail.ru"),
        ("email", "net@net.ru"),
        ("email", "a@a.ru"),
        ("email", "x@x.com"),
        ("email", "ivan@example.com"),
        ("email", "ivan@example.org"),
        ("email", "nomail@bk.ru"),
        ("email", "0@list.ru"),
        ("phone", "+70000000000"),
        ("phone", "+7 999 999-99-99"),
        ("phone", "8 (111) 111-11-11"),
        ("phone", "1234567"),
        ("phone", "+7 123 456 78 90"),
        ("phone", "0000000000"),
        ("phone", "+7 916 000-00-00"),
    ],
)
def test_placeholders_normalise_to_none(id_type: str, raw: str) -> None:
    assert normalize_identifier(id_type, raw) is None


def test_is_placeholder_judges_normalised_values() -> None:
    assert is_placeholder("email", "noemail@mail.ru")
    assert is_placeholder("phone", "+79999999999")
    assert is_placeholder("user_id", "undefined")
    assert not is_placeholder("email", "ivan@mail.ru")
    assert not is_placeholder("phone", "+79161234567")
    assert not is_placeholder("user_id", "u-1")


def test_normalize_identifiers_drops_placeholders_and_orders_by_priority() -> None:
    ids, problems = normalize_usable_identifiers(
        {
            "phone": "8 916 123-45-67",
            "email": "noemail@mail.ru",
            "user_id": "u1",
            "device_id": None,
            "anonymous_id": "",
        }
    )
    assert problems == []
    assert ids == {"user_id": "u1", "phone": "+79161234567"}
    assert list(ids) == ["user_id", "phone"]


def test_normalize_identifiers_reports_every_violation_at_once() -> None:
    usable, problems = normalize_usable_identifiers(
        {"email": "bad", "phone": "12", "user_id": "ok", "twitter": "@x"}
    )
    assert usable == {"user_id": "ok"}
    assert {v.field for v in problems} == {
        "identifiers.email",
        "identifiers.phone",
        "identifiers.twitter",
    }


# -- resolution --------------------------------------------------------------------------


def test_new_customer_id_is_cus_and_24_hex(resolver: Resolver) -> None:
    resolution = resolve_one(resolver, email="ivan@mail.ru")
    assert resolution.created
    assert resolution.matched_on == ()
    assert re.fullmatch(r"cus_[0-9a-f]{24}", resolution.customer_id or "")


def test_anonymous_to_known_journey_keeps_one_customer(
    resolver: Resolver, store: IdentityStore
) -> None:
    first = resolve_one(resolver, 0, anonymous_id="anon-x")
    identified = resolve_one(resolver, 1, anonymous_id="anon-x", email="Ivan@Mail.ru")
    logged_in = resolve_one(resolver, 2, email="ivan@mail.ru", user_id="u-1")

    assert first.created
    assert identified.customer_id == logged_in.customer_id == first.customer_id
    assert not identified.created and identified.matched_on == ("anonymous_id",)
    assert logged_in.matched_on == ("email",)
    assert store.count_customers() == 1
    assert store.customer_identifiers(first.customer_id) == {
        "user_id": ["u-1"],
        "email": ["ivan@mail.ru"],
        "anonymous_id": ["anon-x"],
    }


def test_event_with_both_identifiers_merges_into_the_older_customer(
    resolver: Resolver, store: IdentityStore
) -> None:
    older = resolve_one(resolver, 0, email="ivan@mail.ru", phone="+79161234567")
    newer = resolve_one(resolver, 5, user_id="u-1", anonymous_id="anon-y")
    bridge = resolve_one(resolver, 10, user_id="u-1", email="ivan@mail.ru")

    assert bridge.customer_id == older.customer_id
    assert bridge.merged_customer_ids == (newer.customer_id,)
    assert bridge.matched_on == ("user_id", "email")
    assert store.count_customers() == 1
    assert store.resolve_redirects(newer.customer_id) == older.customer_id
    assert store.merged_customer_ids(older.customer_id) == [newer.customer_id]
    assert resolver.lookup("user_id", "u-1") == older.customer_id
    assert resolver.lookup("anonymous_id", "anon-y") == older.customer_id
    assert store.customer_identifiers(newer.customer_id) == {
        "user_id": ["u-1"],
        "email": ["ivan@mail.ru"],
        "phone": ["+79161234567"],
        "anonymous_id": ["anon-y"],
    }


def test_redirects_of_an_earlier_loser_follow_a_later_merge(
    resolver: Resolver, store: IdentityStore
) -> None:
    a = resolve_one(resolver, 0, email="a@mail.ru")
    b = resolve_one(resolver, 1, email="b@mail.ru")
    c = resolve_one(resolver, 2, loyalty_id="L1")
    resolve_one(resolver, 3, email="b@mail.ru", loyalty_id="L1")  # c into b
    resolve_one(resolver, 4, email="a@mail.ru", loyalty_id="L1")  # b into a

    assert store.resolve_redirects(c.customer_id) == a.customer_id
    assert store.resolve_redirects(b.customer_id) == a.customer_id
    assert store.count_customers() == 1


def test_household_phone_does_not_merge_different_emails(
    resolver: Resolver, store: IdentityStore
) -> None:
    mother = resolve_one(resolver, 0, email="anna@mail.ru", phone="8 495 123-45-67")
    son = resolve_one(resolver, 1, email="oleg@mail.ru", phone="+7 495 123 45 67")
    phone_only = resolve_one(resolver, 2, phone="84951234567")

    assert son.created and son.customer_id != mother.customer_id
    assert store.count_customers() == 2
    assert phone_only.customer_id == son.customer_id  # most recently seen holder
    assert phone_only.merged_customer_ids == ()
    assert store.find_customers("phone", "+74951234567") == [son.customer_id, mother.customer_id]


def test_shared_device_links_a_customer_without_conflicting_email(
    resolver: Resolver,
) -> None:
    app = resolve_one(resolver, 0, device_id="dev-1", email="anna@mail.ru")
    push = resolve_one(resolver, 1, device_id="dev-1", loyalty_id="L-7")
    assert push.customer_id == app.customer_id
    assert push.matched_on == ("device_id",)


def test_conflicting_user_ids_never_merge(
    resolver: Resolver, store: IdentityStore
) -> None:
    first = resolve_one(resolver, 0, user_id="u-1", email="shared@mail.ru")
    second = resolve_one(resolver, 1, user_id="u-2", email="shared@mail.ru")
    both = resolve_one(resolver, 2, user_id="u-1", crm_id="c-9", email="other@mail.ru")
    bridge = resolve_one(resolver, 3, user_id="u-2", email="other@mail.ru")

    assert second.created and second.customer_id != first.customer_id
    assert both.customer_id == first.customer_id
    assert bridge.customer_id == second.customer_id and bridge.merged_customer_ids == ()
    assert store.count_customers() == 2
    assert store.customer_identifiers(first.customer_id)["user_id"] == ["u-1"]
    assert store.customer_identifiers(second.customer_id)["user_id"] == ["u-2"]


def test_event_matching_two_user_ids_attaches_to_the_highest_priority_match(
    resolver: Resolver, store: IdentityStore
) -> None:
    a = resolve_one(resolver, 0, user_id="u-1")
    b = resolve_one(resolver, 1, user_id="u-2", phone="+79161234567")
    event = resolve_one(resolver, 2, user_id="u-1", phone="+79161234567")

    assert event.customer_id == a.customer_id and event.merged_customer_ids == ()
    assert store.resolve_redirects(b.customer_id) == b.customer_id


def test_placeholder_email_does_not_link_strangers(
    resolver: Resolver, store: IdentityStore
) -> None:
    first = resolve_one(resolver, 0, email="noemail@mail.ru", loyalty_id="L-1")
    second = resolve_one(resolver, 1, email="NoEmail@mail.ru", loyalty_id="L-2")

    assert first.customer_id != second.customer_id
    assert first.identifiers == {"loyalty_id": "L1"}
    assert resolver.lookup("email", "noemail@mail.ru") is None
    assert store.count_customers() == 2


def test_resolving_the_same_record_twice_changes_nothing(
    resolver: Resolver, store: IdentityStore
) -> None:
    resolve_one(resolver, 0, email="anna@mail.ru", phone="+74951234567")
    record = IdentityRecord(
        "r-2",
        {"email": "oleg@mail.ru", "phone": "84951234567", "anonymous_id": "a-1"},
        T0 + timedelta(minutes=1),
    )
    (first,) = resolver.resolve([record])
    before = snapshot(store)
    (again,) = resolver.resolve([record])

    assert again.customer_id == first.customer_id
    assert not again.created and again.merged_customer_ids == ()
    assert snapshot(store) == before


def test_merge_that_would_exceed_the_email_limit_is_refused(
    resolver: Resolver, store: IdentityStore
) -> None:
    many = resolve_one(resolver, 0, loyalty_id="L-1", email="e0@mail.ru")
    for i in range(1, 5):
        resolve_one(resolver, i, loyalty_id="L-1", email=f"e{i}@mail.ru")
    other = resolve_one(resolver, 10, crm_id="c-1", email="f@mail.ru")
    refused = resolve_one(resolver, 11, email="e0@mail.ru", crm_id="c-1")

    assert len(store.customer_identifiers(many.customer_id)["email"]) == 5
    assert refused.customer_id == other.customer_id  # crm_id has the higher priority
    assert refused.merged_customer_ids == ()
    assert store.count_customers() == 2


def test_batch_with_an_invalid_record_resolves_the_rest(resolver: Resolver) -> None:
    records = [
        IdentityRecord("ok-1", {"email": "ivan@mail.ru"}, T0),
        IdentityRecord("bad", {"email": "ivan@", "phone": "12"}, T0),
        IdentityRecord("empty", {"email": "null", "phone": ""}, T0),
        IdentityRecord("ok-2", {"email": "IVAN@mail.ru", "phone": "89161234567"}, T0),
    ]
    ok1, bad, empty, ok2 = resolver.resolve(records)

    assert ok1.customer_id and ok1.created
    assert bad.customer_id is None and bad.identifiers == {}
    assert {v.field for v in bad.violations} == {"identifiers.email", "identifiers.phone"}
    assert empty.customer_id is None
    assert [v.field for v in empty.violations] == ["identifiers"]
    assert "at least one identifier is required" in empty.violations[0].description
    # The second record of a batch sees the first.
    assert ok2.customer_id == ok1.customer_id and not ok2.created
    assert ok2.identifiers == {"email": "ivan@mail.ru", "phone": "+79161234567"}


def test_unknown_customer_id_is_not_found(store: IdentityStore) -> None:
    with pytest.raises(NotFound):
        store.customer_identifiers("cus_000000000000000000000000")
    assert store.resolve_redirects("cus_000000000000000000000000") is None


def test_failed_transaction_leaves_no_trace(store: IdentityStore) -> None:
    with pytest.raises(RuntimeError), store.transaction() as graph:
        customer_id = graph.create_customer(T0)
        graph.attach_identifiers(customer_id, {"email": "ivan@mail.ru"}, T0, "rec_1")
        raise RuntimeError("crash between writes")
    assert store.count_customers(include_merged=True) == 0
    assert store.lookup("email", "ivan@mail.ru") is None
    assert store.last_change_seq() == 0


def test_customers_survive_reopening_the_duckdb_file(tmp_path) -> None:
    path = tmp_path / "data" / "identity.duckdb"
    with DuckDBIdentityStore(path) as store:
        resolver = Resolver(store)
        older = resolve_one(resolver, 0, email="ivan@mail.ru")
        newer = resolve_one(resolver, 1, user_id="u-1")
        resolve_one(resolver, 2, email="ivan@mail.ru", user_id="u-1")

    with DuckDBIdentityStore(path) as store:
        resolver = Resolver(store)
        assert resolver.lookup("user_id", "u-1") == older.customer_id
        assert store.resolve_redirects(newer.customer_id) == older.customer_id
        again = resolve_one(resolver, 3, email="Ivan@Mail.ru", phone="+79161234567")
        assert again.customer_id == older.customer_id and not again.created


def test_concurrent_resolves_end_with_consistent_ids(store: IdentityStore) -> None:
    resolver = Resolver(store)
    people = 15
    records = [
        IdentityRecord(f"p{i}", {"email": f"p{i}@mail.ru", "phone": f"+79161{i:02d}4567"}, T0)
        for i in range(people)
    ] + [
        IdentityRecord(f"p{i}-app", {"phone": f"89161{i:02d}4567", "anonymous_id": f"anon-{i}"}, T0)
        for i in range(people)
    ]
    results: list[list[Resolution]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work(seed: int) -> None:
        mine = records[:]
        random.Random(seed).shuffle(mine)
        start.wait()
        try:
            results.append([r for rec in mine for r in resolver.resolve([rec])])
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == [] and len(results) == 4
    assert store.count_customers() == people
    for i in range(people):
        customer_id = resolver.lookup("email", f"p{i}@mail.ru")
        assert customer_id is not None
        assert resolver.lookup("anonymous_id", f"anon-{i}") == customer_id
        returned = {
            store.resolve_redirects(r.customer_id or "")
            for batch in results
            for r in batch
            if r.record_id in (f"p{i}", f"p{i}-app")
        }
        assert returned == {customer_id}


# -- durability: what was committed is what is read, after reopening too ---------------


def observe(
    store: IdentityStore, customer_ids: set[str], identifiers: set[tuple[str, str]]
) -> dict[str, object]:
    """Everything the store answers about these customers and identifiers."""
    return {
        "counts": (store.count_customers(), store.count_customers(include_merged=True)),
        "customers": {
            customer_id: (
                store.get_customer(customer_id),
                store.resolve_redirects(customer_id),
                store.merged_customer_ids(customer_id),
                store.identifier_rows(customer_id),
            )
            for customer_id in sorted(customer_ids)
        },
        "holders": {key: store.find_customers(*key) for key in sorted(identifiers)},
    }


def batch_of_people(start: int, minutes: int = 0) -> list[IdentityRecord]:
    """Records that create, link and merge customers within one batch."""
    at = T0 + timedelta(minutes=minutes)
    records = []
    for i in range(start, start + 5):
        records += [
            IdentityRecord(f"web-{i}", {"email": f"p{i}@mail.ru", "anonymous_id": f"a-{i}"}, at),
            IdentityRecord(f"app-{i}", {"user_id": f"u-{i}", "device_id": f"d-{i}"}, at),
            IdentityRecord(
                f"login-{i}",
                {"user_id": f"u-{i}", "email": f"p{i}@mail.ru"},
                at + timedelta(seconds=i),
            ),
            IdentityRecord(f"shop-{i}", {"phone": "+74951234567", "loyalty_id": f"L{i}"}, at),
        ]
    return records


def ids_seen(resolutions: list[Resolution]) -> tuple[set[str], set[tuple[str, str]]]:
    customer_ids = {r.customer_id for r in resolutions if r.customer_id}
    customer_ids |= {m for r in resolutions for m in r.merged_customer_ids}
    identifiers = {item for r in resolutions for item in r.identifiers.items()}
    return customer_ids, identifiers


def test_store_reopened_after_a_batch_answers_the_same(tmp_path) -> None:
    path = tmp_path / "identity.duckdb"
    with DuckDBIdentityStore(path) as store:
        resolver = Resolver(store)
        first = resolver.resolve(batch_of_people(0))
        second = resolver.resolve(batch_of_people(3, minutes=30))  # overlaps: widens, merges
        customer_ids, identifiers = ids_seen(first + second)
        assert any(r.merged_customer_ids for r in first + second)
        before = observe(store, customer_ids, identifiers)
        disk = snapshot(store)
        lookups = {key: resolver.lookup(*key) for key in identifiers}

    with DuckDBIdentityStore(path) as store:
        resolver = Resolver(store)
        assert snapshot(store) == disk
        assert observe(store, customer_ids, identifiers) == before
        assert {key: resolver.lookup(*key) for key in identifiers} == lookups
        # Resolving a batch already seen changes nothing, on disk either.
        again = resolver.resolve(batch_of_people(3, minutes=30))
        assert [r.customer_id for r in again] == [
            store.resolve_redirects(r.customer_id or "") for r in second
        ]
        assert snapshot(store) == disk


class _CommitFails:
    """A DuckDB connection whose COMMIT fails, as on a full disk."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)

    def execute(self, sql: str, *args: object) -> duckdb.DuckDBPyConnection:
        if sql.strip() == "COMMIT":
            raise duckdb.IOException("No space left on device")
        return self._conn.execute(sql, *args)


def test_failed_commit_leaves_memory_and_disk_as_before(tmp_path, monkeypatch) -> None:
    path = tmp_path / "identity.duckdb"
    with DuckDBIdentityStore(path) as store:
        resolver = Resolver(store)
        committed = resolver.resolve(batch_of_people(0))
        failing = batch_of_people(3, minutes=30)  # new customers, merges and wider ranges
        customer_ids, identifiers = ids_seen(committed)
        before = observe(store, customer_ids, identifiers)
        disk = snapshot(store)

        real_conn = store._conn
        monkeypatch.setattr(store, "_conn", _CommitFails(real_conn))
        with pytest.raises(duckdb.IOException):
            resolver.resolve(failing)
        monkeypatch.setattr(store, "_conn", real_conn)

        assert snapshot(store) == disk
        assert observe(store, customer_ids, identifiers) == before
        assert resolver.lookup("user_id", "u-7") is None
        # The store is still usable, and the retried batch is kept.
        retried = resolver.resolve(failing)
        customer_ids, identifiers = ids_seen(committed + retried)
        after = observe(store, customer_ids, identifiers)

    with DuckDBIdentityStore(path) as store:
        assert observe(store, customer_ids, identifiers) == after


def test_failed_transaction_undoes_its_merges(
    resolver: Resolver, store: IdentityStore
) -> None:
    older = resolve_one(resolver, 0, email="ivan@mail.ru", phone="+79161234567")
    newer = resolve_one(resolver, 5, user_id="u-1", phone="+79161234567")
    customer_ids = {older.customer_id or "", newer.customer_id or ""}
    identifiers = {("email", "ivan@mail.ru"), ("user_id", "u-1"), ("phone", "+79161234567")}
    before = observe(store, customer_ids, identifiers)
    disk = snapshot(store)

    with pytest.raises(RuntimeError), store.transaction():
        resolve_one(resolver, 10, user_id="u-1", email="ivan@mail.ru", device_id="d-1")
        assert store.resolve_redirects(newer.customer_id or "") == older.customer_id
        raise RuntimeError("crash after the merge")

    assert observe(store, customer_ids, identifiers) == before
    assert snapshot(store) == disk
    assert store.lookup("device_id", "d-1") is None


def test_malformed_identifier_is_left_out_with_a_warning(resolver: Resolver) -> None:
    [known] = resolver.resolve([IdentityRecord("a", {"loyalty_id": "777"}, T0)])
    [purchase] = resolver.resolve([IdentityRecord(
        "b", {"loyalty_id": "777", "phone": "0176 01045518"}, T0 + timedelta(days=1))])
    assert purchase.customer_id == known.customer_id
    assert purchase.violations == ()
    assert [w.field for w in purchase.warnings] == ["identifiers.phone"]
    assert purchase.identifiers == {"loyalty_id": "777"}


def test_a_duplicate_crm_row_links_by_its_other_evidence(
    resolver: Resolver, store: IdentityStore
) -> None:
    """CRMs hold duplicate rows of one person: a second CRM id is no conflict."""
    crm_row = resolve_one(resolver, 0, crm_id="CRM-1", email="olga@mail.ru", phone="+79161234567")
    duplicate = resolve_one(resolver, 1, crm_id="CRM-2", email="olga@mail.ru")
    assert duplicate.customer_id == crm_row.customer_id and not duplicate.created
    assert store.customer_identifiers(crm_row.customer_id)["crm_id"] == ["CRM-1", "CRM-2"]
    # user_id stays one per person.
    resolve_one(resolver, 2, user_id="u-1", email="olga@mail.ru")
    other_user = resolve_one(resolver, 3, user_id="u-2", email="olga@mail.ru")
    assert other_user.customer_id != crm_row.customer_id


@pytest.mark.parametrize("country, raw, e164", [
    ("BY", "80 29 123-45-67", "+375291234567"),
    ("DE", "0170 1234567", "+491701234567"),
    ("", "8 916 123-45-67", "+79161234567"),
    ("BY", "8 916 123-45-67", "+79161234567"),  # not a BY number: read in the default region
])
def test_phones_are_read_in_the_records_country_then_the_default_region(
    resolver: Resolver, country: str, raw: str, e164: str
) -> None:
    [resolution] = resolver.resolve([IdentityRecord(
        "r", {"phone": raw}, T0, traits={"country": country} if country else {})])
    assert resolution.violations == () and resolution.warnings == ()
    assert resolution.identifiers == {"phone": e164}


def every_row(store: SqlIdentityStore) -> str:
    """Every row of every table of the store, as text (lower case)."""
    def read(session) -> dict[str, list[tuple]]:
        tables = [t for (t,) in session.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY table_name")]
        assert {"identifier_names", "placeholders", "audit_log", "near_misses"} <= set(tables)
        return {table: session.fetch(f"SELECT * FROM {table}") for table in tables}
    return repr(store._run(read)).lower()


def test_erasure_keeps_hashed_tombstones_and_an_audit_entry_without_personal_data(
    store: IdentityStore
) -> None:
    """Her e-mail was typed on her card's forms with three birth dates, so the guard found
    it a placeholder; erased, no table holds any of her values or her names' digests."""
    resolver = Resolver(store, placeholder_threshold=3)
    person = resolve_one(resolver, 0, email="eva@mail.ru", phone="+79163330000",
                         loyalty_id="CARD-EVA")
    resolve_one(resolver, 1, phone="+79163330000", device_id="dev-eva")
    births = [f"1990-01-0{day}" for day in (1, 2, 3)]
    resolver.resolve([IdentityRecord(f"form-{birth}", {"email": "Eva@Mail.ru",
                                                       "loyalty_id": "card-eva"},
                                     T0 + timedelta(days=i + 1),
                                     traits={"first_name": "Evdokia", "date_of_birth": birth})
                      for i, birth in enumerate(births)])
    assert store.lookup("email", "eva@mail.ru") is None  # a placeholder: it links no one
    assert store.lookup("loyalty_id", "CARDEVA") == person.customer_id
    digests = [name_digest(kind, name) for birth in births for kind, name in normalize_features(
        {"first_name": "Evdokia", "date_of_birth": birth}).items()]
    assert all(d in every_row(store) for d in digests)  # the scan would find them
    assert sha256_hex("eva@mail.ru") in every_row(store)  # its placeholder row

    erased = store.erase(person.customer_id or "", actor="dpo", reason="request 42")
    assert erased.records_erased == 5
    assert store.is_erased("email", "eva@mail.ru") and store.is_erased("device_id", "dev-eva")
    assert not store.is_erased("email", "someone@mail.ru")
    assert store.resolve_redirects(person.customer_id or "") is None
    assert store.count_customers(include_merged=True) == 0
    stored = every_row(store)
    for personal in ("eva@mail.ru", "79163330000", "dev-eva", "card-eva", "cardeva",
                     "evdokia", "1990-01-0", person.identity_record_id, *digests):
        assert personal.lower() not in stored
    audit = repr(store._run(lambda s: s.fetch("SELECT * FROM audit_log WHERE action = 'erase'")))
    # The random customer id stays as a tombstone (never reissued), but not in the audit.
    assert person.customer_id not in audit and "request 42" in audit
    assert [c.kind for c in store.changes(0, 100)][-1] == "erased"


def test_erasure_leaves_a_value_another_customer_holds_to_them(store: IdentityStore) -> None:
    """Spouses with their own e-mails share the home phone: erasing one tombstones the
    e-mail, not the phone; the other's later events with the phone are theirs, and the
    names seen with the phone are the survivor's only."""
    resolver = Resolver(store, placeholder_threshold=3)
    phone = "+74951234567"
    [pavel, irina] = resolver.resolve([
        IdentityRecord("p", {"email": "pavel@mail.ru", "phone": phone}, T0,
                       traits={"first_name": "Pavel"}),
        IdentityRecord("i", {"email": "irina@mail.ru", "phone": phone},
                       T0 + timedelta(minutes=1), traits={"first_name": "Irina"})])
    assert pavel.customer_id != irina.customer_id  # their e-mails disagree

    store.erase(pavel.customer_id or "", actor="dpo", reason="request 43")
    assert store.is_erased("email", "pavel@mail.ru") and not store.is_erased("phone", phone)
    [later, his] = resolver.resolve([
        IdentityRecord("i2", {"phone": phone}, T0 + timedelta(days=1)),
        IdentityRecord("p2", {"email": "pavel@mail.ru"}, T0 + timedelta(days=1))])
    assert later.customer_id == irina.customer_id and not later.suppressed
    assert his.suppressed and his.customer_id is None
    stored = every_row(store)
    assert name_digest("first_name", "pavel") not in stored
    assert name_digest("first_name", "irina") in stored
    audit = repr(store._run(lambda s: s.fetch("SELECT detail FROM audit_log "
                                              "WHERE action = 'erase'")))
    assert "2 identifiers (1 still held by other customers" in audit


def test_a_shared_placeholder_email_stops_linking_and_unlinks_the_strangers_it_joined(
    store: IdentityStore
) -> None:
    """A store's cashiers type kassa@shop.ru for customers without an e-mail. With a
    threshold of 5 names, the first strangers are joined by it until the fifth name shows it
    is no one's: then it links no one, and the strangers it joined are apart again."""
    resolver = Resolver(store, placeholder_threshold=5)
    names = ["anna", "boris", "vera", "gleb", "dina", "egor", "zoya"]
    results = []
    for i, name in enumerate(names):
        [r] = resolver.resolve([IdentityRecord(
            f"r{i}", {"email": "kassa@shop.ru", "loyalty_id": f"CARD-{i}"},
            T0 + timedelta(minutes=i), traits={"first_name": name})])
        results.append(r)
    # Each stranger, found by their own card: seven strangers, seven customers.
    owners = {store.lookup("loyalty_id", f"CARD{i}") for i in range(len(names))}
    assert None not in owners and len(owners) == len(names)
    # The same person seen twice with her card still links by it.
    [again] = resolver.resolve([IdentityRecord(
        "r-again", {"email": "kassa@shop.ru", "loyalty_id": "CARD-0"},
        T0 + timedelta(days=1), traits={"first_name": "anna"})])
    assert again.customer_id == store.lookup("loyalty_id", "CARD0")
    revoked = [link for customer_id in owners for r in store.records_of(customer_id)
               for link in store.links_of([r.record_id]) if link.revoked_at]
    assert revoked and {link.revoked_by for link in revoked} == {"rules/placeholder-detection"}
    assert {c.kind for c in store.changes(0, 1000)} >= {"split"}


def test_a_family_email_with_few_names_still_links(resolver: Resolver) -> None:
    records = [IdentityRecord(f"f{i}", {"email": "family@mail.ru"}, T0 + timedelta(minutes=i),
                              traits={"first_name": name})
               for i, name in enumerate(["anna", "anna", "boris"])]
    resolutions = resolver.resolve(records)
    assert len({r.customer_id for r in resolutions}) == 1


def test_a_retailers_own_blocked_values_never_link(store: IdentityStore) -> None:
    blocked = BlockedValues.parse(
        "# the shop's stand-ins\nemail:.*@shop\\.example\\.ru\nphone:\\+74950000000\nguest-\\d+\n")
    resolver = Resolver(store, blocked=blocked)
    anna = resolve_one(resolver, 0, record_id="a", email="kassa@shop.example.ru",
                       loyalty_id="L-1")
    oleg = resolve_one(resolver, 1, record_id="b", email="KASSA@shop.example.ru",
                       phone="+7 495 000-00-00", loyalty_id="L-2")
    assert anna.customer_id != oleg.customer_id
    assert "email" not in oleg.identifiers and "phone" not in oleg.identifiers
    [only_blocked] = resolver.resolve([IdentityRecord("c", {"user_id": "GUEST-17"}, T0)])
    assert only_blocked.customer_id is None and only_blocked.violations
    assert resolver.lookup("email", "kassa@shop.example.ru") is None
    # The same values still link where nothing blocks them.
    plain = Resolver(store)
    assert resolve_one(plain, 2, record_id="d", email="kassa@shop.example.ru").customer_id


def test_blocked_values_name_the_line_of_a_bad_pattern() -> None:
    with pytest.raises(ValueError, match=r"blocked\.txt, line 2: .*"):
        BlockedValues.parse("email:ok@.*\nphone:([0-9]\n", "blocked.txt")
    parsed = BlockedValues.parse("unknown_type:x\n")  # not a type: a pattern for all types
    assert parsed.blocks("email", "unknown_type:x") and not parsed.blocks("email", "x")


def test_an_unmerge_keeps_the_parts_apart_through_later_events_and_merges(
        resolver: Resolver, store: IdentityStore) -> None:
    anna = resolve_one(resolver, 0, record_id="a1", email="anna@mail.ru")
    # A cashier types Anna's e-mail on Boris's card: merged, wrongly.
    wrong = resolve_one(resolver, 1, record_id="w1", email="anna@mail.ru", loyalty_id="CARD-B")
    assert wrong.customer_id == anna.customer_id
    result = store.unmerge(anna.customer_id, [wrong.identity_record_id], "support:olga",
                           "cashier typed another customer's e-mail")
    boris = result.new_customer_id
    # Both parts hold the e-mail; a later event with it and the card links one, merges none.
    again = resolve_one(resolver, 2, record_id="w2", email="anna@mail.ru", loyalty_id="CARD-B")
    assert again.customer_id == boris and not again.merged_customer_ids
    assert store.resolve_redirects(anna.customer_id) == anna.customer_id
    # Boris merges with his older app account, which survives, and stays apart from Anna.
    app = resolve_one(resolver, -5, record_id="u1", user_id="boris-1", phone="+79160000002")
    joined = resolve_one(resolver, 4, record_id="u2", loyalty_id="CARD-B", user_id="boris-1")
    survivor = joined.customer_id
    assert survivor == app.customer_id and store.resolve_redirects(boris) == survivor
    last = resolve_one(resolver, 5, record_id="x", email="anna@mail.ru", user_id="boris-1")
    assert last.customer_id == survivor and not last.merged_customer_ids
    assert store.resolve_redirects(anna.customer_id) == anna.customer_id != survivor

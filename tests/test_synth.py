"""The synthetic retailer: deterministic, consistent with its truth, in the contract's
formats, and as noisy as real customer data."""

from __future__ import annotations

import csv
import json
import random
import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from omnicdp.core.errors import InvalidArgument
from omnicdp.synth import GenerationSummary, generate_retailer
from omnicdp.synth.events import EventLog

CUSTOMERS = 200
SEED = 11

# PRODUCT.md, external contracts.
PERSON_COLUMNS = ["record_id", "source", "first_name", "last_name", "email", "phone",
                  "date_of_birth", "address_line", "city", "postcode", "region", "country",
                  "loyalty_id", "crm_id", "user_id"]
EVENT_TYPES = {"identify", "track", "page", "screen", "alias", "group"}
CHANNELS = {"web", "app", "email", "push", "sms", "messenger", "ads", "store", "call_center",
            "crm"}
IDENTIFIERS = {"email", "phone", "user_id", "anonymous_id", "device_id", "loyalty_id", "crm_id"}
TRAITS = {"first_name", "last_name", "date_of_birth", "address_line", "city", "postcode",
          "region", "country"}
SOURCES = {"crm", "loyalty", "web", "app", "pos", "call_center", "email_list"}
PLACEHOLDER_EMAILS = {"noemail@mail.ru", "test@test.ru", "123@mail.ru", "net@net.ru",
                      "nomail@mail.ru", "no@no.ru", "0@mail.ru"}
# Stand-ins the identity service's normaliser does not list.
UNLISTED_PLACEHOLDER_EMAILS = {"nety@mail.ru", "netu@mail.ru", "pokupatel@mail.ru",
                               "klient@uyut-home.ru", "1@1.ru", "qwerty@mail.ru",
                               "bez.pochty@yandex.ru", "aaa@mail.ru"}
# A Russian keyboard's letters on the keys of a US one (Иван typed as Bdfy).
FROM_WRONG_LAYOUT = str.maketrans("qwertyuiop[]asdfghjkl;'zxcvbnm,.`",
                                  "йцукенгшщзхъфывапролджэячсмитьбюё")
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
FILES = ["persons.csv", "persons_truth.csv", "events.jsonl", "events_truth.csv",
         "transactions.csv", "attribution_events.csv", "summary.json"]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _digits(phone: str) -> str:
    """Enough normalisation for tests: the last ten digits (+7 916..., 8916..., 916...)."""
    return re.sub(r"\D", "", phone)[-10:]


def _parse_time(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


class PersonTable:
    """A generated person table and its truth."""

    def __init__(self, out: Path) -> None:
        self.persons = _read_csv(out / "persons.csv")
        self.record_person = {r["record_id"]: r["person_id"]
                              for r in _read_csv(out / "persons_truth.csv")}

    def records_by_person(self) -> dict[str, list[dict[str, str]]]:
        by_person: dict[str, list[dict[str, str]]] = defaultdict(list)
        for record in self.persons:
            by_person[self.record_person[record["record_id"]]].append(record)
        return by_person


class Retailer(PersonTable):
    def __init__(self, out: Path, summary: GenerationSummary,
                 calls: list[tuple[str, int, int]]) -> None:
        super().__init__(out)
        self.out = out
        self.summary = summary
        self.progress_calls = calls
        with (out / "events.jsonl").open(encoding="utf-8") as handle:
            self.events = [json.loads(line) for line in handle]
        self.message_person = {r["message_id"]: r["person_id"]
                               for r in _read_csv(out / "events_truth.csv")}
        self.transactions = _read_csv(out / "transactions.csv")
        self.attribution = _read_csv(out / "attribution_events.csv")

    def events_by_person(self) -> dict[str, list[dict]]:
        by_person: dict[str, list[dict]] = defaultdict(list)
        for event in self.events:
            by_person[self.message_person[event["message_id"]]].append(event)
        return by_person


@pytest.fixture(scope="module")
def retailer(tmp_path_factory: pytest.TempPathFactory) -> Retailer:
    out = tmp_path_factory.mktemp("retailer")
    calls: list[tuple[str, int, int]] = []
    summary = generate_retailer(CUSTOMERS, SEED, out,
                                progress=lambda *call: calls.append(call))
    return Retailer(out, summary, calls)


def test_same_seed_gives_byte_identical_files(retailer: Retailer, tmp_path: Path) -> None:
    generate_retailer(CUSTOMERS, SEED, tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (retailer.out / name).read_bytes(), name


def test_different_seed_gives_different_data(retailer: Retailer, tmp_path: Path) -> None:
    generate_retailer(CUSTOMERS, SEED + 1, tmp_path)
    for name in ("persons.csv", "events.jsonl", "transactions.csv"):
        assert (tmp_path / name).read_bytes() != (retailer.out / name).read_bytes(), name


def test_summary_counts_match_the_files(retailer: Retailer) -> None:
    summary = retailer.summary
    assert summary.persons == CUSTOMERS
    assert summary.person_records == len(retailer.persons)
    assert summary.events == len(retailer.events)
    orders = [e for e in retailer.events if e.get("event") == "Order Completed"]
    assert summary.orders_online == sum(e["channel"] in ("web", "app") for e in orders)
    assert summary.purchases_store == sum(e["channel"] == "store" for e in orders)
    assert summary.households > 0
    written = json.loads((retailer.out / "summary.json").read_text(encoding="utf-8"))
    assert written == summary.to_dict(relative=True)
    assert set(summary.to_dict()["files"].values()) == {str(retailer.out / n) for n in FILES}
    assert 20 <= summary.events / summary.persons <= 60


def test_progress_reports_every_stage_to_completion(retailer: Retailer) -> None:
    finals = {stage: (done, total) for stage, done, total in retailer.progress_calls}
    assert set(finals) == {"people", "journeys", "files"}
    assert all(done == total for done, total in finals.values())


def test_every_record_and_event_has_exactly_one_truth_row(retailer: Retailer) -> None:
    record_ids = [r["record_id"] for r in retailer.persons]
    assert len(set(record_ids)) == len(record_ids)
    assert set(record_ids) == set(retailer.record_person)
    message_ids = [e["message_id"] for e in retailer.events]
    assert len(set(message_ids)) == len(message_ids)
    assert set(message_ids) == set(retailer.message_person)
    people = set(retailer.record_person.values()) | set(retailer.message_person.values())
    assert people <= {f"p{n:06d}" for n in range(1, CUSTOMERS + 1)}


def test_person_table_has_the_contract_columns(retailer: Retailer) -> None:
    with (retailer.out / "persons.csv").open(encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == PERSON_COLUMNS
    assert {r["source"] for r in retailer.persons} == SOURCES
    for record in retailer.persons:
        if record["date_of_birth"]:
            datetime.strptime(record["date_of_birth"], "%Y-%m-%d")
    assert any(not r["date_of_birth"] for r in retailer.persons)
    countries = {r["country"] for r in retailer.persons if r["country"]}
    assert "RU" in countries


def test_events_are_sorted_rfc3339_and_in_the_contract(retailer: Retailer) -> None:
    times = []
    for event in retailer.events:
        assert RFC3339_UTC.fullmatch(event["timestamp"]), event
        times.append(_parse_time(event["timestamp"]))
        assert event["type"] in EVENT_TYPES
        assert event["channel"] in CHANNELS
        assert event["source"]
        assert event["identifiers"] and set(event["identifiers"]) <= IDENTIFIERS, event
        assert all(isinstance(v, str) and v for v in event["identifiers"].values())
        if event["type"] == "track":
            assert event["event"]
        else:
            assert "event" not in event
        if event["type"] == "identify":
            assert set(event.get("traits", {})) <= TRAITS
        else:
            assert "traits" not in event
    assert any("last_name" in e.get("traits", {}) for e in retailer.events)
    assert times == sorted(times)
    assert times[0] >= datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    assert times[-1] < datetime.fromisoformat("2026-06-30T00:00:00+00:00")


def test_orders_carry_revenue_in_roubles_and_match_transactions(retailer: Retailer) -> None:
    orders = {e["properties"]["order_id"]: e for e in retailer.events
              if e.get("event") == "Order Completed"}
    assert len(orders) == len(retailer.transactions)
    for row in retailer.transactions:
        event = orders[row["order_id"]]
        assert event["properties"]["currency"] == "RUB"
        assert float(row["amount"]) == pytest.approx(event["properties"]["revenue"])
        assert row["timestamp"] == event["timestamp"]
        assert row["channel"] == event["channel"]
        assert row["customer_id"] == retailer.message_person[event["message_id"]]
    total = sum(e["properties"]["revenue"] for e in orders.values())
    assert sum(float(r["amount"]) for r in retailer.transactions) == pytest.approx(total)
    revenues = sorted(e["properties"]["revenue"] for e in orders.values())
    assert 500 < revenues[len(revenues) // 2] < 20_000  # a plausible median basket


def test_attribution_table_holds_touches_and_every_conversion(retailer: Retailer) -> None:
    conversions = [r for r in retailer.attribution if r["kind"] == "conversion"]
    touches = [r for r in retailer.attribution if r["kind"] == "touch"]
    assert len(conversions) == len(retailer.transactions)
    assert {r["channel"] for r in conversions} <= {"web", "app", "store"}
    assert {"Email Opened", "Ad Impression"} <= {r["event"] for r in touches}
    assert {r["channel"] for r in touches} <= CHANNELS
    for row in retailer.attribution:
        _parse_time(row["timestamp"])
        float(row["value"])


def test_the_same_person_is_spelt_in_cyrillic_and_in_latin(retailer: Retailer) -> None:
    def scripts(records: list[dict[str, str]]) -> set[str]:
        found = set()
        for record in records:
            name = record["first_name"] + record["last_name"]
            if re.search("[А-Яа-яЁё]", name):
                found.add("cyrillic")
            if re.search("[A-Za-z]", name):
                found.add("latin")
        return found

    mixed = [p for p, records in retailer.records_by_person().items()
             if scripts(records) == {"cyrillic", "latin"}]
    assert len(mixed) >= 3


def test_the_same_phone_is_written_in_different_formats(retailer: Retailer) -> None:
    formats: dict[tuple[str, str], set[str]] = defaultdict(set)
    for person, records in retailer.records_by_person().items():
        for record in records:
            if record["phone"]:
                formats[person, _digits(record["phone"])].add(record["phone"])
    assert sum(len(raw) >= 2 for raw in formats.values()) >= 3


def test_placeholder_emails_are_shared_by_unrelated_people(larger: PersonTable) -> None:
    holders: dict[str, set[str]] = defaultdict(set)
    for record in larger.persons:
        email = record["email"].strip().lower()
        if email in PLACEHOLDER_EMAILS | UNLISTED_PLACEHOLDER_EMAILS:
            holders[email].add(larger.record_person[record["record_id"]])
    assert max(len(people) for people in holders.values()) >= 3
    assert any(len(holders[e]) >= 2 for e in UNLISTED_PLACEHOLDER_EMAILS)


@pytest.fixture(scope="module")
def larger(tmp_path_factory: pytest.TempPathFactory) -> PersonTable:
    """A larger retailer's person table, for noise too rare to show in a small one."""
    out = tmp_path_factory.mktemp("larger")
    generate_retailer(1500, SEED, out)
    return PersonTable(out)


def test_most_customers_have_a_single_record(larger: PersonTable) -> None:
    counts = Counter(larger.record_person.values())
    single = sum(n == 1 for n in counts.values()) / len(counts)
    assert 0.55 <= single <= 0.65, single
    assert max(counts.values()) >= 5  # and a few are known to many sources


def test_spouses_share_a_family_email_or_loyalty_card(larger: PersonTable) -> None:
    holders: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in larger.persons:
        person = larger.record_person[record["record_id"]]
        email = record["email"].strip().lower()
        if email and email not in PLACEHOLDER_EMAILS | UNLISTED_PLACEHOLDER_EMAILS:
            holders["email", email].add(person)
        if record["loyalty_id"]:
            holders["loyalty_id", record["loyalty_id"]].add(person)
    shared = {kind for (kind, _), people in holders.items() if len(people) == 2}
    assert shared == {"email", "loyalty_id"}


def test_cashiers_type_the_stores_own_phone_and_stand_in_values(larger: PersonTable) -> None:
    phone_people: dict[str, set[str]] = defaultdict(set)
    for record in larger.persons:
        if record["phone"]:
            phone_people[_digits(record["phone"])].add(larger.record_person[record["record_id"]])
    # A store's landline (Moscow 495...) typed for several unrelated customers.
    assert any(len(people) >= 3 and phone.startswith("495")
               for phone, people in phone_people.items())
    placeholders = {"9999999999", "9000000000", "9123456789", "9001234567", "9111111111",
                    "9160000001"}
    assert placeholders & set(phone_people)
    births = Counter(r["date_of_birth"] for r in larger.persons)
    assert births["1900-01-01"] >= 2


def test_identifiers_carry_typos(larger: PersonTable) -> None:
    def one_key_apart(a: str, b: str) -> bool:
        if len(a) != len(b) or a == b:
            return False
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])

    typos = Counter()
    for records in larger.records_by_person().values():
        for kind, clean in (("phone", _digits), ("loyalty_id", str)):
            values = {clean(r[kind]) for r in records if r[kind]}
            typos[kind] += any(one_key_apart(a, b) for a in values for b in values)
    assert typos["phone"] >= 1 and typos["loyalty_id"] >= 1, typos


def test_names_come_with_patronymics_full_names_and_the_wrong_layout(
        larger: PersonTable) -> None:
    full_names = [r for r in larger.persons
                  if not r["last_name"] and len(r["first_name"].split()) == 3]
    patronymics = [r for r in larger.persons if r["last_name"] and re.fullmatch(
        r"[А-ЯЁа-яё]+ [А-ЯЁа-яё]+(вич|вна|ична|ич)", r["first_name"], re.IGNORECASE)]
    assert full_names and patronymics
    wrong_layout = 0
    for records in larger.records_by_person().values():
        cyrillic = {r["first_name"].casefold() for r in records}
        wrong_layout += any(
            re.fullmatch(r"[A-Za-z;\[\]',.`]+", r["first_name"])
            and r["first_name"].lower().translate(FROM_WRONG_LAYOUT) in cyrillic
            for r in records)
    assert wrong_layout >= 1


def test_people_change_surname_address_and_phone(larger: PersonTable) -> None:
    female_surname = re.compile(r"[А-ЯЁ][а-яё]+(ова|ева|ёва|ина|ая)")
    phone_people: dict[str, set[str]] = defaultdict(set)
    for record in larger.persons:
        if record["phone"]:
            phone_people[_digits(record["phone"])].add(larger.record_person[record["record_id"]])
    changed = Counter()
    for records in larger.records_by_person().values():
        surnames = {r["last_name"] for r in records if female_surname.fullmatch(r["last_name"])}
        changed["surname"] += len({s[0] for s in surnames}) >= 2
        changed["postcode"] += len({r["postcode"] for r in records if r["postcode"]}) >= 2
        mobiles = {_digits(r["phone"]) for r in records if r["phone"]}
        mobiles = {m for m in mobiles if m.startswith("9") and len(phone_people[m]) == 1}
        changed["mobile"] += any(sum(x != y for x, y in zip(a, b, strict=True)) >= 5
                                 for a in mobiles for b in mobiles)
    assert min(changed.values()) >= 1 and set(changed) == {"surname", "postcode", "mobile"}, \
        changed


def test_household_members_share_a_phone(retailer: Retailer) -> None:
    phone_people: dict[str, set[str]] = defaultdict(set)
    surnames: dict[str, set[str]] = defaultdict(set)
    for record in retailer.persons:
        person = retailer.record_person[record["record_id"]]
        if record["phone"]:
            phone_people[_digits(record["phone"])].add(person)
        if re.fullmatch("[А-ЯЁ][а-яё]+", record["last_name"]):
            surnames[person].add(record["last_name"][:4])  # Иванов / Иванова
    shared = [people for people in phone_people.values() if len(people) >= 2]
    assert shared
    assert any(set.intersection(*(surnames[p] for p in people)) for people in shared)


def test_anonymous_visits_precede_identification(retailer: Retailer) -> None:
    journeys = 0
    for events in retailer.events_by_person().values():
        first_email = next((i for i, e in enumerate(events) if "email" in e["identifiers"]),
                           None)
        if first_email is None:
            continue
        linked_cookie = events[first_email]["identifiers"].get("anonymous_id")
        earlier_anonymous = [e for e in events[:first_email]
                             if set(e["identifiers"]) == {"anonymous_id"}
                             and e["identifiers"]["anonymous_id"] == linked_cookie]
        journeys += bool(earlier_anonymous)
    assert journeys >= 5


def test_some_people_stay_anonymous(retailer: Retailer) -> None:
    only_cookies = [p for p, events in retailer.events_by_person().items()
                    if all(set(e["identifiers"]) == {"anonymous_id"} for e in events)]
    assert only_cookies


def test_identifiers_arrive_progressively(retailer: Retailer) -> None:
    kinds = {"device_id", "loyalty_id", "crm_id", "phone"}
    seen = set()
    for event in retailer.events:
        if event["type"] == "identify" or event.get("event") == "App Installed":
            seen |= kinds & set(event["identifiers"])
    assert seen == kinds


def test_store_purchases_follow_email_opens(retailer: Retailer) -> None:
    store_purchases = 0
    after_open = 0
    for events in retailer.events_by_person().values():
        opens = [_parse_time(e["timestamp"]) for e in events if e.get("event") == "Email Opened"]
        for event in events:
            if event.get("event") == "Order Completed" and event["channel"] == "store":
                store_purchases += 1
                assert event["source"] == "pos-vendor"
                assert set(event["identifiers"]) <= {"loyalty_id", "phone"}
                bought = _parse_time(event["timestamp"])
                after_open += any(timedelta(0) < bought - o <= timedelta(days=2) for o in opens)
    assert store_purchases > 0
    assert after_open > 0


def test_event_log_spilled_to_disk_sorts_like_one_in_memory(tmp_path: Path) -> None:
    def fill(log: EventLog) -> list[tuple[str, bytes, float | None]]:
        rng = random.Random(3)
        for n in range(60):
            properties: dict[str, object] = {"order_id": f"o{n}", "revenue": n * 10.5}
            log.emit(f"p{n % 7:06d}", rng.randrange(0, 5 * 86_400, 3_600), "track", "store",
                     {"phone": "89161234567", "email": "ЮЛИЯ@mail.ru"},
                     event="Order Completed" if n % 2 else "Product Viewed",
                     properties=properties)
        out = [(e.person_id, e.json_line(log.timestamp(e.t).encode()), e.revenue)
               for e in log.sorted_events()]
        log.close()
        return out

    in_memory = fill(EventLog(random.Random(1), date(2026, 1, 1), 5))
    spilled = fill(EventLog(random.Random(1), date(2026, 1, 1), 5, tmp_path, spill_after=7))
    assert spilled == in_memory
    assert len(in_memory) == 60


def test_invalid_arguments_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="customers"):
        generate_retailer(0, SEED, tmp_path)
    with pytest.raises(InvalidArgument, match="days"):
        generate_retailer(10, SEED, tmp_path, days=0)

"""Unmerge, explanations and erasure in the identity graph, followed by the profile.

Across the real gRPC services on both backends: a merge and its unmerge restore both
customers exactly (identifiers, traits, events), the revoked links record who and why, the
part with most records keeps the id; erasure removes the person from identity and profile,
keeping only hashed identifiers and an audit entry without personal data.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from omnicdp.core.errors import NotFound
from omnicdp.services.identity.client import IdentityClient
from omnicdp.services.identity.store.graph import name_digest
from omnicdp.services.profile.client import EventIn, Profile, ProfileClient
from tests.store_scan import rows_as_text

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def event(message_id: str, minutes: int, traits: dict | None = None, **ids: str) -> EventIn:
    return EventIn(message_id=message_id, type="identify", channel="store", source="pos",
                   timestamp=T0 + timedelta(minutes=minutes), identifiers=ids,
                   traits=traits or {})


def eventually(read, check, seconds: float = 10.0):
    """``read()`` until ``check(value)`` holds (the profile follows identity's log)."""
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if check(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def snapshot(profile: Profile) -> tuple:
    return (sorted(profile.identifiers), profile.traits, profile.event_count)


@pytest.mark.parametrize("services", ["duckdb", "postgres"], indirect=True)
def test_merge_then_unmerge_restores_both_customers(services) -> None:
    profiles = ProfileClient(services.address(services.profile))
    identity = IdentityClient(services.address(services.identity))
    try:
        [anna1] = profiles.ingest([event("a1", 0, {"first_name": "Anna"},
                                         email="anna@mail.ru", phone="+79161110000")])
        profiles.ingest([event("a2", 1, {"city": "Kazan"}, email="anna@mail.ru")])
        [boris1] = profiles.ingest([event("b1", 2, {"first_name": "Boris"},
                                          loyalty_id="CARD-B", phone="+79162220000")])
        anna, boris = anna1.customer_id, boris1.customer_id
        before = {anna: snapshot(profiles.get_profile(anna)),
                  boris: snapshot(profiles.get_profile(boris))}
        # A cashier types Anna's e-mail on Boris's card: the two are merged, wrongly.
        [wrong] = profiles.ingest([event("w1", 3, {}, loyalty_id="CARD-B",
                                         email="anna@mail.ru")])
        assert wrong.customer_id == anna
        assert profiles.get_profile(boris).customer_id == anna

        explained = identity.explain(anna)
        boris_records = [r.record_id for r in explained.records
                         if "loyalty_id" in r.identifiers]
        result = identity.unmerge(anna, boris_records, actor="support:olga",
                                  reason="cashier typed another customer's e-mail")
        assert result.kept_customer_id == anna  # two records against two: Anna keeps hers
        assert sorted(result.moved_record_ids) == sorted(boris_records)

        # Lineage: the links that joined the parts are revoked, with who and why.
        revoked = [link for link in identity.explain(anna).links if link.revoked_at]
        assert revoked and all(link.revoked_by == "support:olga" for link in revoked)
        assert {link.rule for link in revoked} <= {"exact:email", "exact:loyalty_id"}

        new_boris = result.new_customer_id
        after_anna = eventually(lambda: profiles.get_profile(anna),
                                lambda p: p.event_count == 2)
        assert snapshot(after_anna) == before[anna]
        after_boris = profiles.get_profile(new_boris)
        assert after_boris.event_count == 2  # b1, and the wrongly linked w1
        assert set(before[boris][0]) <= set(snapshot(after_boris)[0])
        assert after_boris.traits == before[boris][1]
        # Boris's old id follows the part holding the record that founded it.
        assert profiles.get_profile(boris).customer_id == new_boris
        journey, _ = profiles.journey(new_boris)
        assert sorted(e.message_id for e in journey) == ["b1", "w1"]
        # The cashier does it again: the parts an unmerge separated stay two customers.
        [again] = profiles.ingest([event("w2", 4, {}, loyalty_id="CARD-B",
                                         email="anna@mail.ru")])
        assert again.customer_id == new_boris
        assert profiles.get_profile(anna).customer_id == anna
        assert profiles.get_profile(new_boris).event_count == 3
    finally:
        profiles.close()
        identity.close()


# Eva's values as the stores normalise them, and her birth dates on her card's forms.
EVA = ("eva@mail.ru", "79163330000", "dev-eva", "cardeva")
EVA_BIRTHS = tuple(f"1991-02-{day:02}" for day in range(1, 21))  # 20: the default threshold


@pytest.mark.parametrize("services", ["duckdb", "postgres"], indirect=True)
def test_erasure_removes_the_person_from_identity_and_profile(services) -> None:
    """Her e-mail was found a placeholder first (her card's forms gave it with 20 birth
    dates); after erasure no table of either store holds her values, her names, or the
    digests the placeholder guard kept of them."""
    profiles = ProfileClient(services.address(services.profile))
    identity = IdentityClient(services.address(services.identity))
    try:
        [first] = profiles.ingest([event("e1", 0, {"first_name": "Eva"}, email="eva@mail.ru",
                                         phone="+79163330000", loyalty_id="CARD-EVA")])
        profiles.ingest([event("e2", 1, {}, phone="+79163330000", device_id="dev-eva")])
        forms = profiles.ingest([event(f"f{i}", 2 + i, {"first_name": "Eva",
                                                         "date_of_birth": birth},
                                       email="Eva@Mail.ru", loyalty_id="card-eva")
                                 for i, birth in enumerate(EVA_BIRTHS)])
        assert {f.customer_id for f in forms} == {first.customer_id}
        assert identity.lookup("email", "eva@mail.ru") is None  # a placeholder now
        [other] = profiles.ingest([event("o1", 30, {}, email="oleg@mail.ru")])
        digests = {name_digest("first_name", "eva"),
                   *(name_digest("date_of_birth", birth) for birth in EVA_BIRTHS)}
        needles = {*EVA, '"eva"', "card-eva", "1991-02-", *digests}  # '"eva"': in JSON
        assert found_in_stores(services, needles) >= {*EVA, '"eva"', *digests}  # before
        erased = identity.erase(first.customer_id, actor="dpo", reason="erasure request 42")
        assert erased.records_erased == 2 + len(EVA_BIRTHS)

        with pytest.raises(NotFound):
            identity.get_customer(first.customer_id)
        assert identity.lookup("email", "eva@mail.ru") is None
        gone = eventually(lambda: _profile_or_none(profiles, first.customer_id),
                          lambda p: p is None)
        assert gone is None
        with pytest.raises(NotFound):
            profiles.lookup_profile("phone", "+79163330000")
        assert profiles.get_profile(other.customer_id).event_count == 1  # others untouched
        assert {e.message_id for e in profiles.all_events()} == {"o1"}
        assert found_in_stores(services, needles) == set()
        assert "oleg@mail.ru" in found_in_stores(services, {"oleg@mail.ru"})
    finally:
        profiles.close()
        identity.close()


def found_in_stores(services, needles: set[str]) -> set[str]:
    """Which of the needles some row of some table of either store holds (lower case)."""
    return {needle for _, text in rows_as_text(services.database_url, services.data_dir)
            for needle in needles if needle in text.lower()}


def _profile_or_none(profiles: ProfileClient, customer_id: str) -> Profile | None:
    try:
        return profiles.get_profile(customer_id)
    except NotFound:
        return None

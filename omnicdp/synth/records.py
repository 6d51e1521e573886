"""Source records of the person table: each source keeps the fragment of a person it would
really have, typed the way that source types it.

A CRM row is complete and mostly clean; a loyalty form is handwritten and retyped by a
cashier; a web account is spelt by its owner, often in Latin letters; a call-centre agent
types a name by ear. Every builder returns a :class:`SourceRecord` whose ``fields`` hold only
the non-empty columns.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from omnicdp.synth import geo, names
from omnicdp.synth.noise import (
    PLACEHOLDER_BIRTH_DATES,
    drop_yo,
    letter_case,
    maybe_digit_typo,
    maybe_typo,
    noisy_email,
    placeholder_email,
    placeholder_phone,
    wrong_layout,
)
from omnicdp.synth.people import Person, Phone

PERSON_COLUMNS = ("record_id", "source", "first_name", "last_name", "email", "phone",
                  "date_of_birth", "address_line", "city", "postcode", "region", "country",
                  "loyalty_id", "crm_id", "user_id")
SOURCES = ("crm", "loyalty", "web", "app", "pos", "call_center", "email_list")

# Phone styles each source tends to produce (see noise.PHONE_STYLES).
_PHONE_STYLES = {
    "crm": (("e164", 5), ("pretty", 2), ("trunk", 3)),
    "loyalty": (("trunk", 4), ("trunk_dashes", 2), ("bare", 2), ("pretty", 2)),
    "web": (("pretty", 6), ("e164", 2), ("trunk", 1), ("spaces", 1)),
    "app": (("e164", 7), ("pretty", 3)),
    "pos": (("bare", 4), ("trunk", 4), ("trunk_dashes", 1), ("trunk_pretty", 1)),
    "call_center": (("trunk", 5), ("seven", 3), ("e164", 2)),
    "email_list": (("e164", 1),),
}


@dataclass(slots=True)
class SourceRecord:
    person_id: str
    t: int  # when the source captured it (seconds from the window start)
    source: str
    fields: dict[str, str]


def phone_style(source: str, rng: random.Random) -> str:
    styles, weights = zip(*_PHONE_STYLES[source], strict=True)
    return rng.choices(styles, weights=weights)[0]


def _name(p: Person, rng: random.Random, *, p_latin: float, own_spelling: bool, p_typo: float,
          p_upper: float = 0.0, p_lower: float = 0.0, p_diminutive: float = 0.0,
          p_patronymic: float = 0.0, p_full: float = 0.0,
          p_layout: float = 0.0) -> tuple[str, str]:
    """First and last name as the source writes them. Cyrillic names may carry the
    patronymic after the first name (``Иван Петрович``), come as one full name in the
    first-name box (``Иванов Иван Петрович``, last name empty), or be typed with the keyboard
    in the Latin layout (``Bdfy``); a married woman's older records keep her maiden name."""
    surname = p.last_name
    if p.maiden_name and rng.random() < 0.4:
        surname = p.maiden_name
    if p.is_latin_only or rng.random() < p_latin:
        if own_spelling and rng.random() < 0.8 and surname == p.last_name:
            first, last = p.latin_first, p.latin_last
        elif p.is_latin_only:
            first, last = p.first_name, p.last_name
        else:
            first = names.latin_spelling(p.first_name, rng)
            last = names.latin_spelling(surname, rng)
            if rng.random() < p_diminutive and p.first_name in names.DIMINUTIVES:
                first = names.latin_spelling(names.DIMINUTIVES[p.first_name], rng)
        return (letter_case(maybe_typo(first, p_typo, rng), rng, p_upper, p_lower),
                letter_case(maybe_typo(last, p_typo, rng), rng, p_upper, p_lower))
    first, last = p.first_name, surname
    if rng.random() < p_diminutive and first in names.DIMINUTIVES:
        first = names.DIMINUTIVES[first]
    elif first in names.CYRILLIC_VARIANTS and rng.random() < 0.25:
        first = names.CYRILLIC_VARIANTS[first]
    if rng.random() < 0.6:
        first, last = drop_yo(first), drop_yo(last)
    first, last = maybe_typo(first, p_typo, rng), maybe_typo(last, p_typo, rng)
    roll = rng.random()
    if p.patronymic and roll < p_full:
        order = rng.random()
        if order < 0.6:
            first = f"{last} {first} {p.patronymic}"
        elif order < 0.8:
            first = f"{first} {p.patronymic} {last}"
        else:
            first = f"{first} {last}"
        last = ""
    elif p.patronymic and roll < p_full + p_patronymic:
        first = f"{first} {p.patronymic}"
    if rng.random() < p_layout:
        first, last = wrong_layout(first), wrong_layout(last)
    return (letter_case(first, rng, p_upper, p_lower),
            letter_case(last, rng, p_upper, p_lower))


def _date_of_birth(p: Person, rng: random.Random, p_placeholder: float = 0.0) -> str:
    if rng.random() < p_placeholder:  # the form demanded one
        return rng.choice(PLACEHOLDER_BIRTH_DATES)
    born = p.date_of_birth
    if born.day <= 12 and rng.random() < 0.03:  # day and month swapped on the form
        return f"{born.year:04d}-{born.day:02d}-{born.month:02d}"
    return born.isoformat()


def _phone(phone: Phone, source: str, rng: random.Random, p_typo: float = 0.0,
           p_placeholder: float = 0.0) -> str:
    """A phone as ``source`` writes it, perhaps mistyped, perhaps a stand-in."""
    if rng.random() < p_placeholder:
        return placeholder_phone(rng)
    return maybe_digit_typo(phone.formatted(phone_style(source, rng)), p_typo, rng)


def _address(p: Person, t: int, rng: random.Random, fields: dict[str, str], latin: bool, *,
             p_line: float, p_postcode: float, p_region: float, p_country: float) -> None:
    address = p.address_at(t)
    city = address.city
    if rng.random() < p_line:
        fields["address_line"] = geo.render_address(address, rng, latin)
    fields["city"] = geo.render_city(city, rng, latin)
    if rng.random() < p_postcode:
        fields["postcode"] = address.postcode
    if rng.random() < p_region:
        fields["region"] = geo.render_region(city, latin)
    if rng.random() < p_country:
        fields["country"] = city.country


def _put(fields: dict[str, str], key: str, value: str) -> None:
    if value:
        fields[key] = value


def crm_record(p: Person, t: int, crm_id: str, rng: random.Random) -> SourceRecord:
    first, last = _name(p, rng, p_latin=0.05, own_spelling=True, p_typo=0.03, p_upper=0.05,
                        p_patronymic=0.15, p_full=0.03)
    f: dict[str, str] = {}
    _put(f, "first_name", first)
    _put(f, "last_name", last)
    if rng.random() < 0.85:
        f["email"] = noisy_email(p.email_at(t), rng, p_typo=0.02, p_upper=0.05)
    if rng.random() < 0.9:
        f["phone"] = _phone(p.phone_at_till(rng, 0.2, t), "crm", rng, p_typo=0.01)
    if rng.random() < 0.75:
        f["date_of_birth"] = _date_of_birth(p, rng, p_placeholder=0.02)
    if rng.random() < 0.75:
        _address(p, t, rng, f, latin=not names.is_cyrillic(first), p_line=0.95, p_postcode=0.9,
                 p_region=0.7, p_country=0.8)
    if p.loyalty_t is not None and p.loyalty_t <= t and rng.random() < 0.6:
        f["loyalty_id"] = p.loyalty_id
    f["crm_id"] = crm_id
    if p.signup_t is not None and p.signup_t <= t and rng.random() < 0.3:
        f["user_id"] = p.user_id
    return SourceRecord(p.person_id, t, "crm", f)


def loyalty_record(p: Person, t: int, phone: Phone, rng: random.Random) -> SourceRecord:
    """The sign-up form for a loyalty card, filled in at a store and retyped by a cashier."""
    first, last = _name(p, rng, p_latin=0.03, own_spelling=False, p_typo=0.08, p_upper=0.2,
                        p_patronymic=0.1, p_full=0.05, p_layout=0.02)
    f: dict[str, str] = {}
    _put(f, "first_name", first)
    _put(f, "last_name", last)
    if rng.random() < 0.5:
        if rng.random() < 0.3:
            f["email"] = placeholder_email(rng, p_unlisted=0.4)
        else:
            f["email"] = noisy_email(p.email_at(t), rng, p_typo=0.08, p_upper=0.15)
    if rng.random() < 0.97:
        f["phone"] = _phone(phone, "loyalty", rng, p_typo=0.04, p_placeholder=0.03)
    if rng.random() < 0.85:
        f["date_of_birth"] = _date_of_birth(p, rng, p_placeholder=0.06)
    if rng.random() < 0.6:
        f["city"] = geo.render_city(p.address_at(t).city, rng, latin=False)
    f["loyalty_id"] = p.loyalty_id
    return SourceRecord(p.person_id, t, "loyalty", f)


def web_record(p: Person, t: int, rng: random.Random) -> SourceRecord:
    first, last = _name(p, rng, p_latin=0.45, own_spelling=True, p_typo=0.02, p_lower=0.08,
                        p_diminutive=0.08, p_layout=0.02)
    f: dict[str, str] = {"first_name": first}
    if last and rng.random() < 0.85:
        f["last_name"] = last
    f["email"] = noisy_email(p.email_at(t), rng, p_typo=0.0, p_upper=0.03)
    if rng.random() < 0.45:
        f["phone"] = _phone(p.mobile_at(t), "web", rng, p_typo=0.01)
    if rng.random() < 0.25:
        f["date_of_birth"] = _date_of_birth(p, rng, p_placeholder=0.02)
    if rng.random() < 0.5:  # a delivery address
        _address(p, t, rng, f, latin=not names.is_cyrillic(first), p_line=1.0, p_postcode=0.8,
                 p_region=0.5, p_country=0.6)
    f["user_id"] = p.user_id
    return SourceRecord(p.person_id, t, "web", f)


def app_record(p: Person, t: int, rng: random.Random) -> SourceRecord:
    first, last = _name(p, rng, p_latin=0.5, own_spelling=True, p_typo=0.02, p_diminutive=0.1,
                        p_layout=0.02)
    f: dict[str, str] = {}
    if rng.random() < 0.7:
        f["first_name"] = first
        if last and rng.random() < 0.5:
            f["last_name"] = last
    if rng.random() < 0.9:
        f["email"] = noisy_email(p.email_at(t), rng, p_typo=0.0, p_upper=0.05)
    if rng.random() < 0.5:
        f["phone"] = _phone(p.mobile_at(t), "app", rng)
    if rng.random() < 0.2:
        f["city"] = geo.render_city(p.address_at(t).city, rng,
                                    latin=not names.is_cyrillic(first))
    f["user_id"] = p.user_id
    return SourceRecord(p.person_id, t, "app", f)


def email_list_record(p: Person, t: int, esp_email: str, rng: random.Random) -> SourceRecord:
    f: dict[str, str] = {}
    if rng.random() < 0.5:
        first, _ = _name(p, rng, p_latin=0.5, own_spelling=True, p_typo=0.02,
                         p_diminutive=0.15)
        f["first_name"] = first
    f["email"] = esp_email
    return SourceRecord(p.person_id, t, "email_list", f)


def pos_record(p: Person, t: int, has_card: bool, store_phone: Phone,
               rng: random.Random) -> SourceRecord:
    """Details a cashier typed on a receipt, e.g. for a delivery: sometimes the store's own
    number or a stand-in for a customer who gave none, a mistyped card number."""
    first, last = _name(p, rng, p_latin=0.05, own_spelling=False, p_typo=0.12, p_upper=0.35,
                        p_full=0.08, p_layout=0.02)
    if last and rng.random() < 0.03:  # surname typed into the first-name box
        first, last = last, first
    f: dict[str, str] = {}
    _put(f, "first_name", first)
    _put(f, "last_name", last)
    if rng.random() < 0.9:
        roll = rng.random()
        phone = store_phone if roll < 0.08 else p.phone_at_till(rng, 0.35, t)
        f["phone"] = _phone(phone, "pos", rng, p_typo=0.05, p_placeholder=0.04)
    if rng.random() < 0.4:
        if rng.random() < 0.45:
            f["email"] = placeholder_email(rng, p_unlisted=0.4)
        else:
            f["email"] = noisy_email(p.email_at(t), rng, p_typo=0.1, p_upper=0.3)
    if rng.random() < 0.6:
        _address(p, t, rng, f, latin=False, p_line=1.0, p_postcode=0.4, p_region=0.2,
                 p_country=0.0)
    if has_card and rng.random() < 0.7:
        f["loyalty_id"] = maybe_digit_typo(p.loyalty_id, 0.03, rng)
    return SourceRecord(p.person_id, t, "pos", f)


def call_center_record(p: Person, t: int, caller_phone: str, crm_id: str | None,
                       rng: random.Random) -> SourceRecord:
    """What an agent typed during a call: the caller's number and a name heard on the line."""
    first, last = _name(p, rng, p_latin=0.2, own_spelling=False, p_typo=0.15, p_full=0.1)
    f: dict[str, str] = {"first_name": first}
    if last and rng.random() < 0.7:
        f["last_name"] = last
    if rng.random() < 0.1:
        f["email"] = noisy_email(p.email_at(t), rng, p_typo=0.2, p_upper=0.0)
    f["phone"] = caller_phone
    if rng.random() < 0.4:
        f["city"] = geo.render_city(p.address_at(t).city, rng, latin=False)
    if crm_id is not None:
        f["crm_id"] = crm_id
    return SourceRecord(p.person_id, t, "call_center", f)

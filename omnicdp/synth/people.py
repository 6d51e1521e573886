"""The true people of the synthetic retailer: who they are, where they live, which numbers and
addresses they own, and when each relationship with the retailer begins.

Times are whole seconds from the start of the simulated window (UTC midnight); a negative
time means the relationship began before the window (an existing customer). ``None`` means
never.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TypeVar

from omnicdp.synth import geo, names
from omnicdp.synth.noise import format_phone
from omnicdp.synth.timeline import DAY, LONG_AGO, latest, poisson

_COUNTRY_WEIGHTS = {"RU": 0.955, "KZ": 0.015, "BY": 0.015, "DE": 0.015}
_EMAIL_DOMAINS = {
    "RU": (("mail.ru", 30), ("yandex.ru", 20), ("gmail.com", 20), ("bk.ru", 5), ("list.ru", 5),
           ("inbox.ru", 5), ("rambler.ru", 5), ("ya.ru", 4), ("icloud.com", 3)),
    "KZ": (("mail.ru", 40), ("gmail.com", 40), ("mail.kz", 20)),
    "BY": (("mail.ru", 30), ("gmail.com", 40), ("tut.by", 30)),
    "DE": (("gmail.com", 40), ("gmx.de", 30), ("web.de", 30)),
}
ONE_OFF_SHARE = 0.55
_NICKNAMES = ("kotik", "solnyshko", "zaya", "lucky", "happy", "star", "dark", "angel", "max",
              "tigr", "lisa", "sunny", "pro", "best")


@dataclass(frozen=True, slots=True)
class Phone:
    country: str
    national: str  # national significant number, digits only

    def formatted(self, style: str) -> str:
        return format_phone(self.country, self.national, style)


@dataclass(slots=True)
class Household:
    household_id: int
    address: geo.Address
    surname: str  # male form; members use the form of their sex
    shared_phone: Phone  # a landline, or the head's mobile that the family gives at the till
    size: int


@dataclass(slots=True)
class Person:
    person_id: str
    sex: str  # "m" | "f"
    first_name: str  # as written in the person's own language
    last_name: str
    country: str
    date_of_birth: date
    address: geo.Address
    mobile: Phone
    household: Household | None
    emails: list[tuple[int, str]]  # (in use from, address), oldest first
    user_id: str
    loyalty_id: str
    crm_ids: list[str]
    device_id: str
    platform: str  # "ios" | "android"
    latin_first: str = ""  # how the person spells their own name in Latin letters
    latin_last: str = ""
    patronymic: str = ""  # Cyrillic names only
    maiden_name: str = ""  # a married woman's surname before marriage, still in old records
    # Changes during or before the window: (since, value), oldest first, after the first.
    moves: list[tuple[int, geo.Address]] = field(default_factory=list)
    phone_changes: list[tuple[int, Phone]] = field(default_factory=list)
    one_off: bool = False  # known to one source only, once (most of a real customer base)
    # Lifecycle
    anonymous_only: bool = False
    first_visit_t: int | None = None
    signup_t: int | None = None
    app_t: int | None = None
    loyalty_t: int | None = None
    crm_t: int | None = None
    newsletter_t: int | None = None
    footer_subscriber: bool = False
    store_shopper: bool = False
    push_opt_in: bool = False
    sms_opt_in: bool = False
    messenger: bool = False
    call_times: list[int] = field(default_factory=list)
    # Behaviour: baseline rates per day and responsiveness to marketing
    online_rate: float = 0.0
    store_rate: float = 0.0
    visit_rate: float = 0.0
    ad_rate: float = 0.0
    open_p: float = 0.0
    click_p: float = 0.0
    push_open_p: float = 0.0
    responsiveness: float = 1.0

    def email_at(self, t: int) -> str:
        return latest(self.emails, t)

    def mobile_at(self, t: int) -> Phone:
        return _in_force(self.mobile, self.phone_changes, t)

    def address_at(self, t: int) -> geo.Address:
        return _in_force(self.address, self.moves, t)

    def phone_at_till(self, rng: random.Random, p_shared: float, t: int) -> Phone:
        """The number given to a cashier or an agent: one's own mobile, or the family one."""
        if self.household is not None and rng.random() < p_shared:
            return self.household.shared_phone
        return self.mobile_at(t)

    @property
    def is_latin_only(self) -> bool:
        return not names.is_cyrillic(self.first_name)


_T = TypeVar("_T")


def _in_force(first: _T, changes: list[tuple[int, _T]], t: int) -> _T:
    current = first
    for since, value in changes:
        if since <= t:
            current = value
    return current


class IdFactory:
    """Unique, random-looking identifiers drawn from the generator's own random stream."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def claim(self, value: str) -> bool:
        """Reserve ``value``; False when it is already taken."""
        if value in self._used:
            return False
        self._used.add(value)
        return True

    def unique(self, make: Callable[[random.Random], str]) -> str:
        while True:
            value = make(self._rng)
            if self.claim(value):
                return value

    def uuid(self, upper: bool = False) -> str:
        def make(rng: random.Random) -> str:
            h = f"{rng.getrandbits(128):032x}"
            variant = "89ab"[int(h[16], 16) % 4]
            text = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"
            return text.upper() if upper else text
        return self.unique(make)

    def hex(self, digits: int, prefix: str = "") -> str:
        return self.unique(lambda rng: f"{prefix}{rng.getrandbits(4 * digits):0{digits}x}")

    def digits(self, count: int, prefix: str = "") -> str:
        return self.unique(lambda rng: f"{prefix}{rng.randrange(10 ** count):0{count}d}")


def generate_people(count: int, start: date, days: int, rng: random.Random, ids: IdFactory,
                    progress: Callable[[int], None] | None = None) -> list[Person]:
    """``count`` people, some of them in households of 2-4 sharing surname, address and a
    phone, each with a lifecycle inside a window of ``days`` days."""
    people: list[Person] = []
    household_id = 0
    while len(people) < count:
        remaining = count - len(people)
        size = 1
        if remaining >= 2 and rng.random() < 0.16:
            size = min(rng.choice((2, 2, 2, 3, 3, 4)), remaining)
        country = rng.choices(tuple(_COUNTRY_WEIGHTS), weights=tuple(_COUNTRY_WEIGHTS.values()))[0]
        city = geo.pick_city(rng, country)
        address = geo.random_address(rng, city)
        surname = _pick_surname(rng, country)
        head_mobile = _mobile(rng, ids, country)
        household = None
        if size > 1:
            household_id += 1
            shared = landline(rng, ids, city) if rng.random() < 0.5 else head_mobile
            household = Household(household_id, address, surname, shared, size)
        head_age = rng.triangular(20, 75, 38)
        head_sex = rng.choice("mf")
        for member in range(size):
            if member == 0:
                sex = head_sex
            elif member == 1:  # a partner
                sex = "f" if head_sex == "m" else "m"
            else:
                sex = rng.choice("mf")
            age = _member_age(rng, head_age, member)
            mobile = head_mobile if member == 0 else _mobile(rng, ids, country)
            person = _make_person(len(people) + 1, sex, age, country, address, surname, mobile,
                                  household, start, days, rng, ids)
            if member == 1:
                _share_with_partner(people[-1], person, rng)
            people.append(person)
            if progress is not None:
                progress(len(people))
    return people


def _share_with_partner(head: Person, partner: Person, rng: random.Random) -> None:
    """Spouses often share a family mailbox and one loyalty card (the second holder of a
    family card), so neither identifies one person alone."""
    if rng.random() < 0.25:
        partner.emails[0] = head.emails[0]
    if rng.random() < 0.3:
        partner.loyalty_id = head.loyalty_id


def _member_age(rng: random.Random, head_age: float, member: int) -> float:
    if member == 0:
        return head_age
    if member == 1:
        return max(18.0, head_age + rng.uniform(-6, 6))
    if head_age >= 42:
        return max(18.0, head_age - rng.uniform(20, 30))
    return head_age + rng.uniform(22, 30)


def _pick_surname(rng: random.Random, country: str) -> str:
    if country == "DE":
        return rng.choice(names.DE_SURNAMES)
    if country == "KZ" and rng.random() < 0.7:
        return rng.choice(names.KZ_SURNAMES)
    return rng.choices(names.SURNAMES, weights=_SURNAME_WEIGHTS)[0]


_SURNAME_WEIGHTS = names.zipf_weights(len(names.SURNAMES))
_MALE_WEIGHTS = names.zipf_weights(len(names.MALE_FIRST), offset=3)
_FEMALE_WEIGHTS = names.zipf_weights(len(names.FEMALE_FIRST), offset=3)


def _pick_first_name(rng: random.Random, country: str, sex: str) -> str:
    if country == "DE":
        return rng.choice(names.DE_MALE_FIRST if sex == "m" else names.DE_FEMALE_FIRST)
    if country == "KZ" and rng.random() < 0.7:
        return rng.choice(names.KZ_MALE_FIRST if sex == "m" else names.KZ_FEMALE_FIRST)
    if sex == "m":
        return rng.choices(names.MALE_FIRST, weights=_MALE_WEIGHTS)[0]
    return rng.choices(names.FEMALE_FIRST, weights=_FEMALE_WEIGHTS)[0]


def _mobile(rng: random.Random, ids: IdFactory, country: str) -> Phone:
    if country == "RU":
        code = rng.choice(geo.RU_MOBILE_CODES)
    else:
        code = rng.choice(geo.FOREIGN_MOBILE_CODES[country])
    rest = geo.NATIONAL_DIGITS[country] - len(code)
    return Phone(country, ids.digits(rest, prefix=code))


def landline(rng: random.Random, ids: IdFactory, city: geo.City) -> Phone:
    code = city.landline_code
    digits = geo.NATIONAL_DIGITS[city.country] - len(code)
    if city.country == "DE":
        digits -= 1
    return Phone(city.country, ids.digits(digits, prefix=code))


def _make_person(number: int, sex: str, age: float, country: str, address: geo.Address,
                 surname: str, mobile: Phone, household: Household | None, start: date,
                 days: int, rng: random.Random, ids: IdFactory) -> Person:
    first = _pick_first_name(rng, country, sex)
    last = names.female_surname(surname) if sex == "f" and country != "DE" else surname
    born = start - timedelta(days=int(age * 365.25) + rng.randrange(365))
    person = Person(
        person_id=f"p{number:06d}", sex=sex, first_name=first, last_name=last,
        country=country, date_of_birth=born, address=address, mobile=mobile,
        household=household, emails=[], user_id=ids.digits(7, prefix="u"),
        loyalty_id=ids.digits(9, prefix="2775"), crm_ids=[ids.digits(8, prefix="CRM-")],
        device_id="", platform=rng.choice(("ios", "ios", "android", "android", "android")),
    )
    if names.is_cyrillic(first):
        person.latin_first = names.latin_spelling(first, rng)
        person.latin_last = names.latin_spelling(last, rng)
        person.patronymic = names.patronymic(
            rng.choices(names.MALE_FIRST, weights=_MALE_WEIGHTS)[0], sex)
        if sex == "f" and household is not None and age > 22 and rng.random() < 0.35:
            # Took her husband's surname; her older records keep her own.
            person.maiden_name = names.female_surname(_pick_surname(rng, country))
    else:
        person.latin_first, person.latin_last = first, last
    # Moves and new numbers, mostly inside the window, so that records before and after
    # the change disagree.
    if rng.random() < 0.1:
        moved = geo.random_address(rng, geo.pick_city(rng, country)
                                   if rng.random() < 0.3 else address.city)
        person.moves.append((rng.randrange(-60 * DAY, days * DAY * 9 // 10), moved))
    if rng.random() < 0.08:
        person.phone_changes.append((rng.randrange(-60 * DAY, days * DAY * 9 // 10),
                                     _mobile(rng, ids, country)))
    person.device_id = ids.uuid(upper=True) if person.platform == "ios" else ids.hex(16)
    person.emails.append((LONG_AGO, _email(person, rng, ids, person.maiden_name)))
    _lifecycle(person, days * DAY, rng, ids)
    return person


def _email(person: Person, rng: random.Random, ids: IdFactory, surname: str = "") -> str:
    first = names.transliterate(person.first_name, "informal").lower().replace(" ", "")
    last = names.transliterate(surname or person.last_name, "informal").lower().replace(" ",
                                                                                          "")
    first = first.replace("ü", "ue").replace("ö", "oe").replace("ä", "ae")
    last = last.replace("ü", "ue").replace("ö", "oe").replace("ä", "ae")
    year = person.date_of_birth.year
    domains, weights = zip(*_EMAIL_DOMAINS[person.country], strict=True)
    domain = rng.choices(domains, weights=weights)[0]
    pattern = rng.randrange(7)

    def make(r: random.Random) -> str:
        local = (
            f"{first}.{last}", f"{first}{last}{r.randrange(100)}", f"{first[0]}{last}",
            f"{last}{year % 100:02d}", f"{first}_{year}",
            f"{r.choice(_NICKNAMES)}{r.randrange(1000)}", f"{first}{r.randrange(10, 10000)}",
        )[pattern]
        return f"{local}@{domain}"

    candidate = make(rng)
    while not ids.claim(candidate):  # ivan.ivanov@mail.ru is taken: add digits
        candidate = f"{first}{last}{rng.randrange(100_000)}@{domain}"
    return candidate


def _lifecycle(p: Person, window: int, rng: random.Random, ids: IdFactory) -> None:
    """When the person first visits the site, signs up, installs the app, gets a loyalty card,
    lands in the CRM, subscribes to e-mails; and how often they buy and respond."""
    r = rng.random
    p.anonymous_only = r() < 0.08
    existing = not p.anonymous_only and r() < 0.4
    web_user = not p.anonymous_only and r() < 0.68
    p.store_shopper = not p.anonymous_only and (r() < 0.55 or not web_user)
    # Most of a real customer base is known to one source, once: an online sign-up or a
    # store's card or receipt, and nothing else.
    p.one_off = not p.anonymous_only and r() < ONE_OFF_SHARE
    if p.one_off:
        web_user = r() < 0.45
        p.store_shopper = not web_user

    def before_window(max_days: int) -> int:
        return -rng.randrange(DAY, max_days * DAY)

    if p.anonymous_only:
        p.first_visit_t = rng.randrange(0, int(window * 0.9))
    elif web_user:
        if existing:
            p.signup_t = before_window(720)
        else:
            p.signup_t = rng.randrange(DAY, int(window * 0.85))
            first_visit = p.signup_t - rng.randrange(DAY // 5, 21 * DAY)
            p.first_visit_t = first_visit if first_visit >= 0 else rng.randrange(p.signup_t)
    elif r() < 0.4:
        p.first_visit_t = rng.randrange(0, window)

    if p.store_shopper and r() < 0.75:
        p.loyalty_t = before_window(1000) if existing else rng.randrange(0, int(window * 0.85))
    if p.signup_t is not None and r() < 0.35:
        if existing and r() < 0.5:
            p.app_t = before_window(360)
        else:
            p.app_t = max(p.signup_t, 0) + rng.randrange(DAY, 90 * DAY)
            p.app_t = p.app_t if p.app_t < window else None
    if p.signup_t is not None and r() < 0.7:
        p.newsletter_t = p.signup_t + 60
    elif p.first_visit_t is not None and not p.anonymous_only and r() < 0.3:
        p.footer_subscriber = True
        p.newsletter_t = rng.randrange(p.first_visit_t, window)
    known_since = [t for t in (p.signup_t, p.loyalty_t) if t is not None]
    if p.one_off:
        p.app_t = None
        if p.loyalty_t is not None:
            p.footer_subscriber, p.newsletter_t = False, None
    elif known_since and r() < 0.6:
        crm_t = min(known_since) + rng.randrange(DAY, 14 * DAY)
        p.crm_t = crm_t if crm_t < window else None
        if p.crm_t is not None and r() < 0.04:  # a duplicate CRM row
            p.crm_ids.append(ids.digits(8, prefix="CRM-"))
    if known_since and not p.one_off:
        start = max(0, min(known_since))
        p.call_times = sorted(rng.randrange(start, window) for _ in range(poisson(rng, 0.5)))
    if known_since and not p.one_off and r() < 0.12:  # a new mailbox
        since = rng.randrange(-200 * DAY, int(window * 0.8))
        p.emails.append((since, _email(p, rng, ids)))

    p.push_opt_in = p.app_t is not None and r() < 0.65
    p.sms_opt_in = p.loyalty_t is not None and r() < 0.6
    p.messenger = (p.loyalty_t is not None or p.crm_t is not None) and r() < 0.12
    if web_user:
        p.online_rate = rng.gammavariate(0.7, 1 / 0.7) * 1.4 / 180
        p.visit_rate = rng.gammavariate(1.2, 1 / 1.2) * 6 / 180
    elif p.first_visit_t is not None:
        p.visit_rate = rng.gammavariate(1.2, 1 / 1.2) * 3 / 180
    if p.store_shopper:
        p.store_rate = rng.gammavariate(0.8, 1 / 0.8) * 1.6 / 180
    if p.first_visit_t is not None or p.signup_t is not None:
        p.ad_rate = rng.gammavariate(1.0, 1.0) * 6 / 180
    p.open_p = rng.betavariate(1.5, 4)
    p.click_p = rng.betavariate(1.5, 6)
    p.push_open_p = rng.betavariate(1.2, 8)
    p.responsiveness = rng.lognormvariate(0, 0.5)


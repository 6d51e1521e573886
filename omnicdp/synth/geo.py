"""Cities, postcodes, phone codes and street addresses, and the many ways an address is typed.

Postcode ranges and dialling codes are the real ones for each city, so that generated
records look like what a retailer's CRM holds; streets are the names every Russian city has.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from omnicdp.synth.names import transliterate


@dataclass(frozen=True)
class City:
    name: str  # as written in Russian (or the local language)
    latin: tuple[str, ...]  # Latin spellings seen in forms
    region: str
    region_latin: str
    country: str  # ISO 3166-1 alpha-2
    postcode_range: tuple[int, int]
    postcode_digits: int
    landline_code: str  # area code inside the national number
    weight: float


RU_CITIES = (
    City("Москва", ("Moscow", "Moskva"), "Москва", "Moscow", "RU", (101000, 129343), 6,
         "495", 30),
    City("Санкт-Петербург", ("Saint Petersburg", "St. Petersburg", "Sankt-Peterburg"),
         "Санкт-Петербург", "Saint Petersburg", "RU", (190000, 199406), 6, "812", 14),
    City("Казань", ("Kazan",), "Республика Татарстан", "Tatarstan", "RU", (420000, 420140), 6,
         "843", 5),
    City("Новосибирск", ("Novosibirsk",), "Новосибирская область", "Novosibirsk Oblast", "RU",
         (630000, 630132), 6, "383", 5),
    City("Екатеринбург", ("Yekaterinburg", "Ekaterinburg"), "Свердловская область",
         "Sverdlovsk Oblast", "RU", (620000, 620149), 6, "343", 5),
    City("Нижний Новгород", ("Nizhny Novgorod", "Nizhniy Novgorod"), "Нижегородская область",
         "Nizhny Novgorod Oblast", "RU", (603000, 603163), 6, "831", 4),
    City("Самара", ("Samara",), "Самарская область", "Samara Oblast", "RU", (443000, 443125), 6,
         "846", 3),
    City("Ростов-на-Дону", ("Rostov-on-Don", "Rostov-na-Donu"), "Ростовская область",
         "Rostov Oblast", "RU", (344000, 344113), 6, "863", 3),
    City("Краснодар", ("Krasnodar",), "Краснодарский край", "Krasnodar Krai", "RU",
         (350000, 350089), 6, "861", 3),
    City("Челябинск", ("Chelyabinsk",), "Челябинская область", "Chelyabinsk Oblast", "RU",
         (454000, 454139), 6, "351", 3),
    City("Уфа", ("Ufa",), "Республика Башкортостан", "Bashkortostan", "RU", (450000, 450112),
         6, "347", 3),
    City("Пермь", ("Perm",), "Пермский край", "Perm Krai", "RU", (614000, 614113), 6, "342", 2),
    City("Воронеж", ("Voronezh",), "Воронежская область", "Voronezh Oblast", "RU",
         (394000, 394088), 6, "473", 2),
    City("Красноярск", ("Krasnoyarsk",), "Красноярский край", "Krasnoyarsk Krai", "RU",
         (660000, 660135), 6, "391", 2),
    City("Омск", ("Omsk",), "Омская область", "Omsk Oblast", "RU", (644000, 644123), 6, "3812",
         2),
)
FOREIGN_CITIES = {
    "KZ": City("Алматы", ("Almaty",), "Алматы", "Almaty", "KZ", (50000, 50063), 6, "727", 1),
    "BY": City("Минск", ("Minsk",), "Минск", "Minsk", "BY", (220000, 220141), 6, "17", 1),
    "DE": City("Berlin", ("Berlin",), "Berlin", "Berlin", "DE", (10115, 14199), 5, "30", 1),
}
RU_MOBILE_CODES = (
    "903", "905", "906", "909", "910", "911", "912", "915", "916", "917", "919", "920", "921",
    "925", "926", "929", "950", "952", "953", "960", "961", "963", "964", "965", "977", "981",
    "985", "987", "999",
)
FOREIGN_MOBILE_CODES = {"KZ": ("701", "705", "707", "747", "777"), "BY": ("29", "33", "44"),
                        "DE": ("151", "160", "170", "176")}
NATIONAL_DIGITS = {"RU": 10, "KZ": 10, "BY": 9, "DE": 11}

# (street kind, name in Russian)
STREETS = (
    ("ул", "Ленина"), ("ул", "Мира"), ("ул", "Гагарина"), ("ул", "Советская"),
    ("ул", "Пушкина"), ("ул", "Садовая"), ("ул", "Лесная"), ("ул", "Школьная"),
    ("ул", "Молодёжная"), ("ул", "Центральная"), ("ул", "Набережная"), ("ул", "Октябрьская"),
    ("ул", "Заречная"), ("ул", "Кирова"), ("ул", "Чехова"), ("ул", "Льва Толстого"),
    ("ул", "Профсоюзная"), ("ул", "Новая"), ("ул", "Строителей"), ("ул", "Карла Маркса"),
    ("пр", "Ленинский"), ("пр", "Мира"), ("пр", "Победы"), ("пр", "Комсомольский"),
    ("пер", "Озёрный"), ("пер", "Северный"), ("бр", "Цветной"), ("бр", "Приморский"),
    ("ш", "Энтузиастов"), ("ш", "Варшавское"),
)
DE_STREETS = ("Friedrichstraße", "Hauptstraße", "Schillerstraße", "Bergmannstraße",
              "Kantstraße", "Torstraße")
_KIND_CYRILLIC = {
    "ул": ("ул.", "улица", "ул"), "пр": ("пр-т", "проспект", "пр.", "просп."),
    "пер": ("пер.", "переулок"), "бр": ("б-р", "бульвар"), "ш": ("ш.", "шоссе"),
}
_KIND_LATIN = {
    "ул": ("ul.", "ulitsa", "str."), "пр": ("pr-t", "prospekt", "pr."),
    "пер": ("per.", "pereulok"), "бр": ("b-r", "bulvar"), "ш": ("sh.", "shosse"),
}


@dataclass(frozen=True)
class Address:
    city: City
    postcode: str
    street_kind: str  # a key of _KIND_CYRILLIC, or "" abroad
    street: str
    house: int
    building: int | None  # корпус
    flat: int | None


def pick_city(rng: random.Random, country: str = "RU") -> City:
    if country != "RU":
        return FOREIGN_CITIES[country]
    return rng.choices(RU_CITIES, weights=[c.weight for c in RU_CITIES])[0]


def random_address(rng: random.Random, city: City) -> Address:
    low, high = city.postcode_range
    postcode = str(rng.randint(low, high)).zfill(city.postcode_digits)
    if city.country == "DE":
        return Address(city, postcode, "", rng.choice(DE_STREETS), rng.randint(1, 120), None,
                       None)
    kind, street = rng.choice(STREETS)
    building = rng.randint(1, 5) if rng.random() < 0.2 else None
    flat = rng.randint(1, 320) if rng.random() < 0.85 else None
    return Address(city, postcode, kind, street, rng.randint(1, 150), building, flat)


def render_address(address: Address, rng: random.Random, latin: bool) -> str:
    """One way of typing the street address: ``ул. Ленина, д. 5, кв. 12``, ``улица Ленина,
    дом 5, квартира 12``, ``Ленина 5-12``, ``ul. Lenina, d. 5, kv. 12`` ..."""
    if address.city.country == "DE":
        return f"{address.street} {address.house}"
    street = transliterate(address.street, "bgn") if latin else address.street
    kinds = _KIND_LATIN if latin else _KIND_CYRILLIC
    if rng.random() < 0.15:  # terse: "Ленина 5-12"
        flat = f"-{address.flat}" if address.flat else ""
        building = f"к{address.building}" if address.building else ""
        return f"{street} {address.house}{building}{flat}"
    kind = rng.choice(kinds[address.street_kind])
    head = f"{street} {kind}" if rng.random() < 0.1 else f"{kind} {street}"
    house_word = rng.choice(("d. ", "dom ", "d.")) if latin else rng.choice(("д. ", "дом ", "д."))
    parts = [head, f"{house_word}{address.house}"]
    if address.building:
        word = rng.choice(("k. ", "korp. ")) if latin else rng.choice(("к. ", "корп. ", "корпус "))
        parts.append(f"{word}{address.building}")
    if address.flat:
        word = rng.choice(("kv. ", "apt. ")) if latin else rng.choice(("кв. ", "квартира ", "кв "))
        parts.append(f"{word}{address.flat}")
    return ", ".join(parts)


def render_city(city: City, rng: random.Random, latin: bool) -> str:
    if latin or city.country == "DE":
        return rng.choice(city.latin)
    return rng.choice((city.name, city.name, city.name, f"г. {city.name}"))


def render_region(city: City, latin: bool) -> str:
    return city.region_latin if latin else city.region

"""What the model compares: one record's columns reduced to keys that mean the same thing
however the person, a cashier or a call-centre agent typed them.

- **Names** are folded to one Latin spelling: Cyrillic is transliterated and the spelling
  systems in use (ICAO, BGN/PCGN, informal: Юлия, Iuliia, Yuliya, Julia) collapse to the same
  key; a diminutive folds to its full name (Саша -> Александр); text typed with the keyboard
  left in the Latin layout is read back (Bdfy -> Иван); patronymics are dropped and a full
  name typed into the first-name box is split. ``last_stem`` drops the sex of a surname
  (Иванов / Иванова, Вишневский / Вишневская).
- **Date of birth** ``YYYY-MM-DD``; placeholders (1900-01-01) are missing values.
- **E-mail and phone** normalised as the identity service does (placeholders dropped);
  ``email_local`` is the mailbox name, for the same mailbox at a mistyped domain.
- **Address**: street, house and flat as one key; postcode; city folded.

:func:`record_features` reads one record (a mapping of the person table's columns) and is
what the batch and an online resolver both use, so that a record scores the same either way.
"""

from __future__ import annotations

import atexit
import functools
import math
import multiprocessing
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from omnicdp.core.errors import InvalidArgument
from omnicdp.core.identifiers import normalize_identifier
from omnicdp.services.identity.linkage.namelists import DIMINUTIVES, OTHER_FIRST_NAMES

#: The columns :func:`record_features` returns (all strings or ``None``).
FEATURE_COLUMNS = (
    "first", "first_canon", "last", "last_stem", "dob", "email", "email_local", "phone",
    "address", "postcode", "city", "user_id", "loyalty_id", "crm_id",
)
#: Blocking keys: records that share one are compared. A store indexes these.
BLOCKING_KEYS = ("bk_name_city", "bk_dob_last", "bk_dob_first", "bk_phone", "bk_phone_head",
                 "bk_email_local", "bk_address")

#: Records from which a table's features are computed by worker processes.
PARALLEL_RECORDS = 20_000
PLACEHOLDER_BIRTH_DATES = frozenset({"1900-01-01", "1901-01-01", "2000-01-01", "1970-01-01"})

_CYRILLIC = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "iu", "я": "ia",
    "і": "i", "ў": "u", "ә": "a", "ғ": "g", "қ": "k", "ң": "n", "ө": "o", "ұ": "u", "ү": "u",
    "һ": "h",
}
# Multi-letter spellings of one sound, longest first.
_FOLDS = (("shch", "sh"), ("sch", "sh"), ("tch", "ch"), ("kh", "h"), ("zh", "z"),
          ("tz", "c"), ("ts", "c"), ("x", "ks"), ("ph", "f"), ("w", "v"), ("ck", "k"),
          ("q", "k"), ("ou", "u"))
_VOWELS = frozenset("aeiou")
_NOT_LETTERS = re.compile(r"[^a-z]+")

# A US keyboard's keys under a Russian layout: "Bdfy" is Иван typed in the wrong layout.
_LATIN_KEYS = "qwertyuiop[]asdfghjkl;'zxcvbnm,.`"
_CYRILLIC_KEYS = "йцукенгшщзхъфывапролджэячсмитьбюё"
_FROM_WRONG_LAYOUT = str.maketrans(
    {**dict(zip(_LATIN_KEYS, _CYRILLIC_KEYS, strict=True)),
     **{lat.upper(): cyr.upper() for lat, cyr in zip(_LATIN_KEYS, _CYRILLIC_KEYS, strict=True)
        if lat.isalpha()}})
_LAYOUT_ONLY = frozenset("[];',.`")
_SURNAME_ENDINGS = ("ов", "ев", "ёв", "ин", "ын", "ова", "ева", "ёва", "ина", "ына", "ский",
                    "ская", "цкий", "цкая", "енко", "ук")
_PATRONYMIC_ENDINGS = ("vich", "vna", "ichna")
_PATRONYMICS = frozenset({"ilich", "nikitich", "kuzmich", "fomich", "lukich"})

_ADDRESS_WORDS = frozenset({
    "ул", "улица", "ul", "ulitsa", "ulica", "str", "пр", "пр-т", "просп", "проспект", "pr",
    "pr-t", "prospekt", "пер", "переулок", "per", "pereulok", "б-р", "бульвар", "b-r",
    "bulvar", "ш", "шоссе", "sh", "shosse", "д", "дом", "d", "dom", "к", "корп", "корпус",
    "k", "korp", "кв", "квартира", "kv", "apt", "г", "город",
})
_ADDRESS_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


@functools.lru_cache(maxsize=100_000)
def fold(text: str) -> str:
    """One Latin spelling for a name however it was written (``Юлия``, ``Iuliia``,
    ``Yuliya`` and ``Julia`` all give ``ulia``); empty for text without letters."""
    text = unicodedata.normalize("NFKD", text.casefold())
    latin = "".join(_CYRILLIC.get(ch, ch) for ch in text if not unicodedata.combining(ch))
    latin = _NOT_LETTERS.sub("", latin)
    for spelling, sound in _FOLDS:
        latin = latin.replace(spelling, sound)
    latin = latin.replace("y", "i").replace("j", "i")
    latin = _collapse_doubles(latin)
    latin = latin.replace("io", "e").replace("ie", "e")
    # Iotation (Ю = iu, Я = ia) at the start of a name or after a vowel is dropped:
    # Iulia / Yulia / Julia -> ulia, Mariia / Mariya / Maria -> maria.
    out = []
    for i, ch in enumerate(latin):
        if (ch == "i" and i + 1 < len(latin) and latin[i + 1] in _VOWELS
                and (i == 0 or latin[i - 1] in _VOWELS)):
            continue
        out.append(ch)
    return _collapse_doubles("".join(out))


def _collapse_doubles(text: str) -> str:
    out = []
    for ch in text:
        if not out or out[-1] != ch:
            out.append(ch)
    return "".join(out)


_DIMINUTIVE_OF = {fold(short): fold(full) for full, shorts in DIMINUTIVES.items()
                  for short in shorts}
_FIRST_NAMES = frozenset(fold(n) for n in (*DIMINUTIVES, *OTHER_FIRST_NAMES)) | frozenset(
    _DIMINUTIVE_OF)


def canonical_first(folded: str) -> str:
    """The full name a folded first name stands for (``sasha`` -> ``aleksandr``)."""
    return _DIMINUTIVE_OF.get(folded, folded)


def surname_stem(folded: str) -> str:
    """A folded surname without the ending that marks its sex: ``ivanova`` and ``ivanov``
    give ``ivanov``; Вишневская and Вишневский (``vishnevska``, ``vishnevski``) give
    ``vishnevsk``; Толстая and Толстой give ``tolst``."""
    if folded.endswith(("ova", "eva", "ina", "ska", "cka", "ski", "cki")):
        return folded[:-1]
    if folded.endswith("oi"):
        return folded[:-2]
    if folded.endswith("a") and len(folded) > 4:
        return folded[:-1]
    return folded


@functools.lru_cache(maxsize=100_000)
def fix_layout(token: str) -> str:
    """``token`` read back as Cyrillic when it was typed with the keyboard in the Latin
    layout (``Bdfy`` -> ``Иван``, ``Gtnhjdf`` -> ``Петрова``); otherwise unchanged."""
    if not token.isascii() or not any(ch.isalpha() for ch in token):
        return token
    cyrillic = token.translate(_FROM_WRONG_LAYOUT)
    if any(ch in _LAYOUT_ONLY for ch in token.strip(".,")):
        return cyrillic
    if fold(token) in _FIRST_NAMES:
        return token
    lower = cyrillic.casefold()
    if fold(cyrillic) in _FIRST_NAMES or (len(lower) > 4 and lower.endswith(_SURNAME_ENDINGS)):
        return cyrillic
    return token


def _is_patronymic(folded: str) -> bool:
    return folded.endswith(_PATRONYMIC_ENDINGS) or folded in _PATRONYMICS


@functools.lru_cache(maxsize=200_000)
def split_name(first_raw: str, last_raw: str) -> tuple[str | None, str | None]:
    """Folded first name and surname from the two boxes as typed: patronymics dropped, a
    full name in the first-name box split (``Иванов Иван Петрович``, ``Иван Петрович
    Иванов``, ``Иван Иванов``)."""
    first_tokens = [fold(fix_layout(t)) for t in first_raw.split()]
    last_tokens = [fold(fix_layout(t)) for t in last_raw.split()]
    first_tokens = [t for t in first_tokens if t and not _is_patronymic(t)]
    last_tokens = [t for t in last_tokens if t and not _is_patronymic(t)]
    if not last_tokens and len(first_tokens) >= 2:
        # A full name in one box: the known first name is the first name; otherwise
        # Russian formal order (surname first) when the first token looks like a surname.
        known = [t for t in first_tokens if t in _FIRST_NAMES]
        if known:
            first = known[0]
            rest = [t for t in first_tokens if t != first]
            return first, (rest[0] if rest else None)
        return first_tokens[1], first_tokens[0]
    first = first_tokens[0] if first_tokens else None
    last = last_tokens[0] if last_tokens else None
    return first, last


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):  # NaN from pandas
        return ""
    return str(value).strip()


def _identifier(id_type: str, raw: str, country: str | None) -> str | None:
    if not raw:
        return None
    try:
        return normalize_identifier(id_type, raw, "RU", country or None)
    except InvalidArgument:
        return None


_PHONE_CHARACTERS = re.compile(r"[+\d\s()\-]+")
_ASCENDING_DIGITS = "01234567890123456789"
_DESCENDING_DIGITS = "98765432109876543210"


def phone_key(raw: str, country: str | None) -> str | None:
    """The phone in E.164, as the identity service normalises it (placeholders dropped).

    Russian mobile numbers, most of any retailer's phones, take a fast path that gives the
    same answer as :func:`normalize_identifier` (a test holds them together) at a fraction
    of its cost; everything else goes through it."""
    if not raw:
        return None
    if country in (None, "", "RU") and _PHONE_CHARACTERS.fullmatch(raw):
        digits = "".join(ch for ch in raw if ch.isdigit())
        plus = raw.lstrip().startswith("+")
        national = None
        if len(digits) == 11 and digits[1] == "9" and (
                digits[0] == "7" or (digits[0] == "8" and not plus)):
            national = digits[1:]
        elif len(digits) == 10 and digits[0] == "9" and not plus:
            national = digits
        if national is not None:
            return None if _placeholder_national(national) else "+7" + national
    return _identifier("phone", raw, country)


def _placeholder_national(national: str) -> bool:
    """The identity service's placeholder phones (omnicdp.core.identifiers) for a Russian national
    number: one digit repeated, a run of consecutive digits, seven equal last digits."""
    return (len(set(national)) == 1 or national in _ASCENDING_DIGITS
            or national in _DESCENDING_DIGITS or len(set(national[-7:])) == 1)


@functools.lru_cache(maxsize=100_000)
def address_key(line: str) -> str | None:
    """Street, house and flat as one key: ``ул. Ленина, д. 5, кв. 12``, ``Ленина 5-12`` and
    ``ul. Lenina, d. 5, kv. 12`` give ``lenina 5 12``."""
    words, numbers = [], []
    for token in _ADDRESS_TOKEN.findall(line.casefold().replace("-", " ")):
        if token.isdigit():
            numbers.append(str(int(token)))
        elif token not in _ADDRESS_WORDS:
            digits = re.match(r"(\d+)", token)
            if digits:  # 5к2
                numbers.append(str(int(digits.group(1))))
            else:
                words.append(fold(token))
    if not words and not numbers:
        return None
    return " ".join([*sorted(w for w in words if w), *numbers]) or None


def _date(raw: str) -> str | None:
    value = raw[:10]
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) or value in PLACEHOLDER_BIRTH_DATES:
        return None
    return value


def record_features(record: Mapping[str, Any]) -> dict[str, str | None]:
    """The model's features and blocking keys of one person-table record."""
    text = {column: _text(record.get(column)) for column in INPUT_COLUMNS}
    features = _features(text)
    features.update(blocking_keys(features))
    return features


#: The person table's columns that features are read from.
INPUT_COLUMNS = ("first_name", "last_name", "email", "phone", "date_of_birth", "address_line",
                 "city", "postcode", "country", "loyalty_id", "crm_id", "user_id")


def _features(text: Mapping[str, str]) -> dict[str, str | None]:
    country = text["country"].upper() or None
    first, last = split_name(text["first_name"], text["last_name"])
    email = _identifier("email", text["email"], country)
    line = text["address_line"]
    return {
        "first": first,
        "first_canon": canonical_first(first) if first else None,
        "last": last,
        "last_stem": surname_stem(last) if last else None,
        "dob": _date(text["date_of_birth"]),
        "email": email,
        "email_local": email.rpartition("@")[0] if email else None,
        "phone": phone_key(text["phone"], country),
        "address": address_key(line) if line else None,
        "postcode": text["postcode"].replace(" ", "").upper() or None,
        "city": fold(text["city"].removeprefix("г. ")) or None,
        "user_id": text["user_id"] or None,
        "loyalty_id": _identifier("loyalty_id", text["loyalty_id"], country),
        "crm_id": text["crm_id"] or None,
    }


def table_features(rows: Mapping[str, Sequence[Any]], count: int,
                   workers: int | None = None) -> dict[str, list]:
    """:func:`record_features` for a whole table, as columns: ``rows`` maps each of
    :data:`INPUT_COLUMNS` present to its ``count`` values.

    From :data:`PARALLEL_RECORDS` records on, the caller shares the work with worker
    processes, one per further core (``workers``: how many in all; pure Python, so threads
    would not run at once). They start from a fresh server process (``forkserver``), never
    forked from a caller that may hold threads (a gRPC server), and stay for the next
    table: a worker's start imports the caller's main module once."""
    workers = workers or os.cpu_count() or 1
    if count < PARALLEL_RECORDS or workers < 2:
        return _table_features(rows, count)
    # The caller computes a share itself, and a larger one: what the others do is sent
    # to them and back (pickled), which costs about a third of computing it.
    size = math.ceil(count / (workers + 0.5))
    mine = count - size * (workers - 1)
    chunks = [({c: list(values[start:start + size]) for c, values in rows.items()},
               min(size, count - start)) for start in range(mine, count, size)]
    others = _pool(workers - 1).map(_table_features, *zip(*chunks, strict=True))
    parts = [_table_features({c: values[:mine] for c, values in rows.items()}, mine),
             *others]
    return {c: [v for part in parts for v in part[c]] for c in parts[0]}


@functools.cache
def _pool(workers: int) -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
    atexit.register(pool.shutdown, cancel_futures=True)
    return pool


def _table_features(rows: Mapping[str, Sequence[Any]], count: int) -> dict[str, list]:
    blank = [""] * count
    text = [[v.strip() if isinstance(v, str) else _text(v) for v in rows[c]]
            if c in rows else blank for c in INPUT_COLUMNS]
    out: dict[str, list] = {c: [] for c in (*FEATURE_COLUMNS, *BLOCKING_KEYS)}
    columns = list(out.items())
    for row in zip(*text, strict=True):
        features = _features(dict(zip(INPUT_COLUMNS, row, strict=True)))
        features.update(blocking_keys(features))
        for column, values in columns:
            values.append(features[column])
    return out


def blocking_keys(f: Mapping[str, str | None]) -> dict[str, str | None]:
    """The keys under which a record is found: two records are compared when they share
    one. Names are keyed in either order, so swapped first and last names still meet."""
    def join(*parts: str | None) -> str | None:
        return "|".join(parts) if all(parts) else None  # type: ignore[arg-type]

    first, last = f.get("first_canon"), f.get("last_stem")
    name = "|".join(sorted((first, last))) if first and last else None
    phone = f.get("phone")
    return {
        # Name alone blocks thousands of namesakes together (Александр Иванов); with the
        # city it keeps what they add and costs a fraction.
        "bk_name_city": join(name, f.get("city")),
        "bk_dob_last": join(f.get("dob"), last),
        "bk_dob_first": join(f.get("dob"), first),
        "bk_phone": phone,
        "bk_phone_head": phone[:8] if phone else None,
        "bk_email_local": f.get("email_local"),
        "bk_address": join(f.get("postcode") or f.get("city"), f.get("address")),
    }

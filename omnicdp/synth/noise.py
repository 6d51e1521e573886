"""The noise that real customer data carries: typos (in names and in identifiers), phone
formats, e-mail variants, text typed in the wrong keyboard layout, and the placeholders
cashiers type when a customer gives no e-mail, phone or birth date."""

from __future__ import annotations

import random

# Typed at the till by cashiers; shared by many unrelated customers.
PLACEHOLDER_EMAILS = ("noemail@mail.ru", "test@test.ru", "123@mail.ru", "net@net.ru",
                      "nomail@mail.ru", "no@no.ru", "0@mail.ru")
_PLACEHOLDER_WEIGHTS = (8, 5, 4, 4, 2, 2, 1)

_DOMAIN_TYPOS = {
    "mail.ru": ("mail.ry", "mial.ru", "maill.ru", "mail.r"),
    "gmail.com": ("gmial.com", "gmail.ru", "gmal.com", "gmail.co"),
    "yandex.ru": ("yandeks.ru", "yandex.ry", "yadex.ru"),
    "bk.ru": ("bk.ry",),
    "list.ru": ("lst.ru", "list.ry"),
    "inbox.ru": ("inbx.ru",),
    "rambler.ru": ("rambller.ru", "rambler.ry"),
}

# Ways a Russian number 9161234567 is written.
PHONE_STYLES = ("e164", "pretty", "spaces", "trunk", "trunk_dashes", "trunk_pretty", "bare",
                "seven")
_COUNTRY_CODES = {"RU": "7", "KZ": "7", "BY": "375", "DE": "49"}


# Stand-ins that no normaliser's list holds: a store's own mailbox, "no mail" in Russian,
# keyboard mashing. They pass normalisation, so only their spread across unrelated people
# (the identity service's placeholder guardrail) or a model can tell them apart.
UNLISTED_PLACEHOLDER_EMAILS = ("nety@mail.ru", "netu@mail.ru", "pokupatel@mail.ru",
                               "klient@uyut-home.ru", "1@1.ru", "qwerty@mail.ru",
                               "bez.pochty@yandex.ru", "aaa@mail.ru")
_UNLISTED_WEIGHTS = (5, 3, 3, 4, 3, 2, 1, 2)
# Phones typed when the customer gives none: some are caught by the normaliser (+7 999
# 999-99-99, +7 900 000-00-00), some look like real numbers (+7 912 345-67-89).
PLACEHOLDER_PHONES = ("+79999999999", "89000000000", "9123456789", "+7 (900) 123-45-67",
                      "89111111111", "+7 916 000-00-01")
_PLACEHOLDER_PHONE_WEIGHTS = (4, 3, 3, 2, 2, 1)
# Birth dates typed when the form demands one.
PLACEHOLDER_BIRTH_DATES = ("1900-01-01", "1900-01-01", "1901-01-01", "2000-01-01")

# A Russian keyboard's letters on the keys of a US one: "Иван" typed with the wrong layout
# comes out as "Bdfy".
_CYRILLIC_KEYS = "йцукенгшщзхъфывапролджэячсмитьбюё"
_LATIN_KEYS = "qwertyuiop[]asdfghjkl;'zxcvbnm,.`"
_WRONG_LAYOUT = str.maketrans(_CYRILLIC_KEYS + _CYRILLIC_KEYS.upper(),
                              _LATIN_KEYS + _LATIN_KEYS.upper())


def placeholder_email(rng: random.Random, p_unlisted: float = 0.0) -> str:
    """A cashier's stand-in e-mail: one the normaliser knows, or with ``p_unlisted`` one it
    does not."""
    if rng.random() < p_unlisted:
        return rng.choices(UNLISTED_PLACEHOLDER_EMAILS, weights=_UNLISTED_WEIGHTS)[0]
    return rng.choices(PLACEHOLDER_EMAILS, weights=_PLACEHOLDER_WEIGHTS)[0]


def placeholder_phone(rng: random.Random) -> str:
    return rng.choices(PLACEHOLDER_PHONES, weights=_PLACEHOLDER_PHONE_WEIGHTS)[0]


def wrong_layout(text: str) -> str:
    """Cyrillic ``text`` as typed with the keyboard left in the Latin layout."""
    return text.translate(_WRONG_LAYOUT)


def digit_typo(value: str, rng: random.Random) -> str:
    """An identifier with one keying error in its digits: two neighbours swapped or one digit
    replaced (a phone or card number retyped from a form)."""
    positions = [i for i, ch in enumerate(value) if ch.isdigit()]
    if len(positions) < 4:
        return value
    # Leave the first digits (country and operator codes) alone: a typo there rarely
    # yields a number a system would accept.
    i = rng.choice(positions[len(positions) // 3:])
    chars = list(value)
    later = [j for j in positions if j > i]
    if later and rng.random() < 0.5:
        j = later[0]
        chars[i], chars[j] = chars[j], chars[i]
    else:
        chars[i] = rng.choice([d for d in "0123456789" if d != chars[i]])
    return "".join(chars)


def typo(word: str, rng: random.Random) -> str:
    """The word with one keying error: two letters swapped, one dropped or one doubled."""
    if len(word) < 3:
        return word
    i = rng.randrange(1, len(word) - 1)
    op = rng.random()
    if op < 0.4:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op < 0.7:
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


def maybe_typo(word: str, p: float, rng: random.Random) -> str:
    return typo(word, rng) if word and rng.random() < p else word


def drop_yo(word: str) -> str:
    """Most people type е for ё (Артём -> Артем)."""
    return word.replace("ё", "е").replace("Ё", "Е")


def letter_case(text: str, rng: random.Random, p_upper: float, p_lower: float) -> str:
    roll = rng.random()
    if roll < p_upper:
        return text.upper()
    if roll < p_upper + p_lower:
        return text.lower()
    return text


def noisy_email(email: str, rng: random.Random, p_typo: float, p_upper: float) -> str:
    """The address as somebody typed it: upper case, a capital first letter, a typo in the
    local part or the domain, a stray space."""
    local, _, domain = email.partition("@")
    if rng.random() < p_typo:
        if domain in _DOMAIN_TYPOS and rng.random() < 0.4:
            domain = rng.choice(_DOMAIN_TYPOS[domain])
        else:
            local = typo(local, rng)
    out = f"{local}@{domain}"
    roll = rng.random()
    if roll < p_upper:
        out = out.upper()
    elif roll < p_upper * 2:
        out = out[:1].upper() + out[1:]
    if rng.random() < 0.01:
        out = out + " "
    return out


def format_phone(country: str, national: str, style: str) -> str:
    """A phone number (national significant digits) written in one of :data:`PHONE_STYLES`.

    Russian and Kazakh numbers share +7 and the trunk prefix 8; Belarusian numbers dial 8 0
    at home; German numbers drop the trunk 0 after +49.
    """
    code = _COUNTRY_CODES[country]
    if country in ("RU", "KZ"):
        a, b, c, d = national[:3], national[3:6], national[6:8], national[8:]
        return {
            "e164": f"+7{national}",
            "pretty": f"+7 ({a}) {b}-{c}-{d}",
            "spaces": f"+7 {a} {b} {c} {d}",
            "trunk": f"8{national}",
            "trunk_dashes": f"8-{a}-{b}-{c}-{d}",
            "trunk_pretty": f"8 ({a}) {b}-{c}-{d}",
            "bare": national,
            "seven": f"7{national}",
        }[style]
    if country == "BY":
        a, b, c, d = national[:2], national[2:5], national[5:7], national[7:]
        if style in ("e164", "seven", "bare"):
            return f"+375{national}"
        if style in ("trunk", "trunk_dashes"):
            return f"80{national}"
        return f"+375 ({a}) {b}-{c}-{d}"
    if style in ("e164", "seven", "bare"):
        return f"+{code}{national}"
    if style in ("trunk", "trunk_dashes", "trunk_pretty"):
        return f"0{national[:3]} {national[3:]}"
    return f"+{code} {national[:3]} {national[3:]}"


def maybe_digit_typo(value: str, p: float, rng: random.Random) -> str:
    return digit_typo(value, rng) if value and rng.random() < p else value

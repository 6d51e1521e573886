"""The model's comparisons: for each, its levels in order, each written twice, as Splink's
SQL condition and as the same test in Python, so that a trained model can score a pair
without a database (online resolution) and Splink can score millions in batch. A test holds
the two to the same scores.

Levels test precomputed feature columns (``features.py``) with equality or Levenshtein
distance, which both sides compute exactly alike. Address, postcode and city are one
comparison: members of a household share all three, and counting them as independent
evidence is what merges households.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz.distance import Levenshtein

Features = Mapping[str, Any]
Test = Callable[[Features, Features], bool]


@dataclass(frozen=True)
class Level:
    label: str
    sql: str
    test: Test
    is_null: bool = False


@dataclass(frozen=True)
class Comparison:
    name: str
    description: str
    levels: tuple[Level, ...]

    def level_of(self, left: Features, right: Features) -> int:
        """The index of the first level the pair satisfies (Splink's gamma is the same
        order counted from the other end; the null level is -1 there)."""
        for index, level in enumerate(self.levels):
            if level.test(left, right):
                return index
        raise AssertionError(f"{self.name}: no level holds, not even the last")


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions), as DuckDB's and Spark's
    ``levenshtein`` (RapidFuzz's, in C: online scoring runs it for every candidate)."""
    return Levenshtein.distance(a, b)


def _null(*columns: str) -> Level:
    sql = " OR ".join(f'{c}_l IS NULL OR {c}_r IS NULL' for c in columns)
    return Level("null", sql, lambda a, b: any(a.get(c) is None or b.get(c) is None
                                               for c in columns), is_null=True)


def _exact(column: str, label: str) -> Level:
    return Level(label, f'{column}_l = {column}_r',
                 lambda a, b: a.get(column) is not None and a.get(column) == b.get(column))


def _within(column: str, distance: int, label: str) -> Level:
    def test(a: Features, b: Features) -> bool:
        x, y = a.get(column), b.get(column)
        return x is not None and y is not None and levenshtein(x, y) <= distance
    return Level(label, f'levenshtein({column}_l, {column}_r) <= {distance}', test)


def _crossed(mine: str, theirs: str, label: str) -> Level:
    """The left's ``mine`` is the right's ``theirs`` and vice versa: first and last names
    typed into each other's boxes."""
    def test(a: Features, b: Features) -> bool:
        return (a.get(mine) is not None and a.get(mine) == b.get(theirs)
                and a.get(theirs) is not None and a.get(theirs) == b.get(mine))
    return Level(label, f'{mine}_l = {theirs}_r AND {theirs}_l = {mine}_r', test)


def _exact_other_first_name(column: str, label: str) -> Level:
    """The same value held by records with clearly different first names: a family's
    mailbox or home phone, not one person's."""
    def test(a: Features, b: Features) -> bool:
        x, y = a.get("first_canon"), b.get("first_canon")
        return (a.get(column) is not None and a.get(column) == b.get(column)
                and x is not None and y is not None and x != y and levenshtein(x, y) > 2)
    sql = (f'{column}_l = {column}_r AND first_canon_l <> first_canon_r AND '
           'levenshtein(first_canon_l, first_canon_r) > 2')
    return Level(label, sql, test)


def _else() -> Level:
    return Level("else", "ELSE", lambda a, b: True)


def _dob_swapped() -> Level:
    def test(a: Features, b: Features) -> bool:
        x, y = a.get("dob"), b.get("dob")
        return (x is not None and y is not None and x[:4] == y[:4]
                and x[5:7] == y[8:10] and x[8:10] == y[5:7])
    sql = ('substr(dob_l, 1, 4) = substr(dob_r, 1, 4) AND '
           'substr(dob_l, 6, 2) = substr(dob_r, 9, 2) AND '
           'substr(dob_l, 9, 2) = substr(dob_r, 6, 2)')
    return Level("day and month swapped", sql, test)


def _address_null() -> Level:
    columns = ("address", "postcode", "city")
    sql = " AND ".join(f'({c}_l IS NULL OR {c}_r IS NULL)' for c in columns)
    return Level("null", sql, lambda a, b: all(a.get(c) is None or b.get(c) is None
                                               for c in columns), is_null=True)


COMPARISONS: tuple[Comparison, ...] = (
    Comparison("first_name", "first name, folded across scripts and diminutives", (
        _null("first"),
        _exact("first", "exact"),
        _exact("first_canon", "same full name (diminutive)"),
        _within("first_canon", 2, "within 2 edits"),
        _crossed("first", "last", "swapped with last name"),
        _else(),
    )),
    Comparison("last_name", "surname, folded across scripts", (
        _null("last"),
        _exact("last", "exact"),
        _exact("last_stem", "other-sex form"),
        _within("last", 2, "within 2 edits"),
        _crossed("first", "last", "swapped with first name"),
        _else(),
    )),
    Comparison("date_of_birth", "date of birth", (
        _null("dob"),
        _exact("dob", "exact"),
        _dob_swapped(),
        _within("dob", 1, "one digit off"),
        _else(),
    )),
    Comparison("email", "e-mail", (
        _null("email"),
        _exact_other_first_name("email", "exact, other first name (a family's)"),
        _exact("email", "exact"),
        _exact("email_local", "same mailbox name"),
        _within("email", 2, "within 2 edits"),
        _else(),
    )),
    Comparison("phone", "phone (E.164)", (
        _null("phone"),
        _exact_other_first_name("phone", "exact, other first name (a family's)"),
        _exact("phone", "exact"),
        _within("phone", 2, "within 2 edits"),
        _else(),
    )),
    Comparison("address", "street address, postcode and city as one piece of evidence", (
        _address_null(),
        _exact("address", "same street, house and flat"),
        _exact("postcode", "same postcode"),
        _exact("city", "same city"),
        _else(),
    )),
)


def splink_comparisons(comparisons: Sequence[Comparison] = COMPARISONS) -> list[dict]:
    """The comparisons as Splink settings (dicts), without m and u."""
    return [{
        "output_column_name": c.name,
        "comparison_description": c.description,
        "comparison_levels": [
            {"sql_condition": level.sql, "label_for_charts": level.label,
             **({"is_null_level": True} if level.is_null else {})}
            for level in c.levels],
    } for c in comparisons]

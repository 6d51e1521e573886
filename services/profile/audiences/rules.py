"""An audience definition: which customers belong, checked and described.

A definition is a JSON object (the HTTP body of ``PUT /v1/audiences/{name}``; the gRPC
``Audience`` carries the same fields)::

    {"description": "viewed a sofa in the last 14 days and did not buy one",
     "include": [{"event": {"name": "Product Viewed", "within_days": 14,
                            "where": [{"property": "category", "op": "eq",
                                       "value": "sofas"}]}}],
     "exclude": [{"event": {"name": "Order Completed", "within_days": 14,
                            "where": [{"property": "products.category", "op": "eq",
                                       "value": "sofas"}]}}],
     "consent": {"purpose": "ad_platform_transfer"}}

A customer is a member when every ``include`` condition holds, no ``exclude`` condition
holds, and the ``consent`` requirement (if any) is granted. Conditions:

- ``event``: the customer's events named ``name`` (optionally on ``channel``, within the
  last ``within_days`` days, matching every ``where`` test) number at least ``min_count``
  (default 1) and at most ``max_count`` (none by default): "did not do X in 14 days" is
  ``max_count: 0``;
- ``trait``: a golden-record trait (``first_name``, ``city``, ...) compared with ``value``;
- ``score``: a stored score (``ltv_clv``, ``p_alive``, ...) compared with ``value``;
- ``counter``: a golden-record counter (``event_count``, ``orders``, ``orders_online``,
  ``orders_store``, ``revenue``) compared with ``value``.

Operators: ``eq``, ``neq``, ``in`` (a list), ``contains`` (a text containing it, in any
case), ``gt``, ``gte``, ``lt``, ``lte`` (numbers), ``exists``. A property path may step
into objects and lists (``products.category``): a test holds when any value found passes it
(``neq``: when values exist and none equals). A condition on a value the customer does not
have is false; say "not" with ``exclude``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omnicdp.core.errors import FieldViolation, InvalidArgument
from omnicdp.core.vocabulary import CHANNELS, CONSENT_EVENT, CONSENT_PURPOSES

NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}[a-z0-9]")
OPERATORS = ("eq", "neq", "in", "contains", "gt", "gte", "lt", "lte", "exists")
NUMERIC_OPERATORS = ("eq", "neq", "in", "gt", "gte", "lt", "lte", "exists")
COUNTERS = ("event_count", "orders", "orders_online", "orders_store", "revenue")
CONDITION_KINDS = ("event", "trait", "score", "counter")
MAX_CONDITIONS = 32
MAX_WHERE = 16
MAX_DAYS = 3650
MAX_TEXT = 256
MAX_DESCRIPTION = 1024
MAX_IN_VALUES = 100


@dataclass(frozen=True)
class ValueTest:
    """``op`` applied to a value found at ``path`` (a property path, a trait, score or
    counter name)."""

    path: str
    op: str
    value: Any = None

    def holds(self, found: list[Any]) -> bool:
        """Whether the test passes for the values found (none: the value is missing)."""
        if self.op == "exists":
            return bool(found)
        if self.op == "neq":
            return bool(found) and not any(_equal(v, self.value) for v in found)
        return any(_passes(self.op, v, self.value) for v in found)

    def to_dict(self, key: str) -> dict[str, Any]:
        document: dict[str, Any] = {key: self.path, "op": self.op}
        if self.op != "exists":
            document["value"] = self.value
        return document


@dataclass(frozen=True)
class EventCondition:
    name: str
    channel: str = ""
    within_days: int | None = None
    min_count: int = 1
    max_count: int | None = None
    where: tuple[ValueTest, ...] = ()

    def matches(self, name: str, channel: str, properties: Mapping[str, Any]) -> bool:
        """Whether one event counts (its time is the caller's to check)."""
        return (name == self.name and (not self.channel or channel == self.channel)
                and all(t.holds(values_at(properties, t.path)) for t in self.where))

    def count_holds(self, count: int) -> bool:
        return count >= self.min_count and (self.max_count is None or count <= self.max_count)

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"name": self.name}
        if self.channel:
            document["channel"] = self.channel
        if self.within_days is not None:
            document["within_days"] = self.within_days
        document["min_count"] = self.min_count
        if self.max_count is not None:
            document["max_count"] = self.max_count
        if self.where:
            document["where"] = [t.to_dict("property") for t in self.where]
        return {"event": document}


@dataclass(frozen=True)
class FieldCondition:
    """A ``trait``, ``score`` or ``counter`` condition (``kind``)."""

    kind: str
    test: ValueTest

    def to_dict(self) -> dict[str, Any]:
        return {self.kind: self.test.to_dict("name")}


Condition = EventCondition | FieldCondition


@dataclass(frozen=True)
class ConsentRequirement:
    """A purpose the customer must have granted, on ``channel`` ("": every channel)."""

    purpose: str
    channel: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"purpose": self.purpose, **({"channel": self.channel} if self.channel else {})}


@dataclass(frozen=True)
class Audience:
    name: str
    description: str = ""
    include: tuple[Condition, ...] = ()
    exclude: tuple[Condition, ...] = ()
    consent: ConsentRequirement | None = None

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return self.include + self.exclude

    @property
    def event_conditions(self) -> tuple[EventCondition, ...]:
        return tuple(c for c in self.conditions if isinstance(c, EventCondition))

    def uses(self, kind: str) -> bool:
        """Whether a condition of this kind (event, trait, score, counter) is used."""
        return any((c.kind if isinstance(c, FieldCondition) else "event") == kind
                   for c in self.conditions)

    @property
    def needs_an_event(self) -> bool:
        """Whether membership needs an event (an include event condition with min_count of
        at least 1): a customer without one of its events is never a member."""
        return any(isinstance(c, EventCondition) and c.min_count >= 1 for c in self.include)

    def trigger_events(self) -> frozenset[str] | None:
        """The event names whose arrival can change a customer's membership; None when
        any event can (a trait or counter condition reads what every event changes)."""
        if self.uses("trait") or self.uses("counter"):
            return None
        names = {c.name for c in self.event_conditions}
        if self.consent:
            names.add(CONSENT_EVENT)
        return frozenset(names)

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"name": self.name, "description": self.description,
                                    "include": [c.to_dict() for c in self.include],
                                    "exclude": [c.to_dict() for c in self.exclude]}
        if self.consent:
            document["consent"] = self.consent.to_dict()
        return document

    def describe(self) -> str:
        """One line for people: what the rules say."""
        parts = [_describe(c) for c in self.include]
        parts += [f"not {_describe(c)}" for c in self.exclude]
        if self.consent:
            on = f" on {self.consent.channel}" if self.consent.channel else ""
            parts.append(f"consent {self.consent.purpose}{on} granted")
        return " and ".join(parts) or "every customer"


def values_at(document: Any, path: str) -> list[Any]:
    """The values at a dotted path; lists on the way are stepped into, element by element."""
    found = [document]
    for key in path.split("."):
        step: list[Any] = []
        for value in found:
            for item in (value if isinstance(value, list) else [value]):
                if isinstance(item, Mapping) and item.get(key) is not None:
                    step.append(item[key])
        found = step
    return [v for value in found for v in (value if isinstance(value, list) else [value])]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _equal(found: Any, wanted: Any) -> bool:
    a, b = _number(found), _number(wanted)
    if a is not None and b is not None:
        return a == b
    return found == wanted


def _passes(op: str, found: Any, wanted: Any) -> bool:
    if op == "eq":
        return _equal(found, wanted)
    if op == "in":
        return any(_equal(found, w) for w in wanted)
    if op == "contains":
        if isinstance(found, str):
            return isinstance(wanted, str) and wanted.casefold() in found.casefold()
        return False
    a, b = _number(found), _number(wanted)
    if a is None or b is None:
        return False
    return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]


def _describe(condition: Condition) -> str:
    if isinstance(condition, FieldCondition):
        t = condition.test
        return f"{condition.kind} {t.path} {t.op}" + ("" if t.op == "exists" else f" {t.value!r}")
    c = condition
    text = f"{c.name!r}"
    if c.channel:
        text += f" on {c.channel}"
    if c.where:
        text += " where " + ", ".join(f"{t.path} {t.op} {t.value!r}" for t in c.where)
    count = f"at least {c.min_count}" if c.max_count is None else (
        f"{c.min_count} to {c.max_count}" if c.min_count else f"at most {c.max_count}")
    text = f"{count} x {text}"
    if c.within_days is not None:
        text += f" in the last {c.within_days} days"
    return text


# -- parsing -------------------------------------------------------------------------------


def parse(name: str, document: Any) -> Audience:
    """The audience a definition describes; ``InvalidArgument`` naming every bad field."""
    problems: list[FieldViolation] = []
    if not isinstance(name, str) or not NAME.fullmatch(name):
        problems.append(FieldViolation(
            "name", "required: 2 to 64 lower-case letters, digits, - and _, starting with a "
                    "letter, e.g. sofa-retargeting"))
    if not isinstance(document, Mapping):
        raise InvalidArgument("an audience definition is a JSON object",
                              [*problems, FieldViolation("definition", "a JSON object")])
    known = {"name", "description", "include", "exclude", "consent"}
    for key in sorted(set(document) - known):
        problems.append(FieldViolation(str(key),
                                       f"unknown field; expected {', '.join(sorted(known))}"))
    description = document.get("description") or ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        problems.append(FieldViolation("description",
                                       f"a text of at most {MAX_DESCRIPTION} characters"))
        description = ""
    include = _conditions(document.get("include"), "include", problems)
    exclude = _conditions(document.get("exclude"), "exclude", problems)
    if not document.get("include") and not document.get("exclude"):
        problems.append(FieldViolation("include", "at least one condition (include or "
                                                  "exclude) is required"))
    consent = _consent(document.get("consent"), problems)
    if problems:
        raise InvalidArgument(f"invalid audience definition: {problems[0]}", problems)
    return Audience(name, description, tuple(include), tuple(exclude), consent)


def _conditions(raw: Any, field: str, problems: list[FieldViolation]) -> list[Condition]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_CONDITIONS:
        problems.append(FieldViolation(field, f"a list of at most {MAX_CONDITIONS} conditions"))
        return []
    found = []
    for i, item in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(item, Mapping) or len(item) != 1 or \
                next(iter(item)) not in CONDITION_KINDS:
            problems.append(FieldViolation(where, "an object with exactly one of "
                                                  f"{', '.join(CONDITION_KINDS)}"))
            continue
        [(kind, body)] = item.items()
        before = len(problems)
        condition = (_event(body, f"{where}.event", problems) if kind == "event"
                     else _field(kind, body, f"{where}.{kind}", problems))
        if condition is not None and len(problems) == before:
            found.append(condition)
    return found


def _object(body: Any, where: str, allowed: set[str],
            problems: list[FieldViolation]) -> Mapping[str, Any] | None:
    if not isinstance(body, Mapping):
        problems.append(FieldViolation(where, "an object"))
        return None
    for key in sorted(set(body) - allowed):
        problems.append(FieldViolation(f"{where}.{key}",
                                       f"unknown field; expected {', '.join(sorted(allowed))}"))
    return body


def _text(value: Any, where: str, problems: list[FieldViolation], required: bool = True) -> str:
    if value is None or value == "":
        if required:
            problems.append(FieldViolation(where, "required"))
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        problems.append(FieldViolation(where, f"a text of at most {MAX_TEXT} characters"))
        return ""
    return value


def _count(value: Any, where: str, problems: list[FieldViolation], upper: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
        problems.append(FieldViolation(where, f"a whole number from 0 to {upper}"))
        return None
    return value


def _event(body: Any, where: str, problems: list[FieldViolation]) -> EventCondition | None:
    body = _object(body, where, {"name", "channel", "within_days", "min_count", "max_count",
                                 "where"}, problems)
    if body is None:
        return None
    name = _text(body.get("name"), f"{where}.name", problems)
    channel = _text(body.get("channel"), f"{where}.channel", problems, required=False)
    if channel and channel not in CHANNELS:
        problems.append(FieldViolation(f"{where}.channel", f"one of {', '.join(CHANNELS)}"))
    within = _count(body.get("within_days"), f"{where}.within_days", problems, MAX_DAYS)
    if within == 0:
        problems.append(FieldViolation(f"{where}.within_days", f"1 to {MAX_DAYS} days"))
    least = _count(body.get("min_count"), f"{where}.min_count", problems, 1_000_000)
    most = _count(body.get("max_count"), f"{where}.max_count", problems, 1_000_000)
    if least is None:
        least = 0 if most == 0 else 1
    if most is not None and least > most:
        problems.append(FieldViolation(f"{where}.max_count",
                                       f"at least min_count ({least})"))
    tests = []
    raw_where = body.get("where") or []
    if not isinstance(raw_where, list) or len(raw_where) > MAX_WHERE:
        problems.append(FieldViolation(f"{where}.where", f"a list of at most {MAX_WHERE} tests"))
        raw_where = []
    for j, raw in enumerate(raw_where):
        test = _test(raw, f"{where}.where[{j}]", "property", OPERATORS, problems)
        if test is not None:
            tests.append(test)
    return EventCondition(name, channel, within, least, most, tuple(tests))


def _field(kind: str, body: Any, where: str,
           problems: list[FieldViolation]) -> FieldCondition | None:
    operators = OPERATORS if kind == "trait" else NUMERIC_OPERATORS
    test = _test(body, where, "name", operators, problems)
    if test is None:
        return None
    if kind == "counter" and test.path not in COUNTERS:
        problems.append(FieldViolation(f"{where}.name", f"one of {', '.join(COUNTERS)}"))
    if kind != "trait" and test.op not in ("exists", "in") and _number(test.value) is None:
        problems.append(FieldViolation(f"{where}.value", "a number"))
    return FieldCondition(kind, test)


def _test(body: Any, where: str, key: str, operators: tuple[str, ...],
          problems: list[FieldViolation]) -> ValueTest | None:
    body = _object(body, where, {key, "op", "value"}, problems)
    if body is None:
        return None
    before = len(problems)
    path = _text(body.get(key), f"{where}.{key}", problems)
    op = body.get("op")
    value = body.get("value")
    if op not in operators:
        problems.append(FieldViolation(f"{where}.op", f"one of {', '.join(operators)}"))
    elif op == "in":
        if not isinstance(value, list) or not 0 < len(value) <= MAX_IN_VALUES or \
                any(isinstance(v, dict | list) for v in value):
            problems.append(FieldViolation(f"{where}.value",
                                           f"a list of 1 to {MAX_IN_VALUES} plain values"))
    elif op in ("gt", "gte", "lt", "lte"):
        if _number(value) is None or not math.isfinite(float(value)):
            problems.append(FieldViolation(f"{where}.value", f"a number (op {op})"))
    elif op == "contains":
        if not isinstance(value, str) or not value:
            problems.append(FieldViolation(f"{where}.value", "a text to look for"))
    elif op != "exists" and (value is None or isinstance(value, dict | list)):
        problems.append(FieldViolation(f"{where}.value", "a text, number or true/false"))
    if len(problems) > before:
        return None
    return ValueTest(path, op, None if op == "exists" else value)


def _consent(raw: Any, problems: list[FieldViolation]) -> ConsentRequirement | None:
    if raw is None:
        return None
    body = _object(raw, "consent", {"purpose", "channel"}, problems)
    if body is None:
        return None
    purpose = body.get("purpose")
    channel = body.get("channel") or ""
    if purpose not in CONSENT_PURPOSES:
        problems.append(FieldViolation("consent.purpose",
                                       f"required, one of {', '.join(CONSENT_PURPOSES)}"))
    if channel and channel not in CHANNELS:
        problems.append(FieldViolation("consent.channel",
                                       f"one of {', '.join(CHANNELS)}, or none for every "
                                       "channel"))
    return ConsentRequirement(str(purpose), str(channel))

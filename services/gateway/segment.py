"""The Segment HTTP tracking spec, mapped onto omnicdp's events: pure functions, no HTTP.

A Segment message (``identify``, ``track``, ``page``, ``screen``, ``alias``, ``group``)
becomes one native event (the ``EVENT`` of PRODUCT.md), which then goes through the same
checks and the same ``IngestEvents`` call as ``/v1/events``:

* ``messageId`` is the ``message_id`` (the idempotency key); a message without one gets a
  random id, as Segment's own API does, and so cannot be deduplicated.
* ``userId`` and ``anonymousId`` are the ``user_id`` and ``anonymous_id`` identifiers;
  ``alias`` takes its ``previousId`` as the anonymous id whose history joins ``userId``'s
  customer. The person's ``traits`` (``identify``) and ``context.traits`` (every type) give
  the ``email`` and ``phone`` identifiers and the traits (``firstName``, ``lastName``,
  ``birthday`` and ``address`` in omnicdp's names, the rest as sent);
  ``context.externalIds`` of a known identifier type, and ``context.device.id``, give
  further identifiers.
* ``properties`` are kept as sent. What the touch needs of the context (``campaign``, i.e.
  the UTM parameters, ``page``, ``app``, ``device``, ``library``, ``os``, ``locale``,
  ``timezone``, ``screen``, ``referrer``) is kept in ``properties.context``. ``context.ip``,
  ``userAgent``, ``location`` and the device's advertising id and push token are dropped:
  omnicdp has no consent model to store them under yet.
* The channel is the message's own ``channel`` (or ``context.channel``) when it names one
  of omnicdp's; else, for a page or screen, the marketing channel of its UTM medium
  (``utm_medium=email`` makes the landing an e-mail touch); else ``app`` for a mobile
  library's message, and ``web`` for any other.
* ``timestamp`` is corrected for the client's clock as the spec says:
  ``receivedAt - (sentAt - timestamp)``; without ``sentAt`` it is taken as sent, without a
  timestamp it is the time of receipt.
* ``group`` attaches the customer to the account ``groupId``: the customer's trait
  ``group_id``, and the group's traits in the event's ``properties.group_traits``.

Violations are named as the sender wrote the message (``traits.email``, ``previousId``),
not as omnicdp stores it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from omnicdp.core import jsonvalues
from omnicdp.core.vocabulary import CHANNELS, IDENTIFIER_TYPES, MAX_EVENT_BYTES
from omnicdp.services.gateway.schemas import rfc3339_datetime

MESSAGE_TYPES: tuple[str, ...] = ("identify", "track", "page", "screen", "alias", "group")
#: The one-letter paths analytics.js posts to (``/v1/t`` for a track), and its batch path.
SHORT_PATHS: Mapping[str, str] = {"i": "identify", "t": "track", "p": "page", "s": "screen",
                                  "a": "alias", "g": "group", "b": "batch"}
#: Every path of the spec under ``/v1``, with what it accepts.
PATHS: Mapping[str, str] = {
    **{f"/v1/{kind}": kind for kind in (*MESSAGE_TYPES, "batch")},
    **{f"/v1/{short}": kind for short, kind in SHORT_PATHS.items()},
}

#: ``channel`` / ``context.channel`` values of other SDKs that name one of omnicdp's.
_CHANNEL_NAMES: Mapping[str, str] = {
    **{name: name for name in CHANNELS},
    "browser": "web", "mobile": "app", "ios": "app", "android": "app",
}
#: UTM mediums (``context.campaign.medium``) of marketing channels.
_MEDIUM_CHANNELS: Mapping[str, str] = {
    "email": "email", "e-mail": "email", "e_mail": "email", "newsletter": "email",
    "sms": "sms", "push": "push", "messenger": "messenger", "whatsapp": "messenger",
    "telegram": "messenger", "viber": "messenger",
    **{medium: "ads" for medium in (
        "ads", "cpc", "ppc", "cpm", "cpa", "paid", "paidsearch", "paid_search", "paid-search",
        "paidsocial", "paid_social", "paid-social", "display", "banner", "retargeting")},
}
_MOBILE_OS = frozenset({"ios", "ipados", "android"})
#: Parts of the context kept with the event, for the touch; the rest is dropped (ip,
#: userAgent, location: personal data without a consent model to keep it under).
KEPT_CONTEXT: tuple[str, ...] = ("campaign", "page", "app", "device", "library", "os",
                                 "locale", "timezone", "screen", "referrer")
#: Device fields that are not kept: identifiers of a person for advertising and messaging.
_DROPPED_DEVICE_FIELDS = frozenset({"id", "advertisingId", "adTrackingEnabled", "token"})

#: Segment trait -> omnicdp trait (the identity service's features use these names).
_TRAIT_NAMES: Mapping[str, str] = {
    "firstName": "first_name", "first_name": "first_name",
    "lastName": "last_name", "last_name": "last_name",
    "birthday": "date_of_birth", "date_of_birth": "date_of_birth",
}
_ADDRESS_PARTS: Mapping[str, str] = {"street": "address_line", "city": "city",
                                     "postalCode": "postcode", "state": "region",
                                     "country": "country"}
#: Traits that repeat an identifier of the message (the spec's ``traits.id`` is the user
#: id); they are not kept twice.
_ID_TRAITS = frozenset({"id", "userId", "anonymousId"})
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_SNAKE = re.compile(r"(?<=[a-z0-9])([A-Z])")


class Rejected(Exception):
    """A message that cannot become an event, with what is wrong, field by field."""

    def __init__(self, violations: list[dict[str, str]]) -> None:
        super().__init__("; ".join(v["field"] for v in violations))
        self.violations = violations


def violation(field_name: str, description: str) -> dict[str, str]:
    return {"field": field_name, "description": description}


@dataclass
class Mapped:
    """A message as a native event (the JSON of ``/v1/events``), and where each native
    field came from in the message, to name violations as the sender wrote them."""

    event: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)

    def name_as_sent(self, violations: list[dict[str, str]]) -> list[dict[str, str]]:
        """``violations`` of the native event, their fields named as in the message."""
        return [{**v, "field": self._origin(v["field"])} for v in violations]

    def _origin(self, native: str) -> str:
        for prefix in sorted(self.origins, key=len, reverse=True):
            if native == prefix or native.startswith((prefix + ".", prefix + "[")):
                return self.origins[prefix] + native[len(prefix):]
        return native


# -- credentials ------------------------------------------------------------------------

def header_key(authorization: str | None) -> str | None:
    """The write key of an ``Authorization`` header: Basic with the key as user name (the
    password is empty), as the SDKs send it, or Bearer as on the native API. None when no
    header was sent; ``""`` when one was sent that holds no key."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[0]


def body_key(document: Any) -> str | None:
    """The write key in the body (``writeKey``), as analytics.js also sends it: the batch's,
    else the one every message of it carries."""
    if not isinstance(document, dict):
        return None
    if isinstance(document.get("writeKey"), str):
        return document["writeKey"]
    messages = document.get("batch")
    if isinstance(messages, list) and messages:
        keys = {m.get("writeKey") if isinstance(m, dict) else None for m in messages}
        if len(keys) == 1 and isinstance(next(iter(keys)), str):
            return next(iter(keys))
    return None


# -- messages ---------------------------------------------------------------------------

def messages_of(document: Any, kind: str) -> list[Any]:
    """The messages of a request to the path for ``kind`` (``batch`` or a message type);
    raises :class:`Rejected` when the body has no such shape."""
    if not isinstance(document, dict):
        raise Rejected([violation("body", "a JSON object is required")])
    if kind != "batch":
        return [document]
    messages = document.get("batch")
    if not isinstance(messages, list):
        raise Rejected([violation("batch", "a list of messages is required")])
    return messages


def to_event(message: Any, kind: str, received_at: datetime, source: str | None,
             envelope: Mapping[str, Any] | None = None) -> Mapped:
    """The native event of one message sent to the path for ``kind`` (a message type, or
    ``batch`` where each message names its ``type``), received at ``received_at``;
    ``envelope`` is the batch around it (its ``context`` and ``sentAt`` apply to every
    message). Raises :class:`Rejected`."""
    if not isinstance(message, dict):
        raise Rejected([violation("message", "a JSON object is required")])
    limits = jsonvalues.value_violations(message, "")
    if limits:
        raise Rejected([violation(v.field or "message", v.description) for v in limits])
    if len(json.dumps(message, ensure_ascii=False).encode()) > MAX_EVENT_BYTES:
        raise Rejected([violation("message", f"larger than {MAX_EVENT_BYTES} bytes")])
    envelope = envelope or {}
    kind = message.get("type") if kind == "batch" else kind
    if kind not in MESSAGE_TYPES:
        raise Rejected([violation("type", f"required, one of {', '.join(MESSAGE_TYPES)}")])
    context = {**_object(envelope, "context"), **_object(message, "context")}
    problems: list[dict[str, str]] = []
    mapped = Mapped({"type": kind})
    event = mapped.event

    message_id = message.get("messageId")
    if message_id is None:
        message_id = str(uuid.uuid4())
    elif isinstance(message_id, int | float) and not isinstance(message_id, bool):
        message_id = str(message_id)
    event["message_id"] = message_id
    mapped.origins["message_id"] = "messageId"

    identifiers = _identifiers(message, kind, context, mapped, problems)
    event["identifiers"] = identifiers
    person_traits = _person_traits(message, kind, context, mapped, problems)
    for id_type in ("email", "phone"):
        if id_type in person_traits and id_type not in identifiers:
            value = _id_text(person_traits.pop(id_type))
            if value not in (None, ""):
                identifiers[id_type] = value  # the native checks judge its type
        person_traits.pop(id_type, None)  # never kept twice
    event["traits"] = person_traits

    if kind == "track":
        event["event"] = message.get("event")
        mapped.origins["event"] = "event"
        if not message.get("event"):
            problems.append(violation("event", "required for a track, e.g. 'Order Completed'"))
    elif kind in ("page", "screen") and message.get("name") is not None:
        event["event"] = message.get("name")
        mapped.origins["event"] = "name"
    event["properties"] = _properties(message, kind, context, person_traits, problems)
    mapped.origins["properties"] = "properties"
    event["channel"] = _channel(message, kind, context)
    if source:
        event["source"] = source
    timestamp = _timestamp(message, envelope, received_at, problems)
    if timestamp is not None:
        event["timestamp"] = timestamp
        mapped.origins["timestamp"] = "timestamp"
    if problems:
        raise Rejected(problems)
    return mapped


def _object(container: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = container.get(key)
    return value if isinstance(value, dict) else {}


def _id_text(value: Any) -> Any:
    """An id as the SDKs send it: a string, or a number (stringified, as they do)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _identifiers(message: dict[str, Any], kind: str, context: dict[str, Any], mapped: Mapped,
                 problems: list[dict[str, str]]) -> dict[str, Any]:
    identifiers: dict[str, Any] = {}

    def put(id_type: str, value: Any, origin: str) -> None:
        value = _id_text(value)
        if value is None or value == "" or id_type in identifiers:
            return
        if not isinstance(value, str):
            problems.append(violation(origin, "a string or a number"))
            return
        identifiers[id_type] = value
        mapped.origins[f"identifiers.{id_type}"] = origin

    put("user_id", message.get("userId"), "userId")
    if kind == "alias":
        put("anonymous_id", message.get("previousId"), "previousId")
        for name in ("userId", "previousId"):
            if _id_text(message.get(name)) in (None, ""):
                problems.append(violation(name, "required for an alias"))
    put("anonymous_id", message.get("anonymousId"), "anonymousId")
    if kind != "alias" and all(_id_text(message.get(name)) in (None, "")
                               for name in ("userId", "anonymousId")):
        problems.append(violation("userId", "userId or anonymousId is required"))
    device = _object(context, "device")
    put("device_id", device.get("id"), "context.device.id")
    external = context.get("externalIds")
    if isinstance(external, list):
        for i, item in enumerate(external):
            id_type = _identifier_type(item.get("type")) if isinstance(item, dict) else None
            if id_type is not None:
                put(id_type, item.get("id"), f"context.externalIds[{i}].id")
    return identifiers


def _identifier_type(name: Any) -> str | None:
    """omnicdp's identifier type for an external id's ``type`` (``email``, ``crmId``,
    ``loyalty_id``...), or None."""
    if not isinstance(name, str):
        return None
    snake = _SNAKE.sub(r"_\1", name.strip()).lower().replace("-", "_").replace(" ", "_")
    return snake if snake in IDENTIFIER_TYPES else None


def _person_traits(message: dict[str, Any], kind: str, context: dict[str, Any],
                   mapped: Mapped, problems: list[dict[str, str]]) -> dict[str, Any]:
    """The person's traits in omnicdp's names: ``context.traits``, and over them the
    ``traits`` of an identify (a group's traits are the account's, not the person's)."""
    sources = [("context.traits", context.get("traits"))]
    if kind == "identify":
        sources.append(("traits", message.get("traits")))
    traits: dict[str, Any] = {}
    for origin, given in sources:
        if given is None:
            continue
        if not isinstance(given, dict):
            problems.append(violation(origin, "an object"))
            continue
        for name, value in given.items():
            if name in _ID_TRAITS:
                continue
            if name == "address" and isinstance(value, dict):
                rest = dict(value)
                for part, trait in _ADDRESS_PARTS.items():
                    if part in rest:
                        traits[trait] = rest.pop(part)
                        mapped.origins[f"traits.{trait}"] = f"{origin}.address.{part}"
                if rest:
                    traits["address"] = rest
                    mapped.origins["traits.address"] = f"{origin}.address"
                continue
            trait = _TRAIT_NAMES.get(name, name)
            if trait == "date_of_birth" and isinstance(value, str) and _DATE.match(value):
                value = value[:10]  # the spec allows a date-time; a birth date is a date
            traits[trait] = value
            target = "identifiers" if trait in ("email", "phone") else "traits"
            mapped.origins[f"{target}.{trait}"] = f"{origin}.{name}"
    if kind == "group":
        group_id = _id_text(message.get("groupId"))
        if not isinstance(group_id, str) or not group_id:
            problems.append(violation("groupId", "required for a group: the account's id"))
        else:
            traits["group_id"] = group_id
            mapped.origins["traits.group_id"] = "groupId"
    return traits


def _properties(message: dict[str, Any], kind: str, context: dict[str, Any],
                person_traits: dict[str, Any], problems: list[dict[str, str]]) -> dict[str, Any]:
    given = message.get("properties")
    if given is not None and not isinstance(given, dict):
        problems.append(violation("properties", "an object"))
        given = None
    properties = dict(given or {})
    if kind in ("page", "screen"):
        for name in ("name", "category"):
            if message.get(name) is not None:
                properties.setdefault(name, message[name])
    if kind == "group":
        properties["group_id"] = person_traits.get("group_id")
        group_traits = message.get("traits")
        if isinstance(group_traits, dict) and group_traits:
            properties["group_traits"] = group_traits
    kept = {name: context[name] for name in KEPT_CONTEXT if context.get(name) is not None}
    if isinstance(kept.get("device"), dict):
        kept["device"] = {k: v for k, v in kept["device"].items()
                          if k not in _DROPPED_DEVICE_FIELDS}
    campaign = kept.get("campaign")
    if isinstance(campaign, dict) and isinstance(campaign.get("name"), str):
        properties.setdefault("campaign", campaign["name"])
    external = context.get("externalIds")
    if isinstance(external, list):
        unknown = [item for item in external if isinstance(item, dict)
                   and _identifier_type(item.get("type")) is None]
        if unknown:
            kept["externalIds"] = unknown
    if kept:
        properties["context"] = kept
    return properties


def _channel(message: dict[str, Any], kind: str, context: dict[str, Any]) -> str:
    for given in (message.get("channel"), context.get("channel")):
        if isinstance(given, str) and given.strip().lower() in _CHANNEL_NAMES:
            return _CHANNEL_NAMES[given.strip().lower()]
    campaign = _object(context, "campaign")
    medium = campaign.get("medium")
    if kind in ("page", "screen") and isinstance(medium, str):
        marketing = _MEDIUM_CHANNELS.get(medium.strip().lower())
        if marketing:
            return marketing
    device_type = _object(context, "device").get("type")
    os_name = _object(context, "os").get("name")
    if (kind == "screen" or context.get("app") is not None
            or any(isinstance(v, str) and v.strip().lower() in _MOBILE_OS
                   for v in (device_type, os_name))):
        return "app"
    return "web"


def _timestamp(message: dict[str, Any], envelope: Mapping[str, Any], received_at: datetime,
               problems: list[dict[str, str]]) -> str | None:
    """The event's time, corrected for the client's clock skew from ``sentAt``."""
    original_field = "originalTimestamp" if message.get("originalTimestamp") else "timestamp"
    original = _instant(message.get(original_field), original_field, problems)
    sent_at = _instant(message.get("sentAt") or envelope.get("sentAt"), "sentAt", problems)
    if original is None:
        return None
    if sent_at is not None:
        original = received_at - (sent_at - original)
    return original.isoformat().replace("+00:00", "Z")


def _instant(value: Any, name: str, problems: list[dict[str, str]]) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return rfc3339_datetime(value)
    except ValueError as error:
        problems.append(violation(name, str(error)))
        return None

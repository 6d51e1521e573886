"""Conversions between the generated protobuf messages and plain Python values.

Enum values map to the contract's lower-case names (CHANNEL_CALL_CENTER <-> "call_center").
Shared by the servicers and the gateway so that each conversion is written once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from omnicdp.api.common.v1 import common_pb2
from omnicdp.core.errors import FieldViolation
from omnicdp.core.vocabulary import IDENTIFIER_TYPES


def _enum_to_name(enum: Any, prefix: str, value: int) -> str:
    if value == 0:
        return ""
    return enum.Name(value).removeprefix(prefix).lower()


def _name_to_enum(enum: Any, prefix: str, name: str | None) -> int:
    if not name:
        return 0
    try:
        return enum.Value(prefix + name.upper())
    except ValueError:
        return 0


def event_type_name(value: int) -> str:
    return _enum_to_name(common_pb2.EventType, "EVENT_TYPE_", value)


def event_type_value(name: str | None) -> int:
    return _name_to_enum(common_pb2.EventType, "EVENT_TYPE_", name)


def channel_name(value: int) -> str:
    return _enum_to_name(common_pb2.Channel, "CHANNEL_", value)


def channel_value(name: str | None) -> int:
    return _name_to_enum(common_pb2.Channel, "CHANNEL_", name)


def identifier_type_name(value: int) -> str:
    return _enum_to_name(common_pb2.IdentifierType, "IDENTIFIER_TYPE_", value)


def identifier_type_value(name: str | None) -> int:
    return _name_to_enum(common_pb2.IdentifierType, "IDENTIFIER_TYPE_", name)


def identifiers_to_dict(message: common_pb2.Identifiers) -> dict[str, str]:
    return {name: getattr(message, name) for name in IDENTIFIER_TYPES if getattr(message, name)}


def identifiers_from_dict(values: dict[str, Any] | None) -> common_pb2.Identifiers:
    values = values or {}
    return common_pb2.Identifiers(**{
        name: str(values[name]) for name in IDENTIFIER_TYPES if values.get(name) not in (None, "")
    })


def identifier_list_to_proto(pairs: Iterable[tuple[str, str]]) -> list[common_pb2.Identifier]:
    """(type, value) pairs as repeated ``Identifier`` messages, order kept."""
    return [common_pb2.Identifier(type=identifier_type_value(t), value=v) for t, v in pairs]


def identifier_list_from_proto(messages: Iterable[common_pb2.Identifier]) -> list[tuple[str, str]]:
    return [(identifier_type_name(m.type), m.value) for m in messages]


def violations_to_proto(violations: Iterable[FieldViolation]) -> list[common_pb2.FieldViolation]:
    return [common_pb2.FieldViolation(field=v.field, description=v.description)
            for v in violations]


def violations_from_proto(messages: Iterable[common_pb2.FieldViolation]
                          ) -> tuple[FieldViolation, ...]:
    return tuple(FieldViolation(m.field, m.description) for m in messages)


def struct_to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    """The Struct as plain values. Unlike ``json_format`` it keeps NaN and infinities (as
    floats), so the service can reject the one event holding them instead of failing."""
    return {key: _value(value) for key, value in message.fields.items()}


def _value(message: struct_pb2.Value) -> Any:
    kind = message.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_dict(message.struct_value)
    if kind == "list_value":
        return [_value(item) for item in message.list_value.values]
    if kind is None or kind == "null_value":
        return None
    return getattr(message, kind)


def value_to_python(message: struct_pb2.Value) -> Any:
    """A ``google.protobuf.Value`` as the JSON value it holds (numbers as floats)."""
    return _value(message)


def value_from_python(value: Any) -> struct_pb2.Value:
    holder = struct_pb2.Struct()
    holder.update({"v": value})
    return holder.fields["v"]


def struct_from_dict(values: dict[str, Any] | None) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    if values:
        message.update(values)
    return message


def timestamp_to_datetime(message: timestamp_pb2.Timestamp) -> datetime | None:
    if message.seconds == 0 and message.nanos == 0:
        return None
    return message.ToDatetime(tzinfo=UTC)


def optional_timestamp(message: Any, name: str) -> datetime | None:
    """A Timestamp field that may be unset; set to the epoch is 1970-01-01, not unset."""
    if not message.HasField(name):
        return None
    return getattr(message, name).ToDatetime(tzinfo=UTC)


def timestamp_from_datetime(value: datetime | None) -> timestamp_pb2.Timestamp:
    message = timestamp_pb2.Timestamp()
    if value is not None:
        message.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return message

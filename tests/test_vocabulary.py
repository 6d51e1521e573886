"""The contract's vocabulary has one definition in Python, and it names what the protos name."""

from __future__ import annotations

import typing

from omnicdp.api.common.v1 import common_pb2
from omnicdp.core import vocabulary
from omnicdp.services.gateway import schemas


def _enum_names(enum, prefix: str) -> set[str]:
    return {value.name.removeprefix(prefix).lower() for value in enum.DESCRIPTOR.values
            if not value.name.endswith("_UNSPECIFIED")}


def test_identifier_types_are_the_protos_enum_and_message_fields() -> None:
    assert set(vocabulary.IDENTIFIER_TYPES) == _enum_names(common_pb2.IdentifierType,
                                                           "IDENTIFIER_TYPE_")
    assert set(vocabulary.IDENTIFIER_TYPES) == set(common_pb2.Identifiers.DESCRIPTOR.fields_by_name)
    assert list(vocabulary.PRIORITY) == list(vocabulary.IDENTIFIER_TYPES)


def test_channels_and_event_types_are_the_protos_enums() -> None:
    assert set(vocabulary.CHANNELS) == _enum_names(common_pb2.Channel, "CHANNEL_")
    assert set(vocabulary.EVENT_TYPES) == _enum_names(common_pb2.EventType, "EVENT_TYPE_")


def test_http_schema_takes_its_names_from_the_vocabulary() -> None:
    assert list(schemas.Identifiers.model_fields) == list(vocabulary.IDENTIFIER_TYPES)
    assert set(typing.get_args(schemas.ChannelName)) == set(vocabulary.CHANNELS)
    assert set(typing.get_args(schemas.EventTypeName)) == set(vocabulary.EVENT_TYPES)

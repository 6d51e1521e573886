"""The profile service's messages and its domain values, both ways: the servicer uses one
direction, ``client.py`` the other."""

from __future__ import annotations

from omnicdp.api.common.v1 import common_pb2
from omnicdp.api.profile.v1 import profile_pb2
from omnicdp.core import protoconv
from omnicdp.services.profile.model import Consent, EventIn, IngestResult, Profile, StoredEvent

_STATUS = {
    "accepted": profile_pb2.INGEST_STATUS_ACCEPTED,
    "duplicate": profile_pb2.INGEST_STATUS_DUPLICATE,
    "rejected": profile_pb2.INGEST_STATUS_REJECTED,
}
_STATUS_NAME = {value: name for name, value in _STATUS.items()}


def event_in_to_proto(event: EventIn) -> common_pb2.Event:
    # An unset timestamp stays unset (the time of receipt), so the epoch stays the epoch.
    when = ({} if event.timestamp is None
            else {"timestamp": protoconv.timestamp_from_datetime(event.timestamp)})
    return common_pb2.Event(
        message_id=event.message_id,
        type=protoconv.event_type_value(event.type),
        event=event.event,
        channel=protoconv.channel_value(event.channel),
        source=event.source,
        identifiers=protoconv.identifiers_from_dict(event.identifiers),
        traits=protoconv.struct_from_dict(event.traits),
        properties=protoconv.struct_from_dict(event.properties),
        sent_by=event.sent_by,
        **when,
    )


def event_in_from_proto(message: common_pb2.Event) -> EventIn:
    return EventIn(
        message_id=message.message_id,
        type=protoconv.event_type_name(message.type),
        channel=protoconv.channel_name(message.channel),
        event=message.event,
        source=message.source,
        timestamp=protoconv.optional_timestamp(message, "timestamp"),
        identifiers=protoconv.identifiers_to_dict(message.identifiers),
        traits=protoconv.struct_to_dict(message.traits),
        properties=protoconv.struct_to_dict(message.properties),
        sent_by=message.sent_by,
    )


def stored_event_to_proto(event: StoredEvent) -> common_pb2.Event:
    message = event_in_to_proto(EventIn(
        event.message_id, event.type, event.channel, event.event, event.source,
        event.timestamp, event.identifiers, event.traits, event.properties, event.sent_by))
    message.customer_id = event.customer_id
    message.received_at.CopyFrom(protoconv.timestamp_from_datetime(event.received_at))
    return message


def stored_event_from_proto(message: common_pb2.Event) -> StoredEvent:
    event = event_in_from_proto(message)
    return StoredEvent(
        message_id=event.message_id, customer_id=message.customer_id, type=event.type,
        channel=event.channel, event=event.event, source=event.source,
        timestamp=event.timestamp, received_at=protoconv.timestamp_to_datetime(
            message.received_at), identifiers=event.identifiers, traits=event.traits,
        properties=event.properties, sent_by=event.sent_by)


def profile_to_proto(profile: Profile) -> profile_pb2.Profile:
    return profile_pb2.Profile(
        customer_id=profile.customer_id,
        identifiers=protoconv.identifier_list_to_proto(profile.identifiers),
        traits=protoconv.struct_from_dict(profile.traits),
        consents=[profile_pb2.Consent(
            purpose=c.purpose, channel=protoconv.channel_value(c.channel), granted=c.granted,
            updated_at=protoconv.timestamp_from_datetime(c.updated_at), source=c.source)
            for c in profile.consents],
        first_seen=protoconv.timestamp_from_datetime(profile.first_seen),
        last_seen=protoconv.timestamp_from_datetime(profile.last_seen),
        scores=profile.scores,
        event_count=profile.event_count,
        merged_customer_ids=profile.merged_customer_ids,
    )


def profile_from_proto(message: profile_pb2.Profile) -> Profile:
    return Profile(
        customer_id=message.customer_id,
        identifiers=protoconv.identifier_list_from_proto(message.identifiers),
        traits=protoconv.struct_to_dict(message.traits),
        first_seen=protoconv.timestamp_to_datetime(message.first_seen),
        last_seen=protoconv.timestamp_to_datetime(message.last_seen),
        event_count=message.event_count,
        consents=[Consent(c.purpose, protoconv.channel_name(c.channel), c.granted,
                          protoconv.timestamp_to_datetime(c.updated_at), c.source)
                  for c in message.consents],
        scores=dict(message.scores),
        merged_customer_ids=list(message.merged_customer_ids),
    )


def result_to_proto(result: IngestResult) -> profile_pb2.EventResult:
    return profile_pb2.EventResult(
        message_id=result.message_id, status=_STATUS[result.status],
        customer_id=result.customer_id,
        violations=protoconv.violations_to_proto(result.violations),
        warnings=protoconv.violations_to_proto(result.warnings))


def result_from_proto(message: profile_pb2.EventResult) -> IngestResult:
    return IngestResult(
        message_id=message.message_id, status=_STATUS_NAME[message.status],
        customer_id=message.customer_id,
        violations=protoconv.violations_from_proto(message.violations),
        warnings=protoconv.violations_from_proto(message.warnings))

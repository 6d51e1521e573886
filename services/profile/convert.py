"""The profile service's messages and its domain values, both ways: the servicer uses one
direction, ``client.py`` the other."""

from __future__ import annotations

from typing import Any

from omnicdp.api.common.v1 import common_pb2
from omnicdp.api.profile.v1 import audience_pb2, profile_pb2
from omnicdp.core import protoconv
from omnicdp.services.profile.audiences import rules
from omnicdp.services.profile.audiences.export import Member
from omnicdp.services.profile.model import (
    AudienceChange,
    AudienceState,
    Consent,
    Counters,
    CustomerScores,
    EventIn,
    IdentifierDetail,
    IngestResult,
    Profile,
    Score,
    ScoreWrite,
    StoredEvent,
)

_STATUS = {
    "accepted": profile_pb2.INGEST_STATUS_ACCEPTED,
    "duplicate": profile_pb2.INGEST_STATUS_DUPLICATE,
    "rejected": profile_pb2.INGEST_STATUS_REJECTED,
}
_STATUS_NAME = {value: name for name, value in _STATUS.items()}
_CONSENT_STATUS = {
    "granted": profile_pb2.CONSENT_STATUS_GRANTED,
    "denied": profile_pb2.CONSENT_STATUS_DENIED,
    "withdrawn": profile_pb2.CONSENT_STATUS_WITHDRAWN,
}
_CONSENT_STATUS_NAME = {value: name for name, value in _CONSENT_STATUS.items()}
_SCORE_WRITE = {
    "stored": profile_pb2.SCORE_WRITE_STATUS_STORED,
    "unchanged": profile_pb2.SCORE_WRITE_STATUS_UNCHANGED,
    "not_found": profile_pb2.SCORE_WRITE_STATUS_NOT_FOUND,
}
_SCORE_WRITE_NAME = {value: name for name, value in _SCORE_WRITE.items()}


def score_to_proto(score: Score) -> profile_pb2.Score:
    message = profile_pb2.Score(name=score.name, value=score.value, model=score.model,
                                model_version=score.model_version)
    if score.computed_at is not None:
        message.computed_at.CopyFrom(protoconv.timestamp_from_datetime(score.computed_at))
    return message


def score_from_proto(message: profile_pb2.Score) -> Score:
    """A score as sent (an unset time is None, which the service refuses)."""
    return Score(name=message.name, value=message.value, model=message.model,
                 model_version=message.model_version,
                 computed_at=protoconv.optional_timestamp(message, "computed_at"))  # type: ignore[arg-type]


def customer_scores_to_proto(entry: CustomerScores) -> profile_pb2.CustomerScores:
    return profile_pb2.CustomerScores(customer_id=entry.customer_id,
                                      scores=[score_to_proto(s) for s in entry.scores])


def customer_scores_from_proto(message: profile_pb2.CustomerScores) -> CustomerScores:
    return CustomerScores(message.customer_id,
                          tuple(score_from_proto(s) for s in message.scores))


def score_write_to_proto(result: ScoreWrite) -> profile_pb2.ScoreWriteResult:
    return profile_pb2.ScoreWriteResult(
        customer_id=result.customer_id, status=_SCORE_WRITE[result.status],
        stored_customer_id=result.stored_customer_id, scores_stored=result.scores_stored)


def score_write_from_proto(message: profile_pb2.ScoreWriteResult) -> ScoreWrite:
    return ScoreWrite(message.customer_id, _SCORE_WRITE_NAME[message.status],
                      message.stored_customer_id, message.scores_stored)


def consent_to_proto(consent: Consent) -> profile_pb2.Consent:
    message = profile_pb2.Consent(
        purpose=consent.purpose, channel=protoconv.channel_value(consent.channel or None),
        granted=consent.granted, status=_CONSENT_STATUS.get(consent.status, 0),
        source=consent.source, legal_basis=consent.legal_basis,
        proof_reference=consent.proof_reference)
    if consent.updated_at is not None:  # unset in an update: the time it is recorded
        message.updated_at.CopyFrom(protoconv.timestamp_from_datetime(consent.updated_at))
    if consent.recorded_at is not None:
        message.recorded_at.CopyFrom(protoconv.timestamp_from_datetime(consent.recorded_at))
    return message


def consent_from_proto(message: profile_pb2.Consent) -> Consent:
    """A decision as sent (an unset time is None: the service fills in when it records it)."""
    return Consent(
        purpose=message.purpose,
        channel=protoconv.channel_name(message.channel) if message.channel else "",
        status=_CONSENT_STATUS_NAME.get(message.status, ""),
        updated_at=protoconv.optional_timestamp(message, "updated_at"),  # type: ignore[arg-type]
        source=message.source, legal_basis=message.legal_basis,
        proof_reference=message.proof_reference,
        recorded_at=protoconv.optional_timestamp(message, "recorded_at"))


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
        consents=[consent_to_proto(c) for c in profile.consents],
        first_seen=protoconv.timestamp_from_datetime(profile.first_seen),
        last_seen=protoconv.timestamp_from_datetime(profile.last_seen),
        scores={name: score.value for name, score in profile.scores.items()},
        score_details=[score_to_proto(s) for s in profile.scores.values()],
        event_count=profile.event_count,
        merged_customer_ids=profile.merged_customer_ids,
        identifier_details=[profile_pb2.ProfileIdentifier(
            type=protoconv.identifier_type_value(d.id_type), value=d.value, sources=d.sources,
            first_seen=protoconv.timestamp_from_datetime(d.first_seen),
            last_seen=protoconv.timestamp_from_datetime(d.last_seen))
            for d in profile.identifier_details],
        counters=profile_pb2.ProfileCounters(
            events_by_channel=profile.counters.events_by_channel,
            orders_online=profile.counters.orders_online,
            orders_store=profile.counters.orders_store, revenue=profile.counters.revenue),
    )


def profile_from_proto(message: profile_pb2.Profile) -> Profile:
    return Profile(
        customer_id=message.customer_id,
        identifiers=protoconv.identifier_list_from_proto(message.identifiers),
        traits=protoconv.struct_to_dict(message.traits),
        first_seen=protoconv.timestamp_to_datetime(message.first_seen),
        last_seen=protoconv.timestamp_to_datetime(message.last_seen),
        event_count=message.event_count,
        consents=[consent_from_proto(c) for c in message.consents],
        scores={s.name: score_from_proto(s) for s in message.score_details},
        merged_customer_ids=list(message.merged_customer_ids),
        identifier_details=[IdentifierDetail(
            protoconv.identifier_type_name(d.type), d.value, tuple(d.sources),
            protoconv.timestamp_to_datetime(d.first_seen),
            protoconv.timestamp_to_datetime(d.last_seen)) for d in message.identifier_details],
        counters=Counters(dict(message.counters.events_by_channel),
                          message.counters.orders_online, message.counters.orders_store,
                          message.counters.revenue),
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


# -- audiences -------------------------------------------------------------------------------

_HASHING = {False: audience_pb2.IDENTIFIER_HASHING_NONE,
            True: audience_pb2.IDENTIFIER_HASHING_SHA256}
_CHANGE = {"joined": audience_pb2.MEMBERSHIP_CHANGE_JOINED,
           "left": audience_pb2.MEMBERSHIP_CHANGE_LEFT}
_CHANGE_NAME = {value: name for name, value in _CHANGE.items()}


def hashing_from_proto(value: int) -> bool:
    """Whether identifiers are to be hashed (unspecified: not)."""
    return value == audience_pb2.IDENTIFIER_HASHING_SHA256


def hashing_to_proto(hashed: bool) -> int:
    return _HASHING[hashed]


def _test_from_proto(test: audience_pb2.ValueTest, key: str) -> dict[str, Any]:
    document: dict[str, Any] = {key: test.field, "op": test.op}
    if test.HasField("value"):
        document["value"] = protoconv.value_to_python(test.value)
    return document


def _test_to_proto(document: dict[str, Any], key: str) -> audience_pb2.ValueTest:
    test = audience_pb2.ValueTest(field=document[key], op=document["op"])
    if "value" in document:
        test.value.CopyFrom(protoconv.value_from_python(document["value"]))
    return test


def _condition_from_proto(condition: audience_pb2.AudienceCondition) -> dict[str, Any]:
    kind = condition.WhichOneof("condition")
    if kind is None:
        return {}
    if kind != "event":
        return {kind: _test_from_proto(getattr(condition, kind), "name")}
    event = condition.event
    document: dict[str, Any] = {"name": event.name}
    if event.channel:
        document["channel"] = protoconv.channel_name(event.channel)
    for name in ("within_days", "min_count", "max_count"):
        if event.HasField(name):
            document[name] = getattr(event, name)
    if event.where:
        document["where"] = [_test_from_proto(t, "property") for t in event.where]
    return {"event": document}


def _condition_to_proto(document: dict[str, Any]) -> audience_pb2.AudienceCondition:
    [(kind, body)] = document.items()
    if kind != "event":
        return audience_pb2.AudienceCondition(**{kind: _test_to_proto(body, "name")})
    event = audience_pb2.EventCondition(
        name=body["name"], channel=protoconv.channel_value(body.get("channel")),
        where=[_test_to_proto(t, "property") for t in body.get("where", [])])
    for name in ("within_days", "min_count", "max_count"):
        if body.get(name) is not None:
            setattr(event, name, body[name])
    return audience_pb2.AudienceCondition(event=event)


def audience_definition_from_proto(audience: audience_pb2.Audience) -> dict[str, Any]:
    """The definition a message carries, as the JSON object ``rules.parse`` checks."""
    document: dict[str, Any] = {
        "description": audience.description,
        "include": [_condition_from_proto(c) for c in audience.include],
        "exclude": [_condition_from_proto(c) for c in audience.exclude]}
    if audience.HasField("consent"):
        document["consent"] = {"purpose": audience.consent.purpose}
        if audience.consent.channel:
            document["consent"]["channel"] = protoconv.channel_name(audience.consent.channel)
    return document


def audience_to_proto(audience: rules.Audience,
                      state: AudienceState | None = None) -> audience_pb2.Audience:
    document = audience.to_dict()
    message = audience_pb2.Audience(
        name=audience.name, description=audience.description,
        include=[_condition_to_proto(c) for c in document["include"]],
        exclude=[_condition_to_proto(c) for c in document["exclude"]],
        summary=audience.describe())
    if audience.consent:
        message.consent.CopyFrom(audience_pb2.ConsentRequirement(
            purpose=audience.consent.purpose,
            channel=protoconv.channel_value(audience.consent.channel or None)))
    if state is not None:
        message.create_time.CopyFrom(protoconv.timestamp_from_datetime(state.created_at))
        message.update_time.CopyFrom(protoconv.timestamp_from_datetime(state.updated_at))
        message.member_count = state.members
    return message


def audience_state_from_proto(message: audience_pb2.Audience, joined: int = 0, left: int = 0,
                              created: bool = False) -> AudienceState:
    return AudienceState(
        rules.parse(message.name, audience_definition_from_proto(message)),
        protoconv.timestamp_to_datetime(message.create_time),
        protoconv.timestamp_to_datetime(message.update_time),
        message.member_count, joined, left, created)


def member_to_proto(member: Member) -> audience_pb2.AudienceMember:
    return audience_pb2.AudienceMember(
        customer_id=member.customer_id, since=protoconv.timestamp_from_datetime(member.since),
        identifiers=protoconv.identifier_list_to_proto(member.identifiers),
        hashing=hashing_to_proto(member.hashed))


def member_from_proto(message: audience_pb2.AudienceMember) -> Member:
    return Member(message.customer_id, protoconv.timestamp_to_datetime(message.since),
                  tuple(protoconv.identifier_list_from_proto(message.identifiers)),
                  hashing_from_proto(message.hashing))


def audience_change_to_proto(change: AudienceChange) -> audience_pb2.AudienceChange:
    return audience_pb2.AudienceChange(
        seq=change.seq, customer_id=change.customer_id, change=_CHANGE[change.change],
        change_time=protoconv.timestamp_from_datetime(change.at), reason=change.reason)


def audience_change_from_proto(message: audience_pb2.AudienceChange) -> AudienceChange:
    return AudienceChange(message.seq, message.customer_id, _CHANGE_NAME[message.change],
                          protoconv.timestamp_to_datetime(message.change_time), message.reason)

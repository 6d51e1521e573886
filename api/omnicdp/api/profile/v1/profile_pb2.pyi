import datetime

from omnicdp.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INGEST_STATUS_UNSPECIFIED: _ClassVar[IngestStatus]
    INGEST_STATUS_ACCEPTED: _ClassVar[IngestStatus]
    INGEST_STATUS_DUPLICATE: _ClassVar[IngestStatus]
    INGEST_STATUS_REJECTED: _ClassVar[IngestStatus]

class ConsentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSENT_STATUS_UNSPECIFIED: _ClassVar[ConsentStatus]
    CONSENT_STATUS_GRANTED: _ClassVar[ConsentStatus]
    CONSENT_STATUS_DENIED: _ClassVar[ConsentStatus]
    CONSENT_STATUS_WITHDRAWN: _ClassVar[ConsentStatus]

class ScoreWriteStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCORE_WRITE_STATUS_UNSPECIFIED: _ClassVar[ScoreWriteStatus]
    SCORE_WRITE_STATUS_STORED: _ClassVar[ScoreWriteStatus]
    SCORE_WRITE_STATUS_UNCHANGED: _ClassVar[ScoreWriteStatus]
    SCORE_WRITE_STATUS_NOT_FOUND: _ClassVar[ScoreWriteStatus]
INGEST_STATUS_UNSPECIFIED: IngestStatus
INGEST_STATUS_ACCEPTED: IngestStatus
INGEST_STATUS_DUPLICATE: IngestStatus
INGEST_STATUS_REJECTED: IngestStatus
CONSENT_STATUS_UNSPECIFIED: ConsentStatus
CONSENT_STATUS_GRANTED: ConsentStatus
CONSENT_STATUS_DENIED: ConsentStatus
CONSENT_STATUS_WITHDRAWN: ConsentStatus
SCORE_WRITE_STATUS_UNSPECIFIED: ScoreWriteStatus
SCORE_WRITE_STATUS_STORED: ScoreWriteStatus
SCORE_WRITE_STATUS_UNCHANGED: ScoreWriteStatus
SCORE_WRITE_STATUS_NOT_FOUND: ScoreWriteStatus

class IngestEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_common_pb2.Event]
    def __init__(self, events: _Optional[_Iterable[_Union[_common_pb2.Event, _Mapping]]] = ...) -> None: ...

class IngestEventsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[EventResult]
    def __init__(self, results: _Optional[_Iterable[_Union[EventResult, _Mapping]]] = ...) -> None: ...

class EventResult(_message.Message):
    __slots__ = ("message_id", "status", "customer_id", "violations", "warnings")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    status: IngestStatus
    customer_id: str
    violations: _containers.RepeatedCompositeFieldContainer[_common_pb2.FieldViolation]
    warnings: _containers.RepeatedCompositeFieldContainer[_common_pb2.FieldViolation]
    def __init__(self, message_id: _Optional[str] = ..., status: _Optional[_Union[IngestStatus, str]] = ..., customer_id: _Optional[str] = ..., violations: _Optional[_Iterable[_Union[_common_pb2.FieldViolation, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[_common_pb2.FieldViolation, _Mapping]]] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("purpose", "channel", "granted", "updated_at", "source", "status", "legal_basis", "proof_reference", "recorded_at")
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    PROOF_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    purpose: str
    channel: _common_pb2.Channel
    granted: bool
    updated_at: _timestamp_pb2.Timestamp
    source: str
    status: ConsentStatus
    legal_basis: str
    proof_reference: str
    recorded_at: _timestamp_pb2.Timestamp
    def __init__(self, purpose: _Optional[str] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., granted: _Optional[bool] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., status: _Optional[_Union[ConsentStatus, str]] = ..., legal_basis: _Optional[str] = ..., proof_reference: _Optional[str] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProfileIdentifier(_message.Message):
    __slots__ = ("type", "value", "sources", "first_seen", "last_seen")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    type: _common_pb2.IdentifierType
    value: str
    sources: _containers.RepeatedScalarFieldContainer[str]
    first_seen: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    def __init__(self, type: _Optional[_Union[_common_pb2.IdentifierType, str]] = ..., value: _Optional[str] = ..., sources: _Optional[_Iterable[str]] = ..., first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProfileCounters(_message.Message):
    __slots__ = ("events_by_channel", "orders_online", "orders_store", "revenue")
    class EventsByChannelEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    EVENTS_BY_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ORDERS_ONLINE_FIELD_NUMBER: _ClassVar[int]
    ORDERS_STORE_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    events_by_channel: _containers.ScalarMap[str, int]
    orders_online: int
    orders_store: int
    revenue: float
    def __init__(self, events_by_channel: _Optional[_Mapping[str, int]] = ..., orders_online: _Optional[int] = ..., orders_store: _Optional[int] = ..., revenue: _Optional[float] = ...) -> None: ...

class Profile(_message.Message):
    __slots__ = ("customer_id", "identifiers", "traits", "consents", "first_seen", "last_seen", "scores", "event_count", "merged_customer_ids", "identifier_details", "counters", "score_details")
    class ScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    CONSENTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    MERGED_CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIER_DETAILS_FIELD_NUMBER: _ClassVar[int]
    COUNTERS_FIELD_NUMBER: _ClassVar[int]
    SCORE_DETAILS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    identifiers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Identifier]
    traits: _struct_pb2.Struct
    consents: _containers.RepeatedCompositeFieldContainer[Consent]
    first_seen: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    scores: _containers.ScalarMap[str, float]
    event_count: int
    merged_customer_ids: _containers.RepeatedScalarFieldContainer[str]
    identifier_details: _containers.RepeatedCompositeFieldContainer[ProfileIdentifier]
    counters: ProfileCounters
    score_details: _containers.RepeatedCompositeFieldContainer[Score]
    def __init__(self, customer_id: _Optional[str] = ..., identifiers: _Optional[_Iterable[_Union[_common_pb2.Identifier, _Mapping]]] = ..., traits: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., consents: _Optional[_Iterable[_Union[Consent, _Mapping]]] = ..., first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scores: _Optional[_Mapping[str, float]] = ..., event_count: _Optional[int] = ..., merged_customer_ids: _Optional[_Iterable[str]] = ..., identifier_details: _Optional[_Iterable[_Union[ProfileIdentifier, _Mapping]]] = ..., counters: _Optional[_Union[ProfileCounters, _Mapping]] = ..., score_details: _Optional[_Iterable[_Union[Score, _Mapping]]] = ...) -> None: ...

class GetProfileRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class GetProfileResponse(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ...) -> None: ...

class LookupProfileRequest(_message.Message):
    __slots__ = ("type", "value")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    type: _common_pb2.IdentifierType
    value: str
    def __init__(self, type: _Optional[_Union[_common_pb2.IdentifierType, str]] = ..., value: _Optional[str] = ...) -> None: ...

class LookupProfileResponse(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ...) -> None: ...

class ListProfileEventsRequest(_message.Message):
    __slots__ = ("customer_id", "page_size", "page_token")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    page_size: int
    page_token: str
    def __init__(self, customer_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListProfileEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_common_pb2.Event]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[_common_pb2.Event, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token", "snapshot_seq")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_SEQ_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_common_pb2.Event]
    next_page_token: str
    snapshot_seq: int
    def __init__(self, events: _Optional[_Iterable[_Union[_common_pb2.Event, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., snapshot_seq: _Optional[int] = ...) -> None: ...

class UpdateConsentsRequest(_message.Message):
    __slots__ = ("customer_id", "consents")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENTS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    consents: _containers.RepeatedCompositeFieldContainer[Consent]
    def __init__(self, customer_id: _Optional[str] = ..., consents: _Optional[_Iterable[_Union[Consent, _Mapping]]] = ...) -> None: ...

class UpdateConsentsResponse(_message.Message):
    __slots__ = ("consents",)
    CONSENTS_FIELD_NUMBER: _ClassVar[int]
    consents: _containers.RepeatedCompositeFieldContainer[Consent]
    def __init__(self, consents: _Optional[_Iterable[_Union[Consent, _Mapping]]] = ...) -> None: ...

class ListConsentHistoryRequest(_message.Message):
    __slots__ = ("customer_id", "page_size", "page_token")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    page_size: int
    page_token: str
    def __init__(self, customer_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListConsentHistoryResponse(_message.Message):
    __slots__ = ("consents", "next_page_token")
    CONSENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    consents: _containers.RepeatedCompositeFieldContainer[Consent]
    next_page_token: str
    def __init__(self, consents: _Optional[_Iterable[_Union[Consent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class EraseProfileRequest(_message.Message):
    __slots__ = ("customer_id", "actor", "reason")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    actor: str
    reason: str
    def __init__(self, customer_id: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EraseProfileResponse(_message.Message):
    __slots__ = ("customer_id", "events_erased", "identifiers_erased", "consents_erased", "records_erased", "erased_at")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_ERASED_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIERS_ERASED_FIELD_NUMBER: _ClassVar[int]
    CONSENTS_ERASED_FIELD_NUMBER: _ClassVar[int]
    RECORDS_ERASED_FIELD_NUMBER: _ClassVar[int]
    ERASED_AT_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    events_erased: int
    identifiers_erased: int
    consents_erased: int
    records_erased: int
    erased_at: _timestamp_pb2.Timestamp
    def __init__(self, customer_id: _Optional[str] = ..., events_erased: _Optional[int] = ..., identifiers_erased: _Optional[int] = ..., consents_erased: _Optional[int] = ..., records_erased: _Optional[int] = ..., erased_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Score(_message.Message):
    __slots__ = ("name", "value", "model", "model_version", "computed_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    model: str
    model_version: str
    computed_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., model: _Optional[str] = ..., model_version: _Optional[str] = ..., computed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CustomerScores(_message.Message):
    __slots__ = ("customer_id", "scores")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    scores: _containers.RepeatedCompositeFieldContainer[Score]
    def __init__(self, customer_id: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[Score, _Mapping]]] = ...) -> None: ...

class SetScoresRequest(_message.Message):
    __slots__ = ("customers",)
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    customers: _containers.RepeatedCompositeFieldContainer[CustomerScores]
    def __init__(self, customers: _Optional[_Iterable[_Union[CustomerScores, _Mapping]]] = ...) -> None: ...

class ScoreWriteResult(_message.Message):
    __slots__ = ("customer_id", "status", "stored_customer_id", "scores_stored")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STORED_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    SCORES_STORED_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    status: ScoreWriteStatus
    stored_customer_id: str
    scores_stored: int
    def __init__(self, customer_id: _Optional[str] = ..., status: _Optional[_Union[ScoreWriteStatus, str]] = ..., stored_customer_id: _Optional[str] = ..., scores_stored: _Optional[int] = ...) -> None: ...

class SetScoresResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoreWriteResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ScoreWriteResult, _Mapping]]] = ...) -> None: ...

class GetCustomerScoresRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class GetCustomerScoresResponse(_message.Message):
    __slots__ = ("customer_id", "scores")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    scores: _containers.RepeatedCompositeFieldContainer[Score]
    def __init__(self, customer_id: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[Score, _Mapping]]] = ...) -> None: ...

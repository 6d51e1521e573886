import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from omnicdp.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IdentifierHashing(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IDENTIFIER_HASHING_UNSPECIFIED: _ClassVar[IdentifierHashing]
    IDENTIFIER_HASHING_NONE: _ClassVar[IdentifierHashing]
    IDENTIFIER_HASHING_SHA256: _ClassVar[IdentifierHashing]

class MembershipChange(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMBERSHIP_CHANGE_UNSPECIFIED: _ClassVar[MembershipChange]
    MEMBERSHIP_CHANGE_JOINED: _ClassVar[MembershipChange]
    MEMBERSHIP_CHANGE_LEFT: _ClassVar[MembershipChange]
IDENTIFIER_HASHING_UNSPECIFIED: IdentifierHashing
IDENTIFIER_HASHING_NONE: IdentifierHashing
IDENTIFIER_HASHING_SHA256: IdentifierHashing
MEMBERSHIP_CHANGE_UNSPECIFIED: MembershipChange
MEMBERSHIP_CHANGE_JOINED: MembershipChange
MEMBERSHIP_CHANGE_LEFT: MembershipChange

class ValueTest(_message.Message):
    __slots__ = ("field", "op", "value")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    field: str
    op: str
    value: _struct_pb2.Value
    def __init__(self, field: _Optional[str] = ..., op: _Optional[str] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class EventCondition(_message.Message):
    __slots__ = ("name", "channel", "within_days", "min_count", "max_count", "where")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    WITHIN_DAYS_FIELD_NUMBER: _ClassVar[int]
    MIN_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    name: str
    channel: _common_pb2.Channel
    within_days: int
    min_count: int
    max_count: int
    where: _containers.RepeatedCompositeFieldContainer[ValueTest]
    def __init__(self, name: _Optional[str] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ..., within_days: _Optional[int] = ..., min_count: _Optional[int] = ..., max_count: _Optional[int] = ..., where: _Optional[_Iterable[_Union[ValueTest, _Mapping]]] = ...) -> None: ...

class AudienceCondition(_message.Message):
    __slots__ = ("event", "trait", "score", "counter")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    TRAIT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    COUNTER_FIELD_NUMBER: _ClassVar[int]
    event: EventCondition
    trait: ValueTest
    score: ValueTest
    counter: ValueTest
    def __init__(self, event: _Optional[_Union[EventCondition, _Mapping]] = ..., trait: _Optional[_Union[ValueTest, _Mapping]] = ..., score: _Optional[_Union[ValueTest, _Mapping]] = ..., counter: _Optional[_Union[ValueTest, _Mapping]] = ...) -> None: ...

class ConsentRequirement(_message.Message):
    __slots__ = ("purpose", "channel")
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    purpose: str
    channel: _common_pb2.Channel
    def __init__(self, purpose: _Optional[str] = ..., channel: _Optional[_Union[_common_pb2.Channel, str]] = ...) -> None: ...

class Audience(_message.Message):
    __slots__ = ("name", "description", "include", "exclude", "consent", "create_time", "update_time", "member_count", "summary")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    include: _containers.RepeatedCompositeFieldContainer[AudienceCondition]
    exclude: _containers.RepeatedCompositeFieldContainer[AudienceCondition]
    consent: ConsentRequirement
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    member_count: int
    summary: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., include: _Optional[_Iterable[_Union[AudienceCondition, _Mapping]]] = ..., exclude: _Optional[_Iterable[_Union[AudienceCondition, _Mapping]]] = ..., consent: _Optional[_Union[ConsentRequirement, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., member_count: _Optional[int] = ..., summary: _Optional[str] = ...) -> None: ...

class PutAudienceRequest(_message.Message):
    __slots__ = ("audience",)
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    audience: Audience
    def __init__(self, audience: _Optional[_Union[Audience, _Mapping]] = ...) -> None: ...

class PutAudienceResponse(_message.Message):
    __slots__ = ("audience", "created", "joined", "left")
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    JOINED_FIELD_NUMBER: _ClassVar[int]
    LEFT_FIELD_NUMBER: _ClassVar[int]
    audience: Audience
    created: bool
    joined: int
    left: int
    def __init__(self, audience: _Optional[_Union[Audience, _Mapping]] = ..., created: _Optional[bool] = ..., joined: _Optional[int] = ..., left: _Optional[int] = ...) -> None: ...

class GetAudienceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetAudienceResponse(_message.Message):
    __slots__ = ("audience",)
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    audience: Audience
    def __init__(self, audience: _Optional[_Union[Audience, _Mapping]] = ...) -> None: ...

class ListAudiencesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAudiencesResponse(_message.Message):
    __slots__ = ("audiences", "next_page_token")
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    audiences: _containers.RepeatedCompositeFieldContainer[Audience]
    next_page_token: str
    def __init__(self, audiences: _Optional[_Iterable[_Union[Audience, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteAudienceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteAudienceResponse(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class AudienceMember(_message.Message):
    __slots__ = ("customer_id", "since", "identifiers", "hashing")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    HASHING_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    since: _timestamp_pb2.Timestamp
    identifiers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Identifier]
    hashing: IdentifierHashing
    def __init__(self, customer_id: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., identifiers: _Optional[_Iterable[_Union[_common_pb2.Identifier, _Mapping]]] = ..., hashing: _Optional[_Union[IdentifierHashing, str]] = ...) -> None: ...

class ListAudienceMembersRequest(_message.Message):
    __slots__ = ("name", "page_size", "page_token", "hashing")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HASHING_FIELD_NUMBER: _ClassVar[int]
    name: str
    page_size: int
    page_token: str
    hashing: IdentifierHashing
    def __init__(self, name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., hashing: _Optional[_Union[IdentifierHashing, str]] = ...) -> None: ...

class ListAudienceMembersResponse(_message.Message):
    __slots__ = ("members", "next_page_token")
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[AudienceMember]
    next_page_token: str
    def __init__(self, members: _Optional[_Iterable[_Union[AudienceMember, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AudienceChange(_message.Message):
    __slots__ = ("seq", "customer_id", "change", "change_time", "reason")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    customer_id: str
    change: MembershipChange
    change_time: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, seq: _Optional[int] = ..., customer_id: _Optional[str] = ..., change: _Optional[_Union[MembershipChange, str]] = ..., change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ListAudienceChangesRequest(_message.Message):
    __slots__ = ("name", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAudienceChangesResponse(_message.Message):
    __slots__ = ("changes", "next_page_token")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[AudienceChange]
    next_page_token: str
    def __init__(self, changes: _Optional[_Iterable[_Union[AudienceChange, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ExportAudienceRequest(_message.Message):
    __slots__ = ("name", "hashing")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HASHING_FIELD_NUMBER: _ClassVar[int]
    name: str
    hashing: IdentifierHashing
    def __init__(self, name: _Optional[str] = ..., hashing: _Optional[_Union[IdentifierHashing, str]] = ...) -> None: ...

class ExportAudienceResponse(_message.Message):
    __slots__ = ("member",)
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    member: AudienceMember
    def __init__(self, member: _Optional[_Union[AudienceMember, _Mapping]] = ...) -> None: ...

class RefreshAudiencesRequest(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class RefreshAudiencesResponse(_message.Message):
    __slots__ = ("audiences",)
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    audiences: _containers.RepeatedCompositeFieldContainer[AudienceRefresh]
    def __init__(self, audiences: _Optional[_Iterable[_Union[AudienceRefresh, _Mapping]]] = ...) -> None: ...

class AudienceRefresh(_message.Message):
    __slots__ = ("name", "joined", "left", "member_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JOINED_FIELD_NUMBER: _ClassVar[int]
    LEFT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    joined: int
    left: int
    member_count: int
    def __init__(self, name: _Optional[str] = ..., joined: _Optional[int] = ..., left: _Optional[int] = ..., member_count: _Optional[int] = ...) -> None: ...

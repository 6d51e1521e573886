import datetime

from omnicdp.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IdentityRecord(_message.Message):
    __slots__ = ("record_id", "identifiers", "observed_at")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    identifiers: _common_pb2.Identifiers
    observed_at: _timestamp_pb2.Timestamp
    def __init__(self, record_id: _Optional[str] = ..., identifiers: _Optional[_Union[_common_pb2.Identifiers, _Mapping]] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ResolveIdentitiesRequest(_message.Message):
    __slots__ = ("request_id", "records")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    records: _containers.RepeatedCompositeFieldContainer[IdentityRecord]
    def __init__(self, request_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[IdentityRecord, _Mapping]]] = ...) -> None: ...

class Resolution(_message.Message):
    __slots__ = ("record_id", "customer_id", "created", "merged_customer_ids", "matched_on", "identifiers", "violations", "warnings")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    MERGED_CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    MATCHED_ON_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    customer_id: str
    created: bool
    merged_customer_ids: _containers.RepeatedScalarFieldContainer[str]
    matched_on: _containers.RepeatedScalarFieldContainer[_common_pb2.IdentifierType]
    identifiers: _common_pb2.Identifiers
    violations: _containers.RepeatedCompositeFieldContainer[_common_pb2.FieldViolation]
    warnings: _containers.RepeatedCompositeFieldContainer[_common_pb2.FieldViolation]
    def __init__(self, record_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., created: _Optional[bool] = ..., merged_customer_ids: _Optional[_Iterable[str]] = ..., matched_on: _Optional[_Iterable[_Union[_common_pb2.IdentifierType, str]]] = ..., identifiers: _Optional[_Union[_common_pb2.Identifiers, _Mapping]] = ..., violations: _Optional[_Iterable[_Union[_common_pb2.FieldViolation, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[_common_pb2.FieldViolation, _Mapping]]] = ...) -> None: ...

class ResolveIdentitiesResponse(_message.Message):
    __slots__ = ("resolutions",)
    RESOLUTIONS_FIELD_NUMBER: _ClassVar[int]
    resolutions: _containers.RepeatedCompositeFieldContainer[Resolution]
    def __init__(self, resolutions: _Optional[_Iterable[_Union[Resolution, _Mapping]]] = ...) -> None: ...

class LookupCustomerRequest(_message.Message):
    __slots__ = ("type", "value")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    type: _common_pb2.IdentifierType
    value: str
    def __init__(self, type: _Optional[_Union[_common_pb2.IdentifierType, str]] = ..., value: _Optional[str] = ...) -> None: ...

class LookupCustomerResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class GetCustomerRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class GetCustomerResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class Customer(_message.Message):
    __slots__ = ("customer_id", "identifiers", "merged_customer_ids")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    MERGED_CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    identifiers: _containers.RepeatedCompositeFieldContainer[_common_pb2.Identifier]
    merged_customer_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, customer_id: _Optional[str] = ..., identifiers: _Optional[_Iterable[_Union[_common_pb2.Identifier, _Mapping]]] = ..., merged_customer_ids: _Optional[_Iterable[str]] = ...) -> None: ...

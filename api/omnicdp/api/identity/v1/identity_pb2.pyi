import datetime

from omnicdp.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_KIND_UNSPECIFIED: _ClassVar[ChangeKind]
    CHANGE_KIND_CREATED: _ClassVar[ChangeKind]
    CHANGE_KIND_LINKED: _ClassVar[ChangeKind]
    CHANGE_KIND_MERGED: _ClassVar[ChangeKind]
    CHANGE_KIND_SPLIT: _ClassVar[ChangeKind]
    CHANGE_KIND_ERASED: _ClassVar[ChangeKind]

class ReviewKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_KIND_UNSPECIFIED: _ClassVar[ReviewKind]
    REVIEW_KIND_LINK: _ClassVar[ReviewKind]
    REVIEW_KIND_NEAR_MISS: _ClassVar[ReviewKind]

class ReviewDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_DECISION_UNSPECIFIED: _ClassVar[ReviewDecision]
    REVIEW_DECISION_ACCEPT: _ClassVar[ReviewDecision]
    REVIEW_DECISION_REJECT: _ClassVar[ReviewDecision]
CHANGE_KIND_UNSPECIFIED: ChangeKind
CHANGE_KIND_CREATED: ChangeKind
CHANGE_KIND_LINKED: ChangeKind
CHANGE_KIND_MERGED: ChangeKind
CHANGE_KIND_SPLIT: ChangeKind
CHANGE_KIND_ERASED: ChangeKind
REVIEW_KIND_UNSPECIFIED: ReviewKind
REVIEW_KIND_LINK: ReviewKind
REVIEW_KIND_NEAR_MISS: ReviewKind
REVIEW_DECISION_UNSPECIFIED: ReviewDecision
REVIEW_DECISION_ACCEPT: ReviewDecision
REVIEW_DECISION_REJECT: ReviewDecision

class PersonTraits(_message.Message):
    __slots__ = ("first_name", "last_name", "date_of_birth", "address_line", "postcode", "city", "region", "country")
    FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_NAME_FIELD_NUMBER: _ClassVar[int]
    DATE_OF_BIRTH_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_LINE_FIELD_NUMBER: _ClassVar[int]
    POSTCODE_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    first_name: str
    last_name: str
    date_of_birth: str
    address_line: str
    postcode: str
    city: str
    region: str
    country: str
    def __init__(self, first_name: _Optional[str] = ..., last_name: _Optional[str] = ..., date_of_birth: _Optional[str] = ..., address_line: _Optional[str] = ..., postcode: _Optional[str] = ..., city: _Optional[str] = ..., region: _Optional[str] = ..., country: _Optional[str] = ...) -> None: ...

class IdentityRecord(_message.Message):
    __slots__ = ("record_id", "identifiers", "observed_at", "source", "traits")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    identifiers: _common_pb2.Identifiers
    observed_at: _timestamp_pb2.Timestamp
    source: str
    traits: PersonTraits
    def __init__(self, record_id: _Optional[str] = ..., identifiers: _Optional[_Union[_common_pb2.Identifiers, _Mapping]] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., traits: _Optional[_Union[PersonTraits, _Mapping]] = ...) -> None: ...

class ResolveIdentitiesRequest(_message.Message):
    __slots__ = ("request_id", "records")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    records: _containers.RepeatedCompositeFieldContainer[IdentityRecord]
    def __init__(self, request_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[IdentityRecord, _Mapping]]] = ...) -> None: ...

class Resolution(_message.Message):
    __slots__ = ("record_id", "customer_id", "created", "merged_customer_ids", "matched_on", "identifiers", "violations", "warnings", "identity_record_id", "suppressed")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    MERGED_CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    MATCHED_ON_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    customer_id: str
    created: bool
    merged_customer_ids: _containers.RepeatedScalarFieldContainer[str]
    matched_on: _containers.RepeatedScalarFieldContainer[_common_pb2.IdentifierType]
    identifiers: _common_pb2.Identifiers
    violations: _containers.RepeatedCompositeFieldContainer[_common_pb2.FieldViolation]
    warnings: _containers.RepeatedCompositeFieldContainer[_common_pb2.FieldViolation]
    identity_record_id: str
    suppressed: bool
    def __init__(self, record_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., created: _Optional[bool] = ..., merged_customer_ids: _Optional[_Iterable[str]] = ..., matched_on: _Optional[_Iterable[_Union[_common_pb2.IdentifierType, str]]] = ..., identifiers: _Optional[_Union[_common_pb2.Identifiers, _Mapping]] = ..., violations: _Optional[_Iterable[_Union[_common_pb2.FieldViolation, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[_common_pb2.FieldViolation, _Mapping]]] = ..., identity_record_id: _Optional[str] = ..., suppressed: _Optional[bool] = ...) -> None: ...

class ResolveIdentitiesResponse(_message.Message):
    __slots__ = ("resolutions", "change_seq")
    RESOLUTIONS_FIELD_NUMBER: _ClassVar[int]
    CHANGE_SEQ_FIELD_NUMBER: _ClassVar[int]
    resolutions: _containers.RepeatedCompositeFieldContainer[Resolution]
    change_seq: int
    def __init__(self, resolutions: _Optional[_Iterable[_Union[Resolution, _Mapping]]] = ..., change_seq: _Optional[int] = ...) -> None: ...

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

class CustomerChange(_message.Message):
    __slots__ = ("seq", "kind", "customer_id", "other_customer_id", "record_ids", "committed_at")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    OTHER_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    kind: ChangeKind
    customer_id: str
    other_customer_id: str
    record_ids: _containers.RepeatedScalarFieldContainer[str]
    committed_at: _timestamp_pb2.Timestamp
    def __init__(self, seq: _Optional[int] = ..., kind: _Optional[_Union[ChangeKind, str]] = ..., customer_id: _Optional[str] = ..., other_customer_id: _Optional[str] = ..., record_ids: _Optional[_Iterable[str]] = ..., committed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListChangesRequest(_message.Message):
    __slots__ = ("after_seq", "page_size")
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    page_size: int
    def __init__(self, after_seq: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListChangesResponse(_message.Message):
    __slots__ = ("changes", "last_seq")
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[CustomerChange]
    last_seq: int
    def __init__(self, changes: _Optional[_Iterable[_Union[CustomerChange, _Mapping]]] = ..., last_seq: _Optional[int] = ...) -> None: ...

class WatchChangesRequest(_message.Message):
    __slots__ = ("after_seq",)
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    def __init__(self, after_seq: _Optional[int] = ...) -> None: ...

class WatchChangesResponse(_message.Message):
    __slots__ = ("change",)
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    change: CustomerChange
    def __init__(self, change: _Optional[_Union[CustomerChange, _Mapping]] = ...) -> None: ...

class UnmergeRequest(_message.Message):
    __slots__ = ("customer_id", "record_ids", "actor", "reason")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    record_ids: _containers.RepeatedScalarFieldContainer[str]
    actor: str
    reason: str
    def __init__(self, customer_id: _Optional[str] = ..., record_ids: _Optional[_Iterable[str]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class UnmergeResponse(_message.Message):
    __slots__ = ("kept_customer_id", "new_customer_id", "moved_record_ids", "change_seq")
    KEPT_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    MOVED_RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    CHANGE_SEQ_FIELD_NUMBER: _ClassVar[int]
    kept_customer_id: str
    new_customer_id: str
    moved_record_ids: _containers.RepeatedScalarFieldContainer[str]
    change_seq: int
    def __init__(self, kept_customer_id: _Optional[str] = ..., new_customer_id: _Optional[str] = ..., moved_record_ids: _Optional[_Iterable[str]] = ..., change_seq: _Optional[int] = ...) -> None: ...

class ExplainCustomerRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class IdentityRecordView(_message.Message):
    __slots__ = ("record_id", "source", "traits", "identifiers", "first_seen", "last_seen")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRAITS_FIELD_NUMBER: _ClassVar[int]
    IDENTIFIERS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    source: str
    traits: PersonTraits
    identifiers: _common_pb2.Identifiers
    first_seen: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    def __init__(self, record_id: _Optional[str] = ..., source: _Optional[str] = ..., traits: _Optional[_Union[PersonTraits, _Mapping]] = ..., identifiers: _Optional[_Union[_common_pb2.Identifiers, _Mapping]] = ..., first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordLink(_message.Message):
    __slots__ = ("record_a", "record_b", "rule", "probability", "created_at", "created_by", "revoked_at", "revoked_by", "revoke_reason", "weights")
    RECORD_A_FIELD_NUMBER: _ClassVar[int]
    RECORD_B_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKE_REASON_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    record_a: str
    record_b: str
    rule: str
    probability: float
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    revoked_at: _timestamp_pb2.Timestamp
    revoked_by: str
    revoke_reason: str
    weights: _containers.RepeatedCompositeFieldContainer[ComparisonWeight]
    def __init__(self, record_a: _Optional[str] = ..., record_b: _Optional[str] = ..., rule: _Optional[str] = ..., probability: _Optional[float] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_by: _Optional[str] = ..., revoke_reason: _Optional[str] = ..., weights: _Optional[_Iterable[_Union[ComparisonWeight, _Mapping]]] = ...) -> None: ...

class ComparisonWeight(_message.Message):
    __slots__ = ("comparison", "level", "match_weight")
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MATCH_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    comparison: str
    level: str
    match_weight: float
    def __init__(self, comparison: _Optional[str] = ..., level: _Optional[str] = ..., match_weight: _Optional[float] = ...) -> None: ...

class ExplainCustomerResponse(_message.Message):
    __slots__ = ("customer_id", "records", "links", "merged_customer_ids", "kept_apart")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    MERGED_CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    KEPT_APART_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    records: _containers.RepeatedCompositeFieldContainer[IdentityRecordView]
    links: _containers.RepeatedCompositeFieldContainer[RecordLink]
    merged_customer_ids: _containers.RepeatedScalarFieldContainer[str]
    kept_apart: _containers.RepeatedCompositeFieldContainer[Separation]
    def __init__(self, customer_id: _Optional[str] = ..., records: _Optional[_Iterable[_Union[IdentityRecordView, _Mapping]]] = ..., links: _Optional[_Iterable[_Union[RecordLink, _Mapping]]] = ..., merged_customer_ids: _Optional[_Iterable[str]] = ..., kept_apart: _Optional[_Iterable[_Union[Separation, _Mapping]]] = ...) -> None: ...

class Separation(_message.Message):
    __slots__ = ("other_customer_id", "created_at", "created_by", "reason")
    OTHER_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    other_customer_id: str
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    reason: str
    def __init__(self, other_customer_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EraseCustomerRequest(_message.Message):
    __slots__ = ("customer_id", "actor", "reason")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    actor: str
    reason: str
    def __init__(self, customer_id: _Optional[str] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class EraseCustomerResponse(_message.Message):
    __slots__ = ("customer_id", "records_erased", "change_seq")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_ERASED_FIELD_NUMBER: _ClassVar[int]
    CHANGE_SEQ_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    records_erased: int
    change_seq: int
    def __init__(self, customer_id: _Optional[str] = ..., records_erased: _Optional[int] = ..., change_seq: _Optional[int] = ...) -> None: ...

class ReloadModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadModelResponse(_message.Message):
    __slots__ = ("model_version", "previous_version", "threshold")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    previous_version: str
    threshold: float
    def __init__(self, model_version: _Optional[str] = ..., previous_version: _Optional[str] = ..., threshold: _Optional[float] = ...) -> None: ...

class ExplainLinkRequest(_message.Message):
    __slots__ = ("record_a", "record_b")
    RECORD_A_FIELD_NUMBER: _ClassVar[int]
    RECORD_B_FIELD_NUMBER: _ClassVar[int]
    record_a: str
    record_b: str
    def __init__(self, record_a: _Optional[str] = ..., record_b: _Optional[str] = ...) -> None: ...

class ExplainLinkResponse(_message.Message):
    __slots__ = ("model_version", "prior_weight", "weights", "match_weight", "match_probability", "threshold", "same_customer", "links")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRIOR_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    MATCH_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    MATCH_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SAME_CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    prior_weight: float
    weights: _containers.RepeatedCompositeFieldContainer[ComparisonWeight]
    match_weight: float
    match_probability: float
    threshold: float
    same_customer: bool
    links: _containers.RepeatedCompositeFieldContainer[RecordLink]
    def __init__(self, model_version: _Optional[str] = ..., prior_weight: _Optional[float] = ..., weights: _Optional[_Iterable[_Union[ComparisonWeight, _Mapping]]] = ..., match_weight: _Optional[float] = ..., match_probability: _Optional[float] = ..., threshold: _Optional[float] = ..., same_customer: _Optional[bool] = ..., links: _Optional[_Iterable[_Union[RecordLink, _Mapping]]] = ...) -> None: ...

class ListReviewItemsRequest(_message.Message):
    __slots__ = ("min_probability", "max_probability", "page_size", "page_token")
    MIN_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    MAX_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    min_probability: float
    max_probability: float
    page_size: int
    page_token: str
    def __init__(self, min_probability: _Optional[float] = ..., max_probability: _Optional[float] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ReviewItem(_message.Message):
    __slots__ = ("kind", "record_a", "record_b", "probability", "model_version", "customer_a", "customer_b", "scored_at")
    KIND_FIELD_NUMBER: _ClassVar[int]
    RECORD_A_FIELD_NUMBER: _ClassVar[int]
    RECORD_B_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_A_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_B_FIELD_NUMBER: _ClassVar[int]
    SCORED_AT_FIELD_NUMBER: _ClassVar[int]
    kind: ReviewKind
    record_a: str
    record_b: str
    probability: float
    model_version: str
    customer_a: str
    customer_b: str
    scored_at: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[_Union[ReviewKind, str]] = ..., record_a: _Optional[str] = ..., record_b: _Optional[str] = ..., probability: _Optional[float] = ..., model_version: _Optional[str] = ..., customer_a: _Optional[str] = ..., customer_b: _Optional[str] = ..., scored_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListReviewItemsResponse(_message.Message):
    __slots__ = ("items", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ReviewItem]
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[ReviewItem, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReviewLinkRequest(_message.Message):
    __slots__ = ("record_a", "record_b", "decision", "actor", "reason")
    RECORD_A_FIELD_NUMBER: _ClassVar[int]
    RECORD_B_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    record_a: str
    record_b: str
    decision: ReviewDecision
    actor: str
    reason: str
    def __init__(self, record_a: _Optional[str] = ..., record_b: _Optional[str] = ..., decision: _Optional[_Union[ReviewDecision, str]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReviewLinkResponse(_message.Message):
    __slots__ = ("customer_a", "customer_b", "change_seq")
    CUSTOMER_A_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_B_FIELD_NUMBER: _ClassVar[int]
    CHANGE_SEQ_FIELD_NUMBER: _ClassVar[int]
    customer_a: str
    customer_b: str
    change_seq: int
    def __init__(self, customer_a: _Optional[str] = ..., customer_b: _Optional[str] = ..., change_seq: _Optional[int] = ...) -> None: ...

import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AttributionModel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTRIBUTION_MODEL_UNSPECIFIED: _ClassVar[AttributionModel]
    ATTRIBUTION_MODEL_FIRST_TOUCH: _ClassVar[AttributionModel]
    ATTRIBUTION_MODEL_LAST_TOUCH: _ClassVar[AttributionModel]
    ATTRIBUTION_MODEL_LINEAR: _ClassVar[AttributionModel]
    ATTRIBUTION_MODEL_TIME_DECAY: _ClassVar[AttributionModel]
    ATTRIBUTION_MODEL_POSITION_BASED: _ClassVar[AttributionModel]
    ATTRIBUTION_MODEL_MARKOV: _ClassVar[AttributionModel]
    ATTRIBUTION_MODEL_SHAPLEY: _ClassVar[AttributionModel]
ATTRIBUTION_MODEL_UNSPECIFIED: AttributionModel
ATTRIBUTION_MODEL_FIRST_TOUCH: AttributionModel
ATTRIBUTION_MODEL_LAST_TOUCH: AttributionModel
ATTRIBUTION_MODEL_LINEAR: AttributionModel
ATTRIBUTION_MODEL_TIME_DECAY: AttributionModel
ATTRIBUTION_MODEL_POSITION_BASED: AttributionModel
ATTRIBUTION_MODEL_MARKOV: AttributionModel
ATTRIBUTION_MODEL_SHAPLEY: AttributionModel

class RunAttributionRequest(_message.Message):
    __slots__ = ("model", "lookback_days", "start_time", "end_time")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LOOKBACK_DAYS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    model: AttributionModel
    lookback_days: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, model: _Optional[_Union[AttributionModel, str]] = ..., lookback_days: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ChannelCredit(_message.Message):
    __slots__ = ("channel", "conversions", "revenue")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    channel: str
    conversions: float
    revenue: float
    def __init__(self, channel: _Optional[str] = ..., conversions: _Optional[float] = ..., revenue: _Optional[float] = ...) -> None: ...

class AttributionTotals(_message.Message):
    __slots__ = ("model", "total_conversions", "total_revenue", "events_read")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_REVENUE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_READ_FIELD_NUMBER: _ClassVar[int]
    model: AttributionModel
    total_conversions: int
    total_revenue: float
    events_read: int
    def __init__(self, model: _Optional[_Union[AttributionModel, str]] = ..., total_conversions: _Optional[int] = ..., total_revenue: _Optional[float] = ..., events_read: _Optional[int] = ...) -> None: ...

class RunAttributionResponse(_message.Message):
    __slots__ = ("channel_credit", "totals")
    CHANNEL_CREDIT_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    channel_credit: ChannelCredit
    totals: AttributionTotals
    def __init__(self, channel_credit: _Optional[_Union[ChannelCredit, _Mapping]] = ..., totals: _Optional[_Union[AttributionTotals, _Mapping]] = ...) -> None: ...

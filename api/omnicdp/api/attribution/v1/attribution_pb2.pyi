import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
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
    ATTRIBUTION_MODEL_SHAPLEY_SIMPLIFIED: _ClassVar[AttributionModel]
ATTRIBUTION_MODEL_UNSPECIFIED: AttributionModel
ATTRIBUTION_MODEL_FIRST_TOUCH: AttributionModel
ATTRIBUTION_MODEL_LAST_TOUCH: AttributionModel
ATTRIBUTION_MODEL_LINEAR: AttributionModel
ATTRIBUTION_MODEL_TIME_DECAY: AttributionModel
ATTRIBUTION_MODEL_POSITION_BASED: AttributionModel
ATTRIBUTION_MODEL_MARKOV: AttributionModel
ATTRIBUTION_MODEL_SHAPLEY: AttributionModel
ATTRIBUTION_MODEL_SHAPLEY_SIMPLIFIED: AttributionModel

class RunAttributionRequest(_message.Message):
    __slots__ = ("model", "lookback_days", "start_time", "end_time", "channel_post_view_windows", "event_post_view_windows", "default_post_view_window", "time_zone", "markov_order", "log_to_mlflow")
    class ChannelPostViewWindowsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _duration_pb2.Duration
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
    class EventPostViewWindowsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _duration_pb2.Duration
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LOOKBACK_DAYS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_POST_VIEW_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    EVENT_POST_VIEW_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_POST_VIEW_WINDOW_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    MARKOV_ORDER_FIELD_NUMBER: _ClassVar[int]
    LOG_TO_MLFLOW_FIELD_NUMBER: _ClassVar[int]
    model: AttributionModel
    lookback_days: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    channel_post_view_windows: _containers.MessageMap[str, _duration_pb2.Duration]
    event_post_view_windows: _containers.MessageMap[str, _duration_pb2.Duration]
    default_post_view_window: _duration_pb2.Duration
    time_zone: str
    markov_order: int
    log_to_mlflow: bool
    def __init__(self, model: _Optional[_Union[AttributionModel, str]] = ..., lookback_days: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel_post_view_windows: _Optional[_Mapping[str, _duration_pb2.Duration]] = ..., event_post_view_windows: _Optional[_Mapping[str, _duration_pb2.Duration]] = ..., default_post_view_window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_zone: _Optional[str] = ..., markov_order: _Optional[int] = ..., log_to_mlflow: _Optional[bool] = ...) -> None: ...

class ChannelCredit(_message.Message):
    __slots__ = ("channel", "conversions", "revenue", "splits")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    SPLITS_FIELD_NUMBER: _ClassVar[int]
    channel: str
    conversions: float
    revenue: float
    splits: _containers.RepeatedCompositeFieldContainer[CreditSplit]
    def __init__(self, channel: _Optional[str] = ..., conversions: _Optional[float] = ..., revenue: _Optional[float] = ..., splits: _Optional[_Iterable[_Union[CreditSplit, _Mapping]]] = ...) -> None: ...

class CreditSplit(_message.Message):
    __slots__ = ("place", "segment", "touch", "conversions", "revenue")
    PLACE_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    TOUCH_FIELD_NUMBER: _ClassVar[int]
    CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    place: str
    segment: str
    touch: str
    conversions: float
    revenue: float
    def __init__(self, place: _Optional[str] = ..., segment: _Optional[str] = ..., touch: _Optional[str] = ..., conversions: _Optional[float] = ..., revenue: _Optional[float] = ...) -> None: ...

class AttributionTotals(_message.Message):
    __slots__ = ("model", "total_conversions", "total_revenue", "events_read", "method", "mlflow_run_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CONVERSIONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_REVENUE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_READ_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    MLFLOW_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    model: AttributionModel
    total_conversions: int
    total_revenue: float
    events_read: int
    method: str
    mlflow_run_id: str
    def __init__(self, model: _Optional[_Union[AttributionModel, str]] = ..., total_conversions: _Optional[int] = ..., total_revenue: _Optional[float] = ..., events_read: _Optional[int] = ..., method: _Optional[str] = ..., mlflow_run_id: _Optional[str] = ...) -> None: ...

class RunAttributionResponse(_message.Message):
    __slots__ = ("channel_credit", "totals")
    CHANNEL_CREDIT_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    channel_credit: ChannelCredit
    totals: AttributionTotals
    def __init__(self, channel_credit: _Optional[_Union[ChannelCredit, _Mapping]] = ..., totals: _Optional[_Union[AttributionTotals, _Mapping]] = ...) -> None: ...

class StartAttributionRequest(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: RunAttributionRequest
    def __init__(self, report: _Optional[_Union[RunAttributionRequest, _Mapping]] = ...) -> None: ...

class StartAttributionResponse(_message.Message):
    __slots__ = ("operation",)
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    operation: AttributionOperation
    def __init__(self, operation: _Optional[_Union[AttributionOperation, _Mapping]] = ...) -> None: ...

class GetAttributionOperationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetAttributionOperationResponse(_message.Message):
    __slots__ = ("operation",)
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    operation: AttributionOperation
    def __init__(self, operation: _Optional[_Union[AttributionOperation, _Mapping]] = ...) -> None: ...

class AttributionOperation(_message.Message):
    __slots__ = ("name", "done", "create_time", "channel_credits", "totals")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_CREDITS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    name: str
    done: bool
    create_time: _timestamp_pb2.Timestamp
    channel_credits: _containers.RepeatedCompositeFieldContainer[ChannelCredit]
    totals: AttributionTotals
    def __init__(self, name: _Optional[str] = ..., done: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel_credits: _Optional[_Iterable[_Union[ChannelCredit, _Mapping]]] = ..., totals: _Optional[_Union[AttributionTotals, _Mapping]] = ...) -> None: ...

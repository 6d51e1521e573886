"""How the other services call the attribution service: typed calls with deadlines,
failures raised as the domain errors the attribution service raised."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from omnicdp.api.attribution.v1 import attribution_pb2, attribution_pb2_grpc
from omnicdp.core import channels, protoconv
from omnicdp.services.attribution import convert
from omnicdp.services.attribution.report import (
    DIMENSIONS,
    MODELS,
    AttributionReport,
    ChannelCredit,
)

__all__ = ["DIMENSIONS", "MODELS", "AttributionClient", "AttributionReport", "ChannelCredit"]

class AttributionClient(channels.ServiceClient):
    PEER = "attribution"
    STUB = attribution_pb2_grpc.AttributionServiceStub

    def run(self, model: str, lookback_days: int = 0, start: datetime | None = None,
            end: datetime | None = None, **options) -> AttributionReport:
        """Attribute the stored conversions (in ``[start, end)`` when given) with ``model``,
        one of ``MODELS``, within this client's deadline; ``options`` as ``request``."""
        rows = self._stream("RunAttribution",
                            request(model, lookback_days, start, end, **options))
        return convert.report_from_stream(rows, model)

    def start(self, model: str, lookback_days: int = 0, start: datetime | None = None,
              end: datetime | None = None, **options) -> str:
        """Start the same report as a long-running operation; returns its name."""
        response = self._unary("StartAttribution", attribution_pb2.StartAttributionRequest(
            report=request(model, lookback_days, start, end, **options)))
        return response.operation.name

    def operation(self, name: str) -> AttributionReport | None:
        """The operation's report once done, None while it runs; raises its error."""
        response = self._unary("GetAttributionOperation",
                               attribution_pb2.GetAttributionOperationRequest(name=name))
        return convert.report_from_operation(response.operation)


def request(model: str, lookback_days: int = 0, start: datetime | None = None,
            end: datetime | None = None, *,
            post_view_windows: Mapping[str, timedelta] | None = None,
            event_post_view_windows: Mapping[str, timedelta] | None = None,
            default_post_view_window: timedelta | None = None, time_zone: str = "",
            markov_order: int = 0, log_to_mlflow: bool = False
            ) -> attribution_pb2.RunAttributionRequest:
    """A report's request; windows and time zone left out take the service's defaults."""
    message = attribution_pb2.RunAttributionRequest(
        model=convert.model_value(model), lookback_days=lookback_days,
        start_time=protoconv.timestamp_from_datetime(start),
        end_time=protoconv.timestamp_from_datetime(end), time_zone=time_zone,
        markov_order=markov_order, log_to_mlflow=log_to_mlflow)
    for channel, window in (post_view_windows or {}).items():
        message.channel_post_view_windows[channel].FromTimedelta(window)
    for event, window in (event_post_view_windows or {}).items():
        message.event_post_view_windows[event].FromTimedelta(window)
    if default_post_view_window is not None:
        message.default_post_view_window.FromTimedelta(default_post_view_window)
    return message

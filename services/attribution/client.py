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
            end: datetime | None = None, *,
            post_view_windows: Mapping[str, timedelta] | None = None,
            event_post_view_windows: Mapping[str, timedelta] | None = None,
            default_post_view_window: timedelta | None = None, time_zone: str = "",
            markov_order: int = 0) -> AttributionReport:
        """Attribute the stored conversions (in ``[start, end)`` when given) with ``model``,
        one of ``MODELS``; windows and time zone left out take the service's defaults."""
        request = attribution_pb2.RunAttributionRequest(
            model=convert.model_value(model), lookback_days=lookback_days,
            start_time=protoconv.timestamp_from_datetime(start),
            end_time=protoconv.timestamp_from_datetime(end), time_zone=time_zone,
            markov_order=markov_order)
        for channel, window in (post_view_windows or {}).items():
            request.channel_post_view_windows[channel].FromTimedelta(window)
        for event, window in (event_post_view_windows or {}).items():
            request.event_post_view_windows[event].FromTimedelta(window)
        if default_post_view_window is not None:
            request.default_post_view_window.FromTimedelta(default_post_view_window)
        rows = self._stream("RunAttribution", request)
        return convert.report_from_stream(rows, model)

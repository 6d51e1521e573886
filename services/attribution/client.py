"""How the other services call the attribution service: typed calls with deadlines,
failures raised as the domain errors the attribution service raised."""

from __future__ import annotations

from datetime import datetime

from omnicdp.api.attribution.v1 import attribution_pb2, attribution_pb2_grpc
from omnicdp.core import channels, protoconv
from omnicdp.services.attribution import convert
from omnicdp.services.attribution.report import MODELS, AttributionReport, ChannelCredit

__all__ = ["MODELS", "AttributionClient", "AttributionReport", "ChannelCredit"]

class AttributionClient(channels.ServiceClient):
    PEER = "attribution"
    STUB = attribution_pb2_grpc.AttributionServiceStub

    def run(self, model: str, lookback_days: int = 0, start: datetime | None = None,
            end: datetime | None = None) -> AttributionReport:
        """Attribute the stored conversions (in ``[start, end)`` when given) with ``model``,
        one of ``MODELS``."""
        request = attribution_pb2.RunAttributionRequest(
            model=convert.model_value(model), lookback_days=lookback_days,
            start_time=protoconv.timestamp_from_datetime(start),
            end_time=protoconv.timestamp_from_datetime(end))
        rows = self._stream("RunAttribution", request)
        return convert.report_from_stream(rows, model)

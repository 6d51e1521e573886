"""gRPC servicer of the attribution service: reads the stored events through the profile
service's client, attributes them in the domain, streams one row per channel and then the
totals."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from omnicdp.api.attribution.v1 import attribution_pb2, attribution_pb2_grpc
from omnicdp.core import protoconv
from omnicdp.core.server import Registration, ServiceHost
from omnicdp.services.attribution import convert, sources
from omnicdp.services.attribution.journeys import AttributionConfig
from omnicdp.services.attribution.models import attribute
from omnicdp.services.attribution.settings import Settings
from omnicdp.services.profile.client import ProfileClient


class AttributionServicer(attribution_pb2_grpc.AttributionServiceServicer):
    def __init__(self, profiles: ProfileClient) -> None:
        self._profiles = profiles

    def RunAttribution(self, request, context) -> Iterator:  # noqa: N802 (generated name)
        model = convert.model_name(request.model)
        config = AttributionConfig(lookback_days=request.lookback_days or 30)
        events, read = sources.from_stored_events(
            self._profiles.all_events(),
            protoconv.timestamp_to_datetime(request.start_time),
            protoconv.timestamp_to_datetime(request.end_time))
        report = replace(attribute(events, model, config), events_read=read)
        yield from convert.report_to_stream(report)


def build(settings: Settings) -> ServiceHost:
    profiles = ProfileClient(settings.profile_addr)
    return ServiceHost(
        "attribution",
        [Registration(attribution_pb2_grpc.add_AttributionServiceServicer_to_server,
                      AttributionServicer(profiles),
                      attribution_pb2.DESCRIPTOR.services_by_name["AttributionService"].full_name)],
        settings.address, grace_seconds=settings.grace_seconds, on_stop=profiles.close)

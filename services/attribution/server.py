"""gRPC servicer of the attribution service: reads the stored events through the profile
service's client, attributes them in the domain, streams one row per channel and then the
totals."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

from omnicdp.api.attribution.v1 import attribution_pb2, attribution_pb2_grpc
from omnicdp.core import protoconv
from omnicdp.core.server import Registration, ServiceHost
from omnicdp.services.attribution import convert, sources
from omnicdp.services.attribution.journeys import DEFAULT_POST_VIEW_WINDOWS, AttributionConfig
from omnicdp.services.attribution.models import attribute
from omnicdp.services.attribution.settings import Settings
from omnicdp.services.profile.client import ProfileClient


class AttributionServicer(attribution_pb2_grpc.AttributionServiceServicer):
    def __init__(self, profiles: ProfileClient) -> None:
        self._profiles = profiles

    def RunAttribution(self, request, context) -> Iterator:  # noqa: N802 (generated name)
        model = convert.model_name(request.model)
        config = config_from_request(request)
        table, history, read = sources.from_stored_events(
            self._profiles.all_events(),
            protoconv.timestamp_to_datetime(request.start_time),
            protoconv.timestamp_to_datetime(request.end_time))
        report = replace(attribute(table, model, config, history), events_read=read)
        yield from convert.report_to_stream(report)


def config_from_request(request) -> AttributionConfig:
    """Windows, time zone and model options of a RunAttributionRequest; unset ones keep the
    defaults (PRODUCT.md)."""
    windows = dict(DEFAULT_POST_VIEW_WINDOWS)
    windows.update({channel: duration.ToTimedelta()
                    for channel, duration in request.channel_post_view_windows.items()})
    default_window = request.default_post_view_window.ToTimedelta() \
        if request.HasField("default_post_view_window") else timedelta(days=1)
    return AttributionConfig(
        lookback_days=request.lookback_days or 30, post_view_windows=windows,
        event_post_view_windows={event: duration.ToTimedelta() for event, duration
                                 in request.event_post_view_windows.items()},
        default_post_view_window=default_window,
        time_zone=request.time_zone or AttributionConfig.time_zone,
        markov_order=request.markov_order or 1)


def build(settings: Settings) -> ServiceHost:
    profiles = ProfileClient(settings.profile_addr)
    return ServiceHost(
        "attribution",
        [Registration(attribution_pb2_grpc.add_AttributionServiceServicer_to_server,
                      AttributionServicer(profiles),
                      attribution_pb2.DESCRIPTOR.services_by_name["AttributionService"].full_name)],
        settings.address, grace_seconds=settings.grace_seconds, on_stop=profiles.close)

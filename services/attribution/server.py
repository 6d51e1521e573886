"""gRPC servicer of the attribution service: reads the profile service's events over gRPC,
attributes them in the domain, streams one row per channel and then the totals."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from cdp.attribution.v1 import attribution_pb2, attribution_pb2_grpc
from cdp.profile.v1 import profile_pb2, profile_pb2_grpc
from omnicdp import protoconv
from omnicdp.errors import Unavailable
from omnicdp.runtime import config
from omnicdp.runtime.channels import DEFAULT_DEADLINE, open_channel
from omnicdp.runtime.server import Registration, ServiceHost
from omnicdp.runtime.telemetry import configure_logging, setup_tracing
from services.attribution.journeys import AttributionConfig, AttributionEvent
from services.attribution.models import attribute
from services.attribution.sources import to_attribution_event

log = logging.getLogger(__name__)
PAGE_SIZE = 1000


@dataclass(frozen=True)
class AttributionSettings:
    address: str = config.setting("127.0.0.1:50053", "CDP_ADDRESS", "host:port to listen on")
    profile_addr: str = config.setting("127.0.0.1:50052", "CDP_PROFILE_ADDR",
                                       "host:port of the profile service")
    grace_seconds: float = config.setting(10.0, "CDP_GRACE_SECONDS",
                                          "seconds in-flight calls get on shutdown")


def model_name(value: int) -> str:
    if value == attribution_pb2.ATTRIBUTION_MODEL_UNSPECIFIED:
        return "last_touch"
    return attribution_pb2.AttributionModel.Name(value).removeprefix("ATTRIBUTION_MODEL_").lower()


class AttributionServicer(attribution_pb2_grpc.AttributionServiceServicer):
    def __init__(self, profiles: profile_pb2_grpc.ProfileServiceStub) -> None:
        self._profiles = profiles

    def _read_events(self, start, end) -> tuple[list[AttributionEvent], int]:
        events: list[AttributionEvent] = []
        read = 0
        token = ""
        while True:
            try:
                page = self._profiles.ListEvents(
                    profile_pb2.ListEventsRequest(page_size=PAGE_SIZE, page_token=token),
                    timeout=DEFAULT_DEADLINE)
            except grpc.RpcError as error:
                raise Unavailable(f"profile service: {error.code().name}") from error
            for e in page.events:
                read += 1
                converted = to_attribution_event(
                    e.customer_id, protoconv.timestamp_to_datetime(e.timestamp), e.event,
                    protoconv.channel_name(e.channel), protoconv.struct_to_dict(e.properties))
                if converted is None:
                    continue
                if converted.kind == "conversion" and (
                        (start and converted.timestamp < start)
                        or (end and converted.timestamp >= end)):
                    continue
                events.append(converted)
            token = page.next_page_token
            if not token:
                return events, read

    def RunAttribution(self, request, context) -> Iterator:  # noqa: N802 (generated name)
        model = model_name(request.model)
        settings = AttributionConfig(lookback_days=request.lookback_days or 30)
        events, read = self._read_events(protoconv.timestamp_to_datetime(request.start_time),
                                         protoconv.timestamp_to_datetime(request.end_time))
        report = attribute(events, model, settings)
        for channel, credit in report.channels.items():
            row = attribution_pb2.ChannelCredit(
                channel=channel, conversions=credit.conversions, revenue=credit.revenue)
            yield attribution_pb2.RunAttributionResponse(channel_credit=row)
        yield attribution_pb2.RunAttributionResponse(totals=attribution_pb2.AttributionTotals(
            model=request.model or attribution_pb2.ATTRIBUTION_MODEL_LAST_TOUCH,
            total_conversions=report.total_conversions, total_revenue=report.total_revenue,
            events_read=read))


def build(settings: AttributionSettings) -> ServiceHost:
    channel = open_channel(settings.profile_addr)
    servicer = AttributionServicer(profile_pb2_grpc.ProfileServiceStub(channel))
    return ServiceHost(
        "attribution",
        [Registration(attribution_pb2_grpc.add_AttributionServiceServicer_to_server, servicer,
                      attribution_pb2.DESCRIPTOR.services_by_name["AttributionService"].full_name)],
        settings.address, grace_seconds=settings.grace_seconds, on_stop=channel.close)


def main(args: argparse.Namespace) -> int:
    configure_logging("cdp-attribution")
    setup_tracing("cdp-attribution")
    settings = config.load(AttributionSettings, args)
    log.info("starting attribution service: %s", config.describe(settings))
    build(settings).run_until_signal()
    return 0

"""gRPC servicer of the attribution service: reads the stored events through the profile
service's client, attributes them in the domain, streams one row per channel and then the
totals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta

from omnicdp.api.attribution.v1 import attribution_pb2, attribution_pb2_grpc
from omnicdp.core import protoconv
from omnicdp.core.errors import FailedPrecondition
from omnicdp.core.server import Registration, ServiceHost
from omnicdp.services.attribution import convert, sources
from omnicdp.services.attribution.journeys import DEFAULT_POST_VIEW_WINDOWS, AttributionConfig
from omnicdp.services.attribution.models import attribute
from omnicdp.services.attribution.operations import Operation, Operations
from omnicdp.services.attribution.report import AttributionReport
from omnicdp.services.attribution.settings import Settings
from omnicdp.services.attribution.tracking import log_run
from omnicdp.services.profile.client import ProfileClient


class AttributionServicer(attribution_pb2_grpc.AttributionServiceServicer):
    def __init__(self, profiles: ProfileClient, operations: Operations,
                 tracking_uri: str = "") -> None:
        self._profiles = profiles
        self._operations = operations
        self._tracking_uri = tracking_uri

    def RunAttribution(self, request, context) -> Iterator:  # noqa: N802 (generated name)
        yield from convert.report_to_stream(self._job(request)())

    def StartAttribution(self, request, context):  # noqa: N802 (generated name)
        operation = self._operations.start(self._job(request.report))
        return attribution_pb2.StartAttributionResponse(operation=_operation(operation))

    def GetAttributionOperation(self, request, context):  # noqa: N802 (generated name)
        operation = self._operations.get(request.name)
        return attribution_pb2.GetAttributionOperationResponse(operation=_operation(operation))

    def _job(self, request) -> Callable[[], AttributionReport]:
        """The report ``request`` asks for, to make now or in the background; its arguments
        are checked here, before anything runs."""
        model = convert.model_name(request.model)
        config = config_from_request(request)
        start = protoconv.timestamp_to_datetime(request.start_time)
        end = protoconv.timestamp_to_datetime(request.end_time)
        if request.log_to_mlflow and not self._tracking_uri:
            raise FailedPrecondition(
                "this attribution service logs to no MLflow store: start it with "
                "CDP_MLFLOW_TRACKING_URI (cdp up sets its data dir's)",
                reason="MLFLOW_NOT_CONFIGURED")

        def make() -> AttributionReport:
            table, history, read = sources.from_stored_events(self._profiles.all_events(),
                                                              start, end)
            report = replace(attribute(table, model, config, history), events_read=read)
            if request.log_to_mlflow:
                run_id = log_run(report, config, "profile service (stored events)",
                                 self._tracking_uri)
                report = replace(report, mlflow_run_id=run_id)
            return report
        return make


def _operation(operation: Operation) -> attribution_pb2.AttributionOperation:
    message = attribution_pb2.AttributionOperation(
        name=operation.name, done=operation.done,
        create_time=protoconv.timestamp_from_datetime(operation.create_time))
    if operation.done:
        credits, totals = convert.report_rows(operation.report())  # raises the job's error
        message.channel_credits.extend(credits)
        message.totals.CopyFrom(totals)
    return message


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
    operations = Operations()

    def stop() -> None:
        operations.close()
        profiles.close()
    return ServiceHost(
        "attribution",
        [Registration(attribution_pb2_grpc.add_AttributionServiceServicer_to_server,
                      AttributionServicer(profiles, operations, settings.tracking_uri),
                      attribution_pb2.DESCRIPTOR.services_by_name["AttributionService"].full_name)],
        settings.address, grace_seconds=settings.grace_seconds, on_stop=stop)

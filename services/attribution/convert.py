"""The attribution service's messages and its domain values, both ways: the servicer uses
one direction, ``client.py`` the other. A report travels as a stream: one row per channel,
then the totals."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from omnicdp.api.attribution.v1 import attribution_pb2
from omnicdp.core.errors import FieldViolation, InvalidArgument
from omnicdp.services.attribution.report import (
    MODELS,
    AttributionReport,
    ChannelCredit,
    CreditSplit,
)

_PREFIX = "ATTRIBUTION_MODEL_"


def model_name(value: int) -> str:
    """The model's contract name; unspecified means last touch."""
    if value == attribution_pb2.ATTRIBUTION_MODEL_UNSPECIFIED:
        return "last_touch"
    return attribution_pb2.AttributionModel.Name(value).removeprefix(_PREFIX).lower()


def model_value(name: str) -> int:
    if name not in MODELS:
        raise InvalidArgument(f"unknown attribution model {name!r}",
                              [FieldViolation("model", f"one of {', '.join(MODELS)}")])
    return attribution_pb2.AttributionModel.Value(_PREFIX + name.upper())


def report_to_stream(report: AttributionReport) -> Iterator[attribution_pb2.RunAttributionResponse]:
    for channel, credit in report.channels.items():
        yield attribution_pb2.RunAttributionResponse(channel_credit=attribution_pb2.ChannelCredit(
            channel=channel, conversions=credit.conversions, revenue=credit.revenue,
            splits=[attribution_pb2.CreditSplit(
                place=s.place, segment=s.segment, touch=s.touch, conversions=s.conversions,
                revenue=s.revenue) for s in credit.splits]))
    yield attribution_pb2.RunAttributionResponse(totals=attribution_pb2.AttributionTotals(
        model=model_value(report.model), total_conversions=report.total_conversions,
        total_revenue=report.total_revenue, events_read=report.events_read,
        method=report.method, mlflow_run_id=report.mlflow_run_id))


def report_from_stream(rows: Iterable[attribution_pb2.RunAttributionResponse],
                       model: str) -> AttributionReport:
    channels: dict[str, ChannelCredit] = {}
    totals = attribution_pb2.AttributionTotals()
    for row in rows:
        if row.HasField("channel_credit"):
            credit = row.channel_credit
            channels[credit.channel] = ChannelCredit(
                credit.conversions, credit.revenue,
                tuple(CreditSplit(s.place, s.segment, s.touch, s.conversions, s.revenue)
                      for s in credit.splits))
        else:
            totals = row.totals
    return AttributionReport(model=model, total_conversions=totals.total_conversions,
                             total_revenue=totals.total_revenue, channels=channels,
                             events_read=totals.events_read, method=totals.method,
                             mlflow_run_id=totals.mlflow_run_id)


def report_rows(report: AttributionReport) -> tuple[list[attribution_pb2.ChannelCredit],
                                                    attribution_pb2.AttributionTotals]:
    rows = list(report_to_stream(report))
    return [row.channel_credit for row in rows[:-1]], rows[-1].totals


def report_from_operation(operation: attribution_pb2.AttributionOperation,
                          model: str = "") -> AttributionReport | None:
    """The operation's report, or None while it runs."""
    if not operation.done:
        return None
    rows = [attribution_pb2.RunAttributionResponse(channel_credit=credit)
            for credit in operation.channel_credits]
    rows.append(attribution_pb2.RunAttributionResponse(totals=operation.totals))
    return report_from_stream(rows, model or model_name(operation.totals.model))

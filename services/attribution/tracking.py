"""Attribution runs logged to MLflow: what was asked (model, windows, time zone), what came
out (totals and each channel's credit as metrics, the whole report as ``report.json``), so
that reruns with another model or windows can be compared side by side."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from omnicdp.core import tracking
from omnicdp.services.attribution.journeys import AttributionConfig
from omnicdp.services.attribution.report import AttributionReport

EXPERIMENT = "cdp-attribution"


def _metric(name: str) -> str:
    # MLflow names allow letters, digits, _ - . space /; channels may hold anything.
    return re.sub(r"[^0-9A-Za-z_\-. /]", "_", name)


def log_run(report: AttributionReport, config: AttributionConfig, source: str, uri: str
            ) -> str:
    """One MLflow run in the ``cdp-attribution`` experiment; returns its id."""
    client = tracking.client(uri)
    with tracking.run(client, uri, EXPERIMENT,
                      f"{report.model} {Path(source).name}") as started:
        _log(client, started.info.run_id, report, config, source)
    return started.info.run_id


def _log(client: Any, run_id: str, report: AttributionReport,  # noqa: ANN401 (MlflowClient)
         config: AttributionConfig, source: str) -> None:
    windows = {channel: window.total_seconds() / 3600
               for channel, window in sorted(config.post_view_windows.items())}
    by_event = {event: window.total_seconds() / 3600
                for event, window in sorted(config.event_post_view_windows.items())}
    params = {
        "model": report.model, "source": source, "method": report.method or "-",
        "lookback_days": config.lookback_days,
        "post_view_hours": json.dumps(windows),
        "event_post_view_hours": json.dumps(by_event),
        "default_post_view_hours": config.default_post_view_window.total_seconds() / 3600,
        "time_zone": config.time_zone, "new_contact_days": config.new_contact_days,
        "offline_places": ",".join(sorted(config.offline_places)),
        "markov_order": config.markov_order,
    }
    for key, value in params.items():
        client.log_param(run_id, key, str(value)[:6000])
    client.log_metric(run_id, "total_conversions", report.total_conversions)
    client.log_metric(run_id, "total_revenue", report.total_revenue)
    for channel, credit in report.channels.items():
        client.log_metric(run_id, f"conversions.{_metric(channel)}", credit.conversions)
        client.log_metric(run_id, f"revenue.{_metric(channel)}", credit.revenue)
    client.log_dict(run_id, report.to_dict(), "report.json")

"""`cdp attribution run | journeys`: attribution reports and journey analytics of an event
table (PRODUCT.md). Imported only when one of them runs."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

from omnicdp.cli import common
from omnicdp.cli.common import add_tracking_arguments, fail, tracking
from omnicdp.core.durations import parse_duration, parse_window
from omnicdp.core.errors import DomainError


def duration(text: str) -> timedelta:
    """``2``, ``2d``, ``36h`` or ``90m``; a bare number is days."""
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def window(text: str) -> tuple[str, timedelta]:
    """``NAME=DURATION``, e.g. ``email=2d`` or ``Ad Impression=12h``."""
    try:
        return parse_window(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_window_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("events", type=Path, help="event table (.csv or .parquet)")
    parser.add_argument("--lookback-days", type=float, default=30,
                        help="click-type touches count this many days before (default 30)")
    parser.add_argument("--post-view", type=window, action="append", default=[],
                        metavar="CHANNEL=DURATION",
                        help="post-view window of a channel (repeatable; defaults email=2d, "
                             "ads, push, sms, messenger=1d)")
    parser.add_argument("--event-post-view", type=window, action="append", default=[],
                        metavar="EVENT=DURATION",
                        help="post-view window of a view event, before its channel's "
                             "(repeatable), e.g. 'Ad Impression=12h'")
    parser.add_argument("--default-post-view", type=duration, default=timedelta(days=1),
                        metavar="DURATION", help="post-view window of other channels (1d)")
    parser.add_argument("--time-zone", default="Europe/Moscow",
                        help="business time zone of dates and naive times (Europe/Moscow)")
    parser.add_argument("--new-contact-days", type=float, default=30,
                        help="a customer first seen this recently is a new contact (30)")
    parser.add_argument("--offline", default="store", metavar="CHANNELS",
                        help="comma-separated conversion channels reported as store (store)")
    parser.add_argument("--history", type=Path, default=None, metavar="CUSTOMERS",
                        help="customer table (CSV/Parquet: customer_id, first_seen, "
                             "first_purchase) from the profiles, for segments")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")


def add_parser(commands: argparse._SubParsersAction) -> None:
    attribution = commands.add_parser("attribution", help="attribution reports and journeys")
    actions = attribution.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="attribute an event table (CSV/Parquet)")
    add_window_arguments(run)
    run.add_argument("--model", default="last_touch",
                     help="first_touch, last_touch, linear, time_decay, position_based, "
                          "markov, shapley or shapley_simplified (last_touch)")
    run.add_argument("--markov-order", type=int, default=1,
                     help="memory of the Markov chain in channels (1)")
    run.add_argument("--shapley-samples", type=int, default=2000,
                     help="permutations sampled when Shapley has over 15 channels (2000)")
    run.add_argument("--seed", type=int, default=0, help="seed of the sampling (0)")
    run.add_argument("--mlflow", action="store_true",
                     help="log the run (parameters, credit per channel, report.json) to "
                          "MLflow, experiment cdp-attribution")
    add_tracking_arguments(run)
    run.set_defaults(func=_run)

    journeys = actions.add_parser(
        "journeys", help="journey analytics: path lengths, time to conversion, frequent "
                         "paths, where journeys stop, anonymous sessions joined")
    add_window_arguments(journeys)
    journeys.add_argument("--top", type=int, default=10, help="paths and stops listed (10)")
    journeys.set_defaults(func=_journeys)


def _config(args: argparse.Namespace):
    from omnicdp.services.attribution.journeys import (
        DEFAULT_POST_VIEW_WINDOWS,
        AttributionConfig,
    )

    windows = {**DEFAULT_POST_VIEW_WINDOWS, **dict(args.post_view)}
    options = {}
    for name in ("markov_order", "shapley_samples", "seed"):
        if hasattr(args, name):
            options[name] = getattr(args, name)
    return AttributionConfig(
        lookback_days=args.lookback_days, post_view_windows=windows,
        event_post_view_windows=dict(args.event_post_view),
        default_post_view_window=args.default_post_view, time_zone=args.time_zone,
        new_contact_days=args.new_contact_days,
        offline_places=frozenset(c.strip() for c in args.offline.split(",") if c.strip()),
        **options)


def _history(args: argparse.Namespace, config):
    if args.history is None:
        return None
    from omnicdp.services.attribution.journeys import read_customer_history

    return read_customer_history(args.history, config.time_zone)


def _run(args: argparse.Namespace) -> int:
    from omnicdp.services.attribution.models import attribute
    from omnicdp.services.attribution.table import read_event_table

    progress = common.progress("cdp attribution run")
    try:
        config = _config(args)
        history = _history(args, config)
        table = read_event_table(args.events, config.time_zone, progress)
        report = attribute(table, args.model, config, history, progress=progress)
    except DomainError as error:
        return fail("cdp attribution run", error)
    if args.mlflow:
        from omnicdp.services.attribution.tracking import log_run

        uri = tracking(args)
        run_id = log_run(report, config, str(args.events), uri)
        progress(f"logged to MLflow: run {run_id} in experiment cdp-attribution ({uri})")
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return 0
    from omnicdp.cli.tables import print_table

    rows = []
    for name, credit in report.channels.items():
        place, touch = credit.by("place"), credit.by("touch")
        segment = credit.by("segment")
        rows.append((name, f"{credit.conversions:.2f}", f"{credit.revenue:,.2f}",
                     f"{place['store'][0]:.2f}", f"{touch['view'][0]:.2f}",
                     f"{segment['new_contact'][0]:.2f}", f"{segment['never_bought'][0]:.2f}",
                     f"{segment['active_buyer'][0]:.2f}"))
    print_table(f"{report.model}: {report.total_conversions} conversions, "
                f"{report.total_revenue:,.2f} revenue"
                + (f" ({report.method})" if report.method else ""), rows,
                headers=("channel", "conversions", "revenue", "in store", "view-through",
                         "new contact", "never bought", "returning"))
    return 0


def _journeys(args: argparse.Namespace) -> int:
    from omnicdp.services.attribution.analytics import journey_analytics
    from omnicdp.services.attribution.journeys import build_journey_set
    from omnicdp.services.attribution.table import read_event_table

    progress = common.progress("cdp attribution journeys")
    try:
        config = _config(args)
        history = _history(args, config)
        table = read_event_table(args.events, config.time_zone, progress)
        journeys = build_journey_set(table, config, history, progress=progress)
    except DomainError as error:
        return fail("cdp attribution journeys", error)
    result = journey_analytics(journeys, table, args.top)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    from omnicdp.cli.tables import print_table

    print_table("journeys", list(result["journeys"].items()))
    for kind, lengths in result["path_length"].items():
        print_table(f"path length, {kind} (mean {lengths['mean']})",
                    list(lengths["counts"].items()), headers=("touches", "journeys"))
    for since, durations in result["time_to_conversion_days"].items():
        print_table(f"days to conversion {since.replace('_', ' ')} "
                    f"({', '.join(f'{k} {v}' for k, v in durations['quantiles'].items())})",
                    list(durations["counts"].items()), headers=("days", "conversions"))
    print_table("most frequent paths", [
        (p["path"], p["journeys"], p["conversions"], f"{p['conversion_rate']:.1%}")
        for p in result["top_paths"]], headers=("path", "journeys", "conversions", "rate"))
    print_table("where non-converting journeys stop", [
        (s["channel"], s["event"] or "", s["journeys"], f"{s['share']:.1%}")
        for s in result["non_converting_stops"]],
        headers=("last channel", "last event", "journeys", "share"))
    if "anonymous_sessions" in result:
        print_table("anonymous sessions", list(result["anonymous_sessions"].items()))
    return 0

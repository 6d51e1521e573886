"""Attribution models: how each conversion's credit is shared among the channels that led to it.

``attribute(events, model, config)`` builds journeys (see ``journeys.py`` for which touches
count) and shares every conversion, and its revenue, among channels. A conversion without
a qualifying touch credits the pseudo-channel ``(direct)`` in every model. For every model
the channels' credits add up to the total conversions and total revenue.

Models (``MODELS``):

* ``first_touch`` / ``last_touch``: all credit to the earliest / latest qualifying touch.
* ``linear``: equal credit per touch (a channel touched twice gets two shares).
* ``time_decay``: a touch's weight is ``2 ** (-age / half_life)``, age measured from the
  touch to the conversion, half-life 7 days (Google's definition), normalised per conversion.
* ``position_based``: 40% first touch, 40% last, 20% shared by the touches between
  (Google's definition); one touch gets 100%, two touches 50/50.
* ``markov``: a Markov chain over channel states (first order by default, ``markov_order``
  for more memory), with a start state and absorbing conversion and null states, estimated
  from all journeys, including the non-converting ones. A channel's removal effect is
  ``1 - P'(conversion) / P(conversion)`` where ``P'`` is the conversion probability from
  the start when the channel's states lead to null. All of them are solved exactly from one
  factorisation of the absorbing chain (``markov.py``), not simulated; simulation
  (ChannelAttribution) is several percent off. Credit is **global**: the touched
  conversions and their total revenue are split among channels by the normalised removal
  effects, so a channel's revenue is its share of all touched revenue, not the value of the
  particular orders it touched.
* ``shapley``: the Shapley value of the game whose coalition value is the conversion rate of
  the journeys (converting or not) that use only the coalition's channels, exact up to 15
  channels and sampled beyond (``shapley.py``; the report's ``method`` says which). Global
  like ``markov``.
* ``shapley_simplified``: the Shapley value of the game whose coalition value ``v(S)`` is
  the number of conversions whose set of channels is a subset of ``S`` (the "simplified
  Shapley value" of Zhao et al. 2018). That game is the sum, over conversions, of unanimity
  games on each conversion's channel set ``T``, and the Shapley value of a unanimity game
  gives ``1/|T|`` to each member; so the exact value is every conversion shared equally
  among its *distinct* channels. This closed form is exact for any number of channels and
  needs no enumeration of the 2^n coalitions. Revenue is shared the same way per conversion,
  which is exactly the Shapley value of the game whose coalition value is revenue. It
  ignores non-converting journeys.

Splits. Each channel's credit is split by where the conversion happened (``online`` or
``store``), the customer's segment when touched and the kind of touch (``click``,
``view``; ``none`` for ``(direct)``), and the splits add up to the channel's credit. The
rule-based models credit touches directly. The global models (``markov``, ``shapley``)
spread a channel's conversions equally over the converting journeys that touched it and its
revenue over them in proportion to their revenue, then equally over the channel's touches in
each journey; a channel credited by the chain without touching any converting journey has
its credit spread over all touched conversions as ``none``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from omnicdp.core.errors import FieldViolation, InvalidArgument
from omnicdp.services.attribution.journeys import (
    SEGMENTS,
    AttributionConfig,
    AttributionEvent,
    CustomerHistory,
    JourneySet,
    build_journey_set,
    read_events_table,
)
from omnicdp.services.attribution.markov import removal_effects
from omnicdp.services.attribution.report import (
    DIRECT,
    MODELS,
    PLACES,
    TOUCH_TYPES,
    AttributionReport,
    ChannelCredit,
    CreditSplit,
)
from omnicdp.services.attribution.shapley import channel_sets, shapley_values
from omnicdp.services.attribution.table import EventTable, Progress

__all__ = [
    "DIRECT",
    "MODELS",
    "SEGMENTS",
    "AttributionConfig",
    "AttributionEvent",
    "AttributionReport",
    "ChannelCredit",
    "attribute",
    "attribute_by_segment",
    "attribute_journeys",
    "read_events_table",
]

# Credits this close to zero are float noise, not a channel's share.
_NEGLIGIBLE = 1e-12
_DAY_US = 86_400_000_000
_CLICK, _VIEW, _NONE = range(len(TOUCH_TYPES))


def attribute(events: Iterable[AttributionEvent] | EventTable, model: str,
              config: AttributionConfig | None = None,
              history: CustomerHistory | None = None,
              progress: Progress | None = None) -> AttributionReport:
    """Attribute every conversion in ``events`` (values or an ``EventTable``) with
    ``model`` (one of ``MODELS``)."""
    _check_model(model)
    config = config or AttributionConfig()
    table = events if isinstance(events, EventTable) else \
        EventTable.from_events(events, config.time_zone)
    journeys = build_journey_set(table, config, history, progress)
    return attribute_journeys(journeys, model, config, progress)


def attribute_by_segment(events: Iterable[AttributionEvent] | EventTable, model: str,
                         config: AttributionConfig | None = None,
                         history: CustomerHistory | None = None
                         ) -> dict[str, AttributionReport]:
    """One report per audience segment at the journey's end (``new_contact``,
    ``never_bought``, ``active_buyer``; see ``journeys.py``), always all three, in that
    order.

    Each segment is attributed over its own journeys only; for ``markov`` and ``shapley``
    that means the model is estimated from the segment's converting and non-converting
    journeys. The segments' totals add up to the totals of ``attribute``; for the
    rule-based models the channel credits do too. (A report's ``by_segment`` splits one
    model's credit by the segment at each touch instead.)
    """
    _check_model(model)
    config = config or AttributionConfig()
    table = events if isinstance(events, EventTable) else \
        EventTable.from_events(events, config.time_zone)
    journeys = build_journey_set(table, config, history)
    return {segment: attribute_journeys(journeys.subset(journeys.segment == code), model,
                                        config)
            for code, segment in enumerate(SEGMENTS)}


def attribute_journeys(journeys: JourneySet, model: str,
                       config: AttributionConfig | None = None,
                       progress: Progress | None = None) -> AttributionReport:
    """Attribute already built journeys (e.g. a subset of them) with ``model``."""
    _check_model(model)
    config = config or AttributionConfig()
    if progress:
        progress(f"attributing with {model}")
    conversions, revenue, method, spread = _touch_credit(journeys, model, config)
    report = _report(journeys, model, conversions, revenue, spread, method)
    if progress:
        progress(f"{model}: {report.total_conversions:,} conversions attributed")
    return report


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise InvalidArgument(
            f"unknown attribution model {model!r}; use one of {', '.join(MODELS)}",
            [FieldViolation("model", f"must be one of {', '.join(MODELS)}")])


Credit = tuple[np.ndarray, np.ndarray, str, tuple[np.ndarray, np.ndarray]]


def _touch_credit(js: JourneySet, model: str, config: AttributionConfig) -> Credit:
    """Conversions and revenue credited to each touch of ``js`` (0 in non-converting
    journeys); the method; and credit per channel that no touch could carry."""
    journey = js.touch_journey
    converting = js.converted[journey]
    value = js.value[journey]
    none = (np.zeros(len(js.channels)), np.zeros(len(js.channels)))
    if model in ("markov", "shapley"):
        return _global_credit(js, model, config)
    length = js.length[journey]
    position = np.arange(len(journey)) - js.start[journey]
    if model == "first_touch":
        weight = (position == 0).astype(np.float64)
    elif model == "last_touch":
        weight = (position == length - 1).astype(np.float64)
    elif model == "linear":
        weight = 1.0 / np.maximum(length, 1)
    elif model == "time_decay":
        half_life = config.time_decay_half_life.total_seconds() * 1e6
        # Ages from the journey's newest touch keep the weights from underflowing.
        newest = js.touch_time[js.start[journey] + length - 1]
        raw = np.exp2(-(newest - js.touch_time) / half_life)
        weight = raw / np.bincount(journey, weights=raw, minlength=len(js))[journey]
    elif model == "position_based":
        middle = 0.2 / np.maximum(length - 2, 1)
        ends = (position == 0) | (position == length - 1)
        weight = np.where(length == 1, 1.0, np.where(length == 2, 0.5,
                                                     np.where(ends, 0.4, middle)))
    else:  # shapley_simplified: closed form, see the module docstring
        pair = journey.astype(np.int64) * max(len(js.channels), 1) + js.touch_channel
        _, inverse, per_pair = np.unique(pair, return_inverse=True, return_counts=True)
        _, _, distinct = channel_sets(journey, js.touch_channel, len(js))
        weight = 1.0 / (distinct[journey] * per_pair[inverse])
    weight = np.where(converting, weight, 0.0)
    return weight, weight * value, "", none


def _global_credit(js: JourneySet, model: str, config: AttributionConfig) -> Credit:
    channels = len(js.channels)
    touched = js.converted & (js.length > 0)
    touched_conversions = float(touched.sum())
    touched_revenue = math.fsum(js.value[touched])
    if model == "markov":
        result = removal_effects(js.touch_journey, js.touch_channel, js.start, js.length,
                                 js.converted, channels, config.markov_order)
        total = math.fsum(result.removal_effects)
        share = result.removal_effects / total if total > 0 else np.zeros(channels)
        conversion_share = revenue_share = np.where(share > _NEGLIGIBLE, share, 0.0)
        method = (f"exact: absorbing Markov chain of order {config.markov_order} "
                  f"({result.states} states), removal effects from one factorisation")
    else:
        result = shapley_values(js.touch_journey, js.touch_channel, js.converted, js.value,
                                channels, config.shapley_exact_max, config.shapley_samples,
                                config.seed)
        conversion_total = math.fsum(result.conversion_values)
        revenue_total = math.fsum(result.revenue_values)
        conversion_share = result.conversion_values / conversion_total \
            if conversion_total else np.zeros(channels)
        revenue_share = result.revenue_values / revenue_total \
            if revenue_total else np.zeros(channels)
        method = result.method
        if result.max_standard_error:
            method += f", standard error of a value up to {result.max_standard_error:.2g}"
    channel_conversions = conversion_share * touched_conversions
    channel_revenue = revenue_share * touched_revenue

    # Spread each channel's credit over the converting journeys that touched it.
    journey = js.touch_journey
    converting = js.converted[journey]
    pair = journey.astype(np.int64) * max(channels, 1) + js.touch_channel
    _, inverse, per_pair = np.unique(pair, return_inverse=True, return_counts=True)
    per_touch = np.where(converting, 1.0 / per_pair[inverse], 0.0)  # 1 per journey-channel
    journeys_with = np.bincount(js.touch_channel, weights=per_touch, minlength=channels)
    revenue_with = np.bincount(js.touch_channel, weights=per_touch * js.value[journey],
                               minlength=channels)
    channel = js.touch_channel
    with np.errstate(invalid="ignore", divide="ignore"):
        conversions = np.where(journeys_with[channel] > 0,
                               per_touch * channel_conversions[channel]
                               / journeys_with[channel], 0.0)
        by_value = per_touch * js.value[journey] * channel_revenue[channel] \
            / revenue_with[channel]
        equally = per_touch * channel_revenue[channel] / journeys_with[channel]
        revenue = np.where(revenue_with[channel] > 0, by_value,
                           np.where(journeys_with[channel] > 0, equally, 0.0))
    untouched = journeys_with == 0
    spread = (np.where(untouched, channel_conversions, 0.0),
              np.where(untouched, channel_revenue, 0.0))
    return conversions, revenue, method, spread


def _report(js: JourneySet, model: str, conversions: np.ndarray, revenue: np.ndarray,
            spread: tuple[np.ndarray, np.ndarray], method: str) -> AttributionReport:
    channels = len(js.channels)
    direct = channels  # the pseudo-channel's code
    places, segments, kinds = len(PLACES), len(SEGMENTS), len(TOUCH_TYPES)
    cells = (channels + 1) * places * segments * kinds

    def cell(channel: np.ndarray, place: np.ndarray, segment: np.ndarray,
             kind: np.ndarray) -> np.ndarray:
        return ((channel.astype(np.int64) * places + place) * segments + segment) * kinds \
            + kind

    journey = js.touch_journey
    codes = [cell(js.touch_channel, js.place[journey].clip(0), js.touch_segment,
                  np.where(js.touch_view, _VIEW, _CLICK))]
    conversion_parts, revenue_parts = [conversions], [revenue]
    untouched = np.flatnonzero(js.converted & (js.length == 0))
    codes.append(cell(np.full(len(untouched), direct), js.place[untouched],
                      js.segment[untouched], np.full(len(untouched), _NONE)))
    conversion_parts.append(np.ones(len(untouched)))
    revenue_parts.append(js.value[untouched])
    touched = np.flatnonzero(js.converted & (js.length > 0))
    for channel in np.flatnonzero((spread[0] != 0) | (spread[1] != 0)):
        # Credited by the chain without touching a converting journey: over all of them.
        share = 1.0 / len(touched)
        codes.append(cell(np.full(len(touched), channel), js.place[touched],
                          js.segment[touched], np.full(len(touched), _NONE)))
        conversion_parts.append(np.full(len(touched), spread[0][channel] * share))
        weights = js.value[touched] / js.value[touched].sum() if js.value[touched].sum() \
            else np.full(len(touched), share)
        revenue_parts.append(spread[1][channel] * weights)
    code = np.concatenate(codes)
    by_cell = np.stack([np.bincount(code, weights=np.concatenate(conversion_parts),
                                    minlength=cells),
                        np.bincount(code, weights=np.concatenate(revenue_parts),
                                    minlength=cells)])
    per_channel = by_cell.reshape(2, channels + 1, -1)
    totals = per_channel.sum(axis=2)
    names = [*js.channels, DIRECT]
    credited = [c for c in range(channels + 1)
                if abs(totals[0, c]) > _NEGLIGIBLE or abs(totals[1, c]) > _NEGLIGIBLE]
    credited.sort(key=lambda c: (-totals[1, c], -totals[0, c], names[c]))
    result = {}
    for c in credited:
        splits = []
        for index in np.flatnonzero((np.abs(per_channel[0, c]) > _NEGLIGIBLE)
                                    | (np.abs(per_channel[1, c]) > _NEGLIGIBLE)):
            place, rest = divmod(int(index), segments * kinds)
            segment, kind = divmod(rest, kinds)
            splits.append(CreditSplit(PLACES[place], SEGMENTS[segment], TOUCH_TYPES[kind],
                                      float(per_channel[0, c, index]),
                                      float(per_channel[1, c, index])))
        result[names[c]] = ChannelCredit(float(totals[0, c]), float(totals[1, c]),
                                         tuple(splits))
    converted = js.converted
    return AttributionReport(
        model=model, total_conversions=int(converted.sum()),
        total_revenue=math.fsum(js.value[converted]), channels=result, method=method)


def journeys_of(events: Sequence[AttributionEvent], config: AttributionConfig | None = None
                ) -> JourneySet:
    """Columns of the journeys of ``events`` (small inputs)."""
    config = config or AttributionConfig()
    return build_journey_set(EventTable.from_events(events, config.time_zone), config)

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
* ``markov``: a first-order Markov chain over channel states, with a start state and
  absorbing conversion and null states, estimated from all journeys, including the
  non-converting ones. A channel's removal effect is ``1 - P'(conversion) / P(conversion)``
  where ``P'`` is the conversion probability from the start state when the channel's state
  leads to null. Both probabilities are solved exactly from the absorbing chain
  (``(I - Q) x = r``), not simulated; simulation (ChannelAttribution) is several percent off.
  Credit is **global**: the touched conversions and their total revenue are split among
  channels by the normalised removal effects, so a channel's revenue is its share of all
  touched revenue, not the value of the particular orders it touched.
* ``shapley``: the Shapley value of the game whose coalition value ``v(S)`` is the number of
  conversions whose set of channels is a subset of ``S`` (the "simplified Shapley value" of
  Zhao et al. 2018). That game is the sum, over conversions, of unanimity games on each
  conversion's channel set ``T``, and the Shapley value of a unanimity game gives ``1/|T|``
  to each member; so the exact value is every conversion shared equally among its
  *distinct* channels. This closed form is exact for any number of channels and needs no
  enumeration of the 2^n coalitions. Revenue is shared the same way per conversion, which is
  exactly the Shapley value of the game whose coalition value is revenue.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from omnicdp.core.errors import FieldViolation, InvalidArgument
from omnicdp.services.attribution.journeys import (
    SEGMENTS,
    AttributionConfig,
    AttributionEvent,
    Journey,
    build_journeys,
    read_events_table,
)
from omnicdp.services.attribution.report import DIRECT, MODELS, AttributionReport, ChannelCredit

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


def attribute(events: Iterable[AttributionEvent], model: str,
              config: AttributionConfig | None = None) -> AttributionReport:
    """Attribute every conversion in ``events`` with ``model`` (one of ``MODELS``)."""
    _check_model(model)
    config = config or AttributionConfig()
    return attribute_journeys(build_journeys(events, config), model, config)


def attribute_by_segment(events: Iterable[AttributionEvent], model: str,
                         config: AttributionConfig | None = None
                         ) -> dict[str, AttributionReport]:
    """One report per audience segment (``new_contact``, ``never_bought``,
    ``active_buyer``; see ``journeys.py``), always all three, in that order.

    Each segment is attributed over its own journeys only; for ``markov`` that means the
    chain is estimated from the segment's converting and non-converting journeys. The
    segments' totals add up to the totals of ``attribute``; for all models but ``markov``
    the channel credits do too.
    """
    _check_model(model)
    config = config or AttributionConfig()
    by_segment: dict[str, list[Journey]] = {segment: [] for segment in SEGMENTS}
    for journey in build_journeys(events, config):
        by_segment[journey.segment].append(journey)
    return {segment: attribute_journeys(journeys, model, config)
            for segment, journeys in by_segment.items()}


def attribute_journeys(journeys: Sequence[Journey], model: str,
                       config: AttributionConfig | None = None) -> AttributionReport:
    """Attribute already built journeys (e.g. a subset of them) with ``model``."""
    _check_model(model)
    config = config or AttributionConfig()
    conversions: dict[str, float] = defaultdict(float)
    revenue: dict[str, float] = defaultdict(float)
    converting = [journey for journey in journeys if journey.conversion is not None]
    touched = [journey for journey in converting if journey.touches]
    for journey in converting:
        if not journey.touches:
            conversions[DIRECT] += 1.0
            revenue[DIRECT] += _revenue(journey)

    if model == "markov":
        touched_revenue = math.fsum(_revenue(journey) for journey in touched)
        for channel, share in _markov_shares(journeys).items():
            conversions[channel] += share * len(touched)
            revenue[channel] += share * touched_revenue
    else:
        share_out = _shapley_weights if model == "shapley" else _TOUCH_WEIGHTS[model]
        for journey in touched:
            for channel, weight in share_out(journey, config):
                conversions[channel] += weight
                revenue[channel] += weight * _revenue(journey)

    names = [name for name in conversions
             if abs(conversions[name]) > _NEGLIGIBLE or abs(revenue[name]) > _NEGLIGIBLE]
    names.sort(key=lambda name: (-revenue[name], -conversions[name], name))
    return AttributionReport(
        model=model,
        total_conversions=len(converting),
        total_revenue=math.fsum(_revenue(journey) for journey in converting),
        channels={name: ChannelCredit(conversions[name], revenue[name]) for name in names},
    )


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise InvalidArgument(
            f"unknown attribution model {model!r}; use one of {', '.join(MODELS)}",
            [FieldViolation("model", f"must be one of {', '.join(MODELS)}")])


def _revenue(journey: Journey) -> float:
    assert journey.conversion is not None
    return journey.conversion.value


# Rule-based models: one weight per touch (oldest first), summing to 1.
Weights = list[tuple[str, float]]


def _first_touch(journey: Journey, config: AttributionConfig) -> Weights:
    return [(journey.touches[0].channel, 1.0)]


def _last_touch(journey: Journey, config: AttributionConfig) -> Weights:
    return [(journey.touches[-1].channel, 1.0)]


def _linear(journey: Journey, config: AttributionConfig) -> Weights:
    share = 1.0 / len(journey.touches)
    return [(touch.channel, share) for touch in journey.touches]


def _time_decay(journey: Journey, config: AttributionConfig) -> Weights:
    assert journey.conversion is not None
    converted_at = journey.conversion.timestamp
    half_life = config.time_decay_half_life
    raw = [2.0 ** (-((converted_at - touch.timestamp) / half_life))
           for touch in journey.touches]
    total = math.fsum(raw)
    return [(touch.channel, weight / total) for touch, weight in zip(journey.touches, raw,
                                                                     strict=True)]


def _position_based(journey: Journey, config: AttributionConfig) -> Weights:
    touches = journey.touches
    if len(touches) == 1:
        return [(touches[0].channel, 1.0)]
    if len(touches) == 2:
        return [(touches[0].channel, 0.5), (touches[1].channel, 0.5)]
    middle = 0.2 / (len(touches) - 2)
    return ([(touches[0].channel, 0.4)]
            + [(touch.channel, middle) for touch in touches[1:-1]]
            + [(touches[-1].channel, 0.4)])


_TOUCH_WEIGHTS: dict[str, Callable[[Journey, AttributionConfig], Weights]] = {
    "first_touch": _first_touch,
    "last_touch": _last_touch,
    "linear": _linear,
    "time_decay": _time_decay,
    "position_based": _position_based,
}


def _shapley_weights(journey: Journey, config: AttributionConfig) -> Weights:
    # Closed form of the simplified Shapley value; see the module docstring.
    channels = sorted(set(journey.channels))
    return [(channel, 1.0 / len(channels)) for channel in channels]


def _markov_shares(journeys: Iterable[Journey]) -> dict[str, float]:
    """Normalised removal effects of the channels, from the exact absorbing-chain solution.

    Empty when no journey with touches converted.
    """
    paths: Counter[tuple[tuple[str, ...], bool]] = Counter(
        (journey.channels, journey.converted) for journey in journeys if journey.touches)
    if not any(converted for _, converted in paths):
        return {}
    channels = sorted({channel for path, _ in paths for channel in path})
    index = {channel: position + 1 for position, channel in enumerate(channels)}  # 0 = start
    size = len(channels) + 1
    moves = np.zeros((size, size))
    to_conversion = np.zeros(size)
    to_null = np.zeros(size)
    for (path, converted), count in paths.items():
        state = 0
        for channel in path:
            moves[state, index[channel]] += count
            state = index[channel]
        (to_conversion if converted else to_null)[state] += count

    # Every state was left at least once: each observed path ends in conversion or null.
    leaving = moves.sum(axis=1) + to_conversion + to_null
    transient = moves / leaving[:, None]
    absorbed = to_conversion / leaving

    def conversion_probability(removed: int | None = None) -> float:
        q, r = transient.copy(), absorbed.copy()
        if removed is not None:
            # The removed channel's state now leads only to null.
            q[removed, :] = 0.0
            r[removed] = 0.0
        return float(np.linalg.solve(np.eye(size) - q, r)[0])

    baseline = conversion_probability()
    effects = {channel: min(1.0, max(0.0, 1.0 - conversion_probability(index[channel])
                                     / baseline))
               for channel in channels}
    total = math.fsum(effects.values())
    return {channel: effect / total for channel, effect in effects.items()
            if effect > _NEGLIGIBLE}

"""Markov and Shapley against independent solutions: the absorbing chain solved per channel
with a dense inverse (numpy) in the test, and Shapley values by enumeration and their
axioms (efficiency, symmetry, null player) on small games."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from omnicdp.services.attribution import markov
from omnicdp.services.attribution.journeys import AttributionConfig, AttributionEvent
from omnicdp.services.attribution.models import attribute, journeys_of
from omnicdp.services.attribution.shapley import shapley_values

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def journey_events(paths: list[tuple[tuple[str, ...], bool]]) -> list[AttributionEvent]:
    """Events for journeys given as channel paths, one customer each, an hour apart."""
    events = []
    for number, (path, converted) in enumerate(paths):
        customer = f"c{number}"
        for step, channel in enumerate(path):
            events.append(AttributionEvent(customer, T0 + timedelta(hours=step), "touch",
                                           channel))
        if converted:
            events.append(AttributionEvent(customer, T0 + timedelta(hours=len(path)),
                                           "conversion", "web", 10.0 + number % 7))
    return events


def random_paths(seed: int, journeys: int, channels: int, longest: int = 6
                 ) -> list[tuple[tuple[str, ...], bool]]:
    rng = np.random.default_rng(seed)
    names = [f"ch{c:02d}" for c in range(channels)]
    weights = rng.dirichlet(np.ones(channels))
    paths = []
    for _ in range(journeys):
        length = int(rng.integers(1, longest + 1))
        path = tuple(names[i] for i in rng.choice(channels, size=length, p=weights))
        # Conversion is likelier after some channels, so effects differ.
        converted = bool(rng.random() < 0.15 + 0.5 * (names.index(path[-1]) % 3 == 0))
        paths.append((path, converted))
    return paths


def dense_removal_effects(paths: list[tuple[tuple[str, ...], bool]], order: int
                          ) -> dict[str, float]:
    """The chain built state by state in Python and solved once per channel with a dense
    inverse: the definition, independently of markov.py."""
    counts: dict[tuple, Counter] = defaultdict(Counter)
    for path, converted in paths:
        state: tuple = ("(start)",)
        for step in range(len(path)):
            following = tuple(reversed(path[max(0, step - order + 1):step + 1]))
            counts[state][following] += 1
            state = following
        counts[state]["(conversion)" if converted else "(null)"] += 1
    states = sorted(counts, key=str)
    index = {state: i for i, state in enumerate(states)}
    channels = sorted({c for path, _ in paths for c in path})

    def conversion_probability(removed: str | None) -> float:
        q = np.zeros((len(states), len(states)))
        r = np.zeros(len(states))
        for state, following in counts.items():
            if removed is not None and removed in state:
                continue  # leads only to null
            total = sum(following.values())
            for target, count in following.items():
                if target == "(conversion)":
                    r[index[state]] += count / total
                elif target != "(null)":
                    q[index[state], index[target]] += count / total
        return float((np.linalg.inv(np.eye(len(states)) - q) @ r)[index[("(start)",)]])

    baseline = conversion_probability(None)
    return {c: min(1.0, max(0.0, 1.0 - conversion_probability(c) / baseline))
            for c in channels}


def our_removal_effects(paths, order: int) -> dict[str, float]:
    js = journeys_of(journey_events(paths))
    result = markov.removal_effects(js.touch_journey, js.touch_channel, js.start, js.length,
                                    js.converted, len(js.channels), order)
    return {name: float(result.removal_effects[code]) for code, name in enumerate(js.channels)
            if name != "web"}


@pytest.mark.parametrize(("order", "channels"), [(1, 9), (2, 9), (3, 5)])
def test_markov_removal_effects_equal_the_dense_absorbing_chain_solution(
        order: int, channels: int) -> None:
    paths = random_paths(seed=order, journeys=600, channels=channels)
    expected = dense_removal_effects(paths, order)
    actual = our_removal_effects(paths, order)
    assert set(actual) == set(expected)
    for channel, effect in expected.items():
        assert abs(actual[channel] - effect) < 1e-9, channel
    assert len({round(e, 6) for e in expected.values()}) > 3  # a test that can tell apart


def test_markov_sparse_factorisation_gives_the_dense_answer(monkeypatch) -> None:
    paths = random_paths(seed=4, journeys=800, channels=14)
    dense = our_removal_effects(paths, 2)
    monkeypatch.setattr(markov, "DENSE_STATES", 1)
    sparse = our_removal_effects(paths, 2)
    first_order_sparse = our_removal_effects(paths, 1)
    monkeypatch.setattr(markov, "DENSE_STATES", 10_000)
    assert sparse == pytest.approx(dense, abs=1e-12)
    assert first_order_sparse == pytest.approx(our_removal_effects(paths, 1), abs=1e-12)
    assert sparse == pytest.approx(dense_removal_effects(paths, 2), abs=1e-9)


def test_markov_report_shares_touched_conversions_by_removal_effect() -> None:
    paths = random_paths(seed=8, journeys=300, channels=5)
    report = attribute(journey_events(paths), "markov")
    effects = dense_removal_effects(paths, 1)
    touched = sum(converted for _, converted in paths)
    total = math.fsum(effects.values())
    for channel, effect in effects.items():
        assert report.channels[channel].conversions == pytest.approx(
            touched * effect / total, abs=1e-9)
    assert "order 1" in report.method


def test_markov_order_two_is_an_option_of_the_report() -> None:
    paths = random_paths(seed=9, journeys=300, channels=4)
    report = attribute(journey_events(paths), "markov", AttributionConfig(markov_order=2))
    effects = dense_removal_effects(paths, 2)
    total = math.fsum(effects.values())
    touched = sum(converted for _, converted in paths)
    for channel, effect in effects.items():
        assert report.channels[channel].conversions == pytest.approx(
            touched * effect / total, abs=1e-9)
    assert "order 2" in report.method


# Shapley from conversion rates of coalitions.

def game_paths(sets: dict[tuple[str, ...], tuple[int, int]]
               ) -> list[tuple[tuple[str, ...], bool]]:
    """Journeys from {channel set: (journeys, conversions)}."""
    return [(channels, number < converted)
            for channels, (journeys, converted) in sets.items() for number in range(journeys)]


def enumerated_shapley(sets: dict[tuple[str, ...], tuple[int, int]]) -> dict[str, float]:
    players = sorted({c for channels in sets for c in channels})

    def value(coalition: frozenset[str]) -> float:
        journeys = sum(n for channels, (n, _) in sets.items() if set(channels) <= coalition)
        converted = sum(c for channels, (_, c) in sets.items() if set(channels) <= coalition)
        return converted / journeys if journeys else 0.0

    totals = dict.fromkeys(players, 0.0)
    permutations = list(itertools.permutations(players))
    for permutation in permutations:
        before: frozenset[str] = frozenset()
        for player in permutation:
            totals[player] += value(before | {player}) - value(before)
            before = before | {player}
    return {p: total / len(permutations) for p, total in totals.items()}


def values_of(sets, **options) -> tuple[dict[str, float], str]:
    js = journeys_of(journey_events(game_paths(sets)))
    result = shapley_values(js.touch_journey, js.touch_channel, js.converted, js.value,
                            len(js.channels), **options)
    return ({name: float(result.conversion_values[code])
             for code, name in enumerate(js.channels) if name != "web"}, result.method)


GAME = {("a",): (10, 2), ("b",): (8, 1), ("c",): (5, 3), ("a", "b"): (6, 4),
        ("a", "c"): (4, 1), ("b", "c", "d"): (7, 5), ("a", "b", "c", "d"): (3, 3)}


def test_shapley_equals_enumeration_over_permutations() -> None:
    values, method = values_of(GAME)
    assert values == pytest.approx(enumerated_shapley(GAME), abs=1e-12)
    assert method.startswith("exact")


def test_shapley_is_efficient_credits_add_up_to_the_conversions() -> None:
    values, _ = values_of(GAME)
    journeys = sum(n for n, _ in GAME.values())
    conversions = sum(c for _, c in GAME.values())
    assert math.fsum(values.values()) == pytest.approx(conversions / journeys, abs=1e-12)
    report = attribute(journey_events(game_paths(GAME)), "shapley")
    assert math.fsum(c.conversions for c in report.channels.values()) == pytest.approx(
        conversions)
    assert math.fsum(c.revenue for c in report.channels.values()) == pytest.approx(
        report.total_revenue)


def test_shapley_gives_symmetric_channels_equal_credit() -> None:
    game = {("a",): (10, 3), ("b",): (10, 3), ("a", "b"): (6, 4), ("c",): (5, 1),
            ("a", "c"): (4, 2), ("b", "c"): (4, 2)}
    values, _ = values_of(game)
    assert values["a"] == pytest.approx(values["b"], abs=1e-12)
    assert values["a"] != pytest.approx(values["c"])


def test_shapley_gives_a_null_player_nothing() -> None:
    # n appears only with a and b, converting at v({a, b})'s rate: it never changes a
    # coalition's conversion rate.
    game = {("a",): (10, 2), ("b",): (10, 5), ("a", "b"): (5, 3), ("a", "b", "n"): (25, 10)}
    values, _ = values_of(game)
    assert values["n"] == pytest.approx(0.0, abs=1e-12)
    assert values["a"] != pytest.approx(0.0)
    report = attribute(journey_events(game_paths(game)), "shapley")
    assert report.channels["n"].conversions == pytest.approx(0.0, abs=1e-12)


def test_sampled_shapley_is_seeded_and_close_to_exact() -> None:
    exact, _ = values_of(GAME)
    sampled, method = values_of(GAME, exact_max=0, samples=4000, seed=3)
    again, _ = values_of(GAME, exact_max=0, samples=4000, seed=3)
    assert sampled == again
    assert method.startswith("monte_carlo: 4000 random permutations of 4 channels (seed 3)")
    assert sampled == pytest.approx(exact, abs=0.01)


def test_sampled_shapley_beyond_the_exact_limit_is_stated_in_the_report() -> None:
    paths = random_paths(seed=2, journeys=400, channels=18, longest=4)
    report = attribute(journey_events(paths), "shapley",
                       AttributionConfig(shapley_samples=300))
    assert report.method.startswith("monte_carlo: 300 random permutations of 18 channels")
    assert math.fsum(c.conversions for c in report.channels.values()) == pytest.approx(
        report.total_conversions)

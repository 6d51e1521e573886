"""Simulated time: whole seconds from the start of the window (UTC midnight of its first
day), and the few distributions that place events on it."""

from __future__ import annotations

import math
import random

HOUR = 3600
DAY = 86_400
LONG_AGO = -10**9  # "since always": before any window


def poisson(rng: random.Random, mean: float) -> int:
    """How many events of a Poisson process fall in a period (Knuth's method; the means here
    are small)."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def within_hours(t: int, opens: int, closes: int, rng: random.Random) -> int:
    """``t``, or the next opening when ``t`` falls outside ``opens``-``closes`` (UTC hours)."""
    day, second = divmod(t, DAY)
    if second < opens * HOUR:
        return day * DAY + opens * HOUR + rng.randrange(0, 3 * HOUR)
    if second >= closes * HOUR:
        return (day + 1) * DAY + opens * HOUR + rng.randrange(0, 3 * HOUR)
    return t


def browsing_time(t: int, rng: random.Random) -> int:
    """A time on ``t``'s day at a plausible browsing hour (peak in the Moscow evening)."""
    return t // DAY * DAY + int(rng.triangular(3, 21, 16) * HOUR)


def latest(timeline: list[tuple[int, str]], t: int) -> str:
    """The value in force at ``t`` of a (since, value) timeline, oldest first; the first
    value when ``t`` precedes them all."""
    current = timeline[0][1]
    for since, value in timeline:
        if since <= t:
            current = value
    return current

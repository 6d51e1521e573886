"""The Markov chain model's removal effects, solved exactly from one factorisation.

The chain: a start state, one transient state per channel (order 1) or per sequence of the
last k channels (order k; shorter at a journey's start), and two absorbing states,
conversion and null. Transition probabilities are the observed frequencies over all
journeys, converting or not. ``P`` is the probability of absorption in conversion from the
start; removing channel ``c`` sends every state that holds ``c`` to null, and its removal
effect is ``1 - P_c / P``.

Exact, not simulated, and from one factorisation. With ``A = I - Q`` (Q the transient part)
and ``N = A^-1`` the fundamental matrix, ``x = N r`` is the conversion probability from every
state. Making a set ``S`` of states lead to null changes only S's rows of ``A``, so
(Woodbury) the new solution is ``x' = x - N[:, S] N[S, S]^-1 x[S]`` and
``P_c = x[0] - N[0, S] N[S, S]^-1 x[S]``. One LU factorisation of ``A`` (dense LAPACK for
small chains, SuperLU when the state space is large) gives ``x``, the start's row of ``N``
and the columns ``N[:, S]``; for order 1 ``S = {c}`` and ``P_c = x[0] - N[0,c] x[c] /
N[c,c]``. A removal effect costs a triangular solve per state in ``S``, not a solve of
the whole chain per channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Above this many states, the chain is factorised as a sparse matrix. Dense costs 8 bytes a
# cell (288 MB at 6,000 states, factorised in place) but first-order chains fill their LU
# almost completely: at 3,000 channels SuperLU took 33 s where LAPACK took 3.5 s, at 5,000
# SuperLU took 205 s.
DENSE_STATES = 6000


@dataclass(frozen=True)
class MarkovResult:
    """Removal effects per channel code (clipped to [0, 1]) and the chain's size."""

    conversion_probability: float
    removal_effects: np.ndarray  # float per channel code, 0 for channels never touched
    states: int


def transitions(touch_journey: np.ndarray, touch_channel: np.ndarray, start: np.ndarray,
                length: np.ndarray, converted: np.ndarray, channels: int, order: int = 1
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The chain's counts from journeys as columns (touches grouped by journey, oldest
    first): ``(source, target, count)`` between transient states (state 0 is the start),
    the number of absorptions into conversion per state, and each state's channels as a
    ``(states, order)`` array (-1 pads, row 0 for the start)."""
    touched = length > 0
    first = np.zeros(len(touch_channel), dtype=bool)  # a journey's first touch
    first[start[touched]] = True
    if order == 1:
        state = touch_channel.astype(np.int64) + 1
        members = np.concatenate(([[-1]], np.arange(channels)[:, None])).astype(np.int64)
    else:
        base = channels + 1
        if order * math.log2(base) > 62:
            raise ValueError(f"a Markov chain of order {order} over {channels} channels has "
                             "too many possible states; use a lower order")
        position = np.arange(len(touch_channel)) - start[touch_journey]
        # A state is the last `order` channels, newest first, -1 before the journey.
        key = np.zeros(len(touch_channel), dtype=np.int64)
        for lag in range(order):
            valid = position >= lag
            lagged = np.zeros(len(touch_channel), dtype=np.int64)
            lagged[valid] = touch_channel[np.flatnonzero(valid) - lag] + 1
            key = key * base + lagged
        unique, inverse = np.unique(key, return_inverse=True)
        state = inverse.astype(np.int64) + 1
        members = np.full((len(unique) + 1, order), -1, dtype=np.int64)
        rest = unique.copy()
        for lag in reversed(range(order)):
            members[1:, lag] = rest % base - 1
            rest //= base
    size = len(members)
    previous = np.empty_like(state)
    if len(state):
        previous[0] = 0
        previous[1:] = state[:-1]
    previous[first] = 0
    pair = previous * size + state
    if size * size <= 4 * len(pair) + 1024:
        dense = np.bincount(pair, minlength=size * size)
        pairs = np.flatnonzero(dense)
        counts = dense[pairs]
    else:
        pairs, counts = np.unique(pair, return_counts=True)
    last = state[start[touched] + length[touched] - 1]
    ends = converted[touched]
    conversions = np.bincount(last[ends], minlength=size).astype(np.float64)
    nulls = np.bincount(last, minlength=size) - conversions
    return pairs // size, pairs % size, counts.astype(np.float64), np.stack(
        [conversions, nulls]), members


def removal_effects(touch_journey: np.ndarray, touch_channel: np.ndarray, start: np.ndarray,
                    length: np.ndarray, converted: np.ndarray, channels: int,
                    order: int = 1) -> MarkovResult:
    """Exact removal effects of every channel (see the module docstring)."""
    source, target, counts, absorbed, members = transitions(
        touch_journey, touch_channel, start, length, converted, channels, order)
    size = len(members)
    leaving = np.bincount(source, weights=counts, minlength=size) + absorbed.sum(axis=0)
    effects = np.zeros(channels)
    if size == 1 or absorbed[0].sum() == 0:
        return MarkovResult(0.0, effects, size)
    # Every state was left at least once (each observed path ends in conversion or null);
    # the start may not be, when no journey has touches, handled above.
    leaving[leaving == 0] = 1.0
    r = absorbed[0] / leaving
    weights = counts / leaving[source]
    holding = [np.flatnonzero((members[1:] == c).any(axis=1)) + 1 for c in range(channels)] \
        if order > 1 else None
    if size <= DENSE_STATES:
        from scipy.linalg import lu_factor, lu_solve

        a = np.zeros((size, size), order="F")  # LAPACK's order: factorised in place
        a[np.arange(size), np.arange(size)] = 1.0
        a[source, target] -= weights  # (source, target) pairs are unique
        factor = lu_factor(a, overwrite_a=True, check_finite=False)
        x = lu_solve(factor, r, check_finite=False)
        row = lu_solve(factor, np.eye(size, 1, 0).ravel(), trans=1, check_finite=False)

        def columns(states: np.ndarray) -> np.ndarray:
            rhs = np.zeros((size, len(states)))
            rhs[states, np.arange(len(states))] = 1.0
            return lu_solve(factor, rhs, check_finite=False)
    else:
        from scipy.sparse import csc_matrix, identity
        from scipy.sparse.linalg import splu

        a = (identity(size, format="csc")
             - csc_matrix((weights, (source, target)), shape=(size, size))).tocsc()
        factor = splu(a)
        x = factor.solve(r)
        row = factor.solve(np.eye(size, 1, 0).ravel(), trans="T")

        def columns(states: np.ndarray) -> np.ndarray:
            rhs = np.zeros((size, len(states)))
            rhs[states, np.arange(len(states))] = 1.0
            return factor.solve(rhs)

    baseline = float(x[0])
    if baseline <= 0:
        return MarkovResult(baseline, effects, size)
    if holding is None:
        # Order 1: the diagonal of N over the channel states, in blocks of columns.
        states = np.arange(1, size)
        diagonal = np.empty(len(states))
        block = max(1, min(len(states), 4_000_000 // size))
        for begin in range(0, len(states), block):
            chunk = states[begin:begin + block]
            diagonal[begin:begin + block] = columns(chunk)[chunk, np.arange(len(chunk))]
        without = baseline - row[1:] * x[1:] / diagonal
    else:
        without = np.empty(channels)
        for c, states in enumerate(holding):
            if len(states) == 0:
                without[c] = baseline
                continue
            n_s = columns(states)
            without[c] = baseline - row[states] @ np.linalg.solve(n_s[states], x[states])
    effects = np.clip(1.0 - without / baseline, 0.0, 1.0)
    return MarkovResult(baseline, effects, size)

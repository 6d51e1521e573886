"""Attribution at scale: the Markov model step against the exact absorbing-chain solution
and, side by side in the same run, ChannelAttribution's ``markov_model``; the whole
``cdp attribution run`` from a Parquet event table; Markov over 1,000 channels.

    .venv/bin/python -m benchmarks.attribution --journeys 1000000 --channels 8
    .venv/bin/python -m benchmarks.attribution --journeys 100000 --skip-parquet --json

Journeys are drawn from a seeded random first-order chain (no channel twice in a row, so
ChannelAttribution's reading of a path and ours build the same chain). "Exact" is that
chain, counted from the drawn journeys, solved once per channel with a dense inverse
(numpy), independently of ``markov.py``. Errors are the largest absolute difference of a
channel's share of the credit (removal effect over their sum) from the exact share.

ChannelAttribution (GPL-3.0) is a peer, never a dependency: install it into the venv only
to run this (``.venv/bin/python -m pip install ChannelAttribution``); without it its columns
say so. It gets the paths aggregated (one row per distinct path with its conversion and
null counts, its usual input) and only its ``markov_model`` call is timed; our step starts
from one row per touch (counting the chain, factorising, all removal effects).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.output import print_result
from omnicdp.services.attribution.markov import removal_effects

_HOUR_US = 3_600_000_000


def draw_journeys(journeys: int, channels: int, seed: int, longest: int = 12,
                  fanout: int | None = None) -> dict[str, np.ndarray]:
    """Journeys as columns (``touch_journey``, ``touch_channel``, ``start``, ``length``,
    ``converted``) from a random chain. ``fanout`` limits each channel's successors (a
    sparse chain, as with many channels)."""
    rng = np.random.default_rng(seed)
    popularity = rng.dirichlet(np.full(channels, 0.8))
    conversion = rng.uniform(0.02, 0.25, channels)
    stop = rng.uniform(0.15, 0.5, channels)
    successors = None
    if fanout:
        successors = np.stack([rng.choice(channels, fanout, replace=False)
                               for _ in range(channels)])
    current = rng.choice(channels, journeys, p=popularity)
    alive = np.ones(journeys, dtype=bool)
    converted = np.zeros(journeys, dtype=bool)
    steps = [current.copy()]
    active = [alive.copy()]
    for _ in range(longest - 1):
        draw = rng.random(journeys)
        converts = alive & (draw < conversion[current])
        stops = alive & ~converts & (draw < conversion[current] + stop[current])
        converted |= converts
        alive &= ~(converts | stops)
        if successors is not None:
            following = successors[current, rng.integers(0, successors.shape[1], journeys)]
        else:
            following = rng.choice(channels - 1, journeys, p=None)
            following = following + (following >= current)  # never the same channel again
        following = np.where(following == current, (following + 1) % channels, following)
        current = np.where(alive, following, current)
        steps.append(current.copy())
        active.append(alive.copy())
    # Journeys still going after the longest path end without converting.
    matrix = np.stack(steps, axis=1)
    present = np.stack(active, axis=1)
    length = present.sum(axis=1)
    touch_journey = np.repeat(np.arange(journeys), length)
    touch_channel = matrix[present]
    start = np.concatenate(([0], np.cumsum(length)[:-1]))
    return {"touch_journey": touch_journey, "touch_channel": touch_channel.astype(np.int64),
            "start": start, "length": length.astype(np.int64), "converted": converted,
            "channels": channels}


def exact_shares(data: dict[str, Any], only: list[int] | None = None) -> dict[int, float]:
    """Removal effects from the counted chain, one dense inverse per channel, normalised
    (over ``only`` channels' effects when given, else all)."""
    k = data["channels"]
    size = k + 1
    counts = np.zeros((size, size))
    absorbed = np.zeros((2, size))
    journey, channel = data["touch_journey"], data["touch_channel"]
    position = np.arange(len(channel)) - data["start"][journey]
    previous = np.where(position > 0, np.r_[0, channel[:-1] + 1], 0)
    np.add.at(counts, (previous, channel + 1), 1.0)
    touched = data["length"] > 0
    last = channel[data["start"][touched] + data["length"][touched] - 1] + 1
    np.add.at(absorbed[0], last[data["converted"][touched]], 1.0)
    np.add.at(absorbed[1], last[~data["converted"][touched]], 1.0)
    leaving = counts.sum(axis=1) + absorbed.sum(axis=0)
    leaving[leaving == 0] = 1
    q, r = counts / leaving[:, None], absorbed[0] / leaving

    def probability(removed: int | None) -> float:
        q2, r2 = q.copy(), r.copy()
        if removed is not None:
            q2[removed] = 0
            r2[removed] = 0
        return float((np.linalg.inv(np.eye(size) - q2) @ r2)[0])

    baseline = probability(None)
    which = only if only is not None else list(range(k))
    return {c: min(1.0, max(0.0, 1 - probability(c + 1) / baseline)) for c in which}


def normalised(effects: dict[int, float]) -> dict[int, float]:
    total = sum(effects.values())
    return {c: e / total for c, e in effects.items()}


def our_step(data: dict[str, Any]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    result = removal_effects(data["touch_journey"], data["touch_channel"], data["start"],
                             data["length"], data["converted"], data["channels"])
    return time.perf_counter() - started, result.removal_effects


def channel_attribution(data: dict[str, Any]) -> dict[str, Any]:
    try:
        import pandas as pd
        with contextlib.redirect_stdout(sys.stderr):  # its banner is not our result
            from ChannelAttribution import markov_model
    except ImportError:
        return {"ChannelAttribution": "not installed: columns skipped "
                                      "(pip install ChannelAttribution into the venv)"}
    channel = data["touch_channel"]
    # Distinct paths with their conversions and nulls.
    names = np.array([f"c{c}" for c in range(data["channels"])], dtype=object)
    labels = names[channel]
    paths = np.array([" > ".join(labels[s:s + n]) for s, n in
                      zip(data["start"], data["length"], strict=True)], dtype=object)
    frame = pd.DataFrame({"path": paths, "conv": data["converted"].astype(int)})
    frame["null"] = 1 - frame["conv"]
    grouped = frame.groupby("path", as_index=False)[["conv", "null"]].sum()
    started = time.perf_counter()
    result = markov_model(grouped, var_path="path", var_conv="conv", var_null="null",
                          order=1, verbose=False, flg_pro=False)
    elapsed = time.perf_counter() - started
    credit = dict(zip(result["channel_name"], result["total_conversions"], strict=True))
    total = sum(credit.values())
    shares = {int(name[1:]): value / total for name, value in credit.items()}
    return {"time": elapsed, "shares": shares, "distinct_paths": len(grouped)}


def write_parquet(data: dict[str, Any], path: Path, seed: int) -> int:
    """The journeys as an attribution event table: a customer per journey, touches an hour
    apart (clicks: within the 30-day lookback), then the purchase an hour later."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    journeys = len(data["length"])
    begin = 1_767_225_600_000_000 + rng.integers(0, 30 * 24, journeys) * _HOUR_US
    journey, channel = data["touch_journey"], data["touch_channel"]
    position = np.arange(len(channel)) - data["start"][journey]
    buyers = np.flatnonzero(data["converted"])
    customers = np.concatenate([journey, buyers])
    times = np.concatenate([begin[journey] + position * _HOUR_US,
                            begin[buyers] + data["length"][buyers] * _HOUR_US])
    names = np.array([f"ch{c}" for c in range(data["channels"])] + ["web"], dtype=object)
    channel_names = names[np.concatenate([channel, np.full(len(buyers), data["channels"])])]
    kinds = np.concatenate([np.full(len(journey), "touch", dtype=object),
                            np.full(len(buyers), "conversion", dtype=object)])
    values = np.concatenate([np.zeros(len(journey)), rng.uniform(500, 9000, len(buyers))])
    table = pa.table({
        "customer_id": pa.array(np.char.add("p", customers.astype(str))),
        "timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
        "kind": pa.array(kinds, pa.string()),
        "channel": pa.array(channel_names, pa.string()),
        "value": pa.array(values),
    })
    pq.write_table(table, path)
    return table.num_rows


# The run is started from a small intermediate process that reports its child's peak RSS:
# Linux counts in a child's maxrss the memory of the process it was forked from (here the
# benchmark, holding a million journeys), so the benchmark cannot measure its own child.
_MEASURE = ("import resource, subprocess, sys; "
            "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)")


def whole_run(path: Path) -> dict[str, Any]:
    started = time.perf_counter()
    process = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m",
                              "omnicdp.cli", "attribution", "run", str(path), "--model",
                              "markov", "--json"], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    return {"time": elapsed, "peak_rss_mb": int(process.stdout.split()[-1]) / 1024}


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--journeys", type=int, default=1_000_000)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of each model step; the fastest is reported")
    parser.add_argument("--many-channels", type=int, default=1000)
    parser.add_argument("--many-journeys", type=int, default=200_000)
    parser.add_argument("--skip-parquet", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    result: dict[str, Any] = {"journeys": args.journeys, "channels": args.channels}
    progress(f"drawing {args.journeys:,} journeys over {args.channels} channels")
    data = draw_journeys(args.journeys, args.channels, args.seed)
    result["touches"] = len(data["touch_channel"])
    result["conversions"] = int(data["converted"].sum())
    exact = normalised(exact_shares(data))
    ours = min(our_step(data) for _ in range(args.repeats))
    our_shares = normalised(dict(enumerate(ours[1])))
    result["ours: model step s"] = round(ours[0], 4)
    result["ours: max share error"] = f"{max(abs(our_shares[c] - exact[c]) for c in exact):.2e}"
    progress("ChannelAttribution's markov_model")
    peer = channel_attribution(data)
    if "time" in peer:
        best = peer
        for _ in range(args.repeats - 1):
            again = channel_attribution(data)
            best = again if again["time"] < best["time"] else best
        result["ChannelAttribution: model step s"] = round(best["time"], 4)
        result["ChannelAttribution: max share error"] = \
            f"{max(abs(best['shares'].get(c, 0.0) - exact[c]) for c in exact):.2e}"
        result["ChannelAttribution: distinct paths given"] = best["distinct_paths"]
        result["ours / ChannelAttribution time"] = round(ours[0] / best["time"], 3)
    else:
        result.update(peer)

    if not args.skip_parquet:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "events.parquet"
            progress("writing the Parquet event table")
            rows = write_parquet(data, path, args.seed)
            progress(f"cdp attribution run {path.name} --model markov ({rows:,} events)")
            run = whole_run(path)
            result["parquet: events"] = rows
            result["parquet: MB"] = round(os.path.getsize(path) / 2**20, 1)
            result["parquet: whole run s"] = round(run["time"], 2)
            result["parquet: peak RSS MB"] = round(run["peak_rss_mb"])

    progress(f"Markov over {args.many_channels:,} channels ({args.many_journeys:,} journeys)")
    many = draw_journeys(args.many_journeys, args.many_channels, args.seed + 1, fanout=40)
    elapsed, effects = our_step(many)
    result[f"{args.many_channels} channels: touches"] = len(many["touch_channel"])
    result[f"{args.many_channels} channels: model step s"] = round(elapsed, 3)
    sample = list(np.random.default_rng(args.seed).choice(args.many_channels, 10,
                                                          replace=False))
    started = time.perf_counter()
    exact_many = exact_shares(many, [int(c) for c in sample])
    per_channel = (time.perf_counter() - started) / len(sample)
    result[f"{args.many_channels} channels: max removal-effect error (10 channels)"] = \
        f"{max(abs(effects[c] - e) for c, e in exact_many.items()):.2e}"
    # The reference inverts the chain once per channel: what removal effects cost done
    # one channel at a time, extrapolated from the 10 channels checked.
    result[f"{args.many_channels} channels: reference, a dense inverse per channel s "
           "(extrapolated)"] = round(per_channel * args.many_channels, 1)
    print_result(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The feature fold alone, no broker: µs per reading, as the scoring helper spends them.

    python scripts/fold_benchmark.py                          # cnc and pump, 200,000 each
    python scripts/fold_benchmark.py --profile cnc --repeat 7

Draws ``--readings`` readings of ``--assets`` assets from the simulator (1 s apart per asset,
the profile's baseline, noise and load cycle), decoded to lists of floats as
:mod:`assetwatch.scoring.preparation` hands them over, then feeds them in batches of
``--batch``: ``FeatureExtractor.fold`` per reading (``fold_us``) and, on states of their
own, ``fold_many`` per batch as the helper folds (``fold_many_us``); then per batch
``snapshots`` + ``rows`` + ``baseline`` (:mod:`assetwatch.scoring.processor`) and the changed
states' ``to_bytes``. ``total_us`` counts the one-at-a-time fold. Each run starts from empty
states. Prints one JSON line per profile: the median over ``--repeat`` runs of µs per
reading for each part, and its spread.
Compare figures only within one invocation (or alternating invocations) on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass

from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.profiles import Profile, load_profile
from assetwatch.features.state import AssetState
from assetwatch.simulation import START_MS, TelemetrySimulator

PARTS = ("fold", "fold_many", "rows", "state_bytes")


@dataclass(frozen=True)
class Stream:
    """Readings in arrival order (tick-major), as the preparer sees them."""

    assets: list[int]
    timestamps: list[int]
    values: list[list[float]]


def stream(profile: Profile, n_readings: int, n_assets: int, seed: int) -> Stream:
    """``n_readings`` healthy readings, one per asset per reading interval."""
    ticks = -(-n_readings // n_assets)
    block = TelemetrySimulator(profile, n_assets, START_MS, seed=seed).block(ticks)
    values = block.values.reshape(ticks * n_assets, -1)[:n_readings].tolist()
    assets = [i % n_assets for i in range(n_readings)]
    timestamps = [int(block.timestamps[i // n_assets]) for i in range(n_readings)]
    return Stream(assets, timestamps, values)


def run(extractor: FeatureExtractor, readings: Stream, n_assets: int, batch: int
        ) -> dict[str, float]:
    """Seconds spent in each part over one pass of the stream, from empty states."""
    states: list[AssetState] = [extractor.new_state() for _ in range(n_assets)]
    together: list[AssetState] = [extractor.new_state() for _ in range(n_assets)]
    spent = dict.fromkeys(PARTS, 0.0)
    clock, fold = time.perf_counter, extractor.fold
    for start in range(0, len(readings.assets), batch):
        end = start + batch
        assets = readings.assets[start:end]
        t0 = clock()
        snapshots = [fold(states[a], ts, v) for a, ts, v in
                     zip(assets, readings.timestamps[start:end], readings.values[start:end],
                         strict=True)]
        t1 = clock()
        by_asset: dict[int, list[int]] = {}
        for i, a in enumerate(assets, start):
            by_asset.setdefault(a, []).append(i)
        extractor.fold_many([together[a] for a in by_asset],
                            [[readings.timestamps[i] for i in rows] for rows in by_asset.values()],
                            [[readings.values[i] for i in rows] for rows in by_asset.values()])
        spent["fold_many"] += clock() - t1
        t1 = clock()
        matrix = extractor.snapshots(snapshots)
        extractor.rows(matrix)
        extractor.baseline(matrix)
        t2 = clock()
        for a in set(assets):
            states[a].to_bytes()
        t3 = clock()
        spent["fold"] += t1 - t0
        spent["rows"] += t2 - t1
        spent["state_bytes"] += t3 - t2
    return spent


def measure(profile: Profile, args: argparse.Namespace) -> dict[str, object]:
    """Median and spread of µs per reading of each part over ``args.repeat`` runs."""
    readings = stream(profile, args.readings, args.assets, args.seed)
    extractor = FeatureExtractor(profile)
    runs = [run(extractor, readings, args.assets, args.batch) for _ in range(args.repeat)]
    scale = 1e6 / args.readings
    out: dict[str, object] = {"profile": profile.name, "readings": args.readings,
                              "assets": args.assets, "batch": args.batch,
                              "repeat": args.repeat}
    for part in (*PARTS, "total"):
        us = sorted(scale * (sum(r.values()) - r["fold_many"] if part == "total" else r[part])
                    for r in runs)
        out[f"{part}_us"] = round(statistics.median(us), 3)
        out[f"{part}_us_range"] = [round(us[0], 3), round(us[-1], 3)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", action="append", help="cnc and pump unless given")
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in args.profile or ["cnc", "pump"]:
        print(json.dumps(measure(load_profile(name), args)), flush=True)


if __name__ == "__main__":
    main()

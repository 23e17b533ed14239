"""The scoring process's own work per event, without a broker: decode to encoded outputs.

    python scripts/processor_benchmark.py                    # cnc, 50 assets, batches of 1500
    python scripts/processor_benchmark.py --events 60000 --repeat 5

Trains the benchmark's baseline (100-tree forests), simulates readings as the worker's
benchmark does, Avro-encodes them as a producer would and keys them to their murmur2
partition, then runs them through :class:`BatchProcessor` (prepare, score, observers) in
batches, keeping each changed state for the next batch as the worker's table does. Prints one
JSON line: the median µs per event over ``--repeat`` passes (each from empty states), with the
prepare / score split. The garbage collector is tuned as the helper tunes it. It measures
what the scoring helper does besides delivery and IPC, so hot-path changes can be compared
on a noisy machine within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from assetwatch.agents.commands.simulate import SimulationPlan, simulated_readings
from assetwatch.agents.worker.collector import tune_for_batches
from assetwatch.features.profiles import load_profile
from assetwatch.models.bundle import ScoringModel
from assetwatch.models.training import synthetic_readings, train_models
from assetwatch.schemas.codecs import codec
from assetwatch.scoring.partitioner import partition_for
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound
from assetwatch.settings import Settings

PARTITIONS = 6


def _pass(processor: BatchProcessor, batches: list[list[Inbound]]) -> tuple[float, float]:
    """Seconds in prepare and in score over every batch, from empty states."""
    store: dict[bytes, bytes] = {}
    prepare_s = score_s = 0.0
    for batch in batches:
        started = time.perf_counter()
        prepared = processor.prepare(batch, store.get)
        scored = time.perf_counter()
        outcome = processor.score(prepared)
        prepare_s += scored - started
        score_s += time.perf_counter() - scored
        store.update({asset: raw for asset, (_, raw) in outcome.states.items()})
    return prepare_s, score_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1500)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    profile = load_profile("cnc")
    training = train_models(profile, synthetic_readings(profile, 12, 1.0, seed=1),
                            trees=args.trees)
    model = ScoringModel("bench", "1", training.bundle)
    readings = list(simulated_readings(
        profile, SimulationPlan(assets=args.assets, count=args.events, rate=1e9),
        threading.Event(), time.time))
    encode = codec("TelemetryReading").encode
    offsets = [0] * PARTITIONS
    messages = []
    for reading in readings:
        key = reading["asset_id"].encode()
        partition = partition_for(key, PARTITIONS)
        messages.append(Inbound(key, encode(reading), "telemetry", partition,
                                offsets[partition]))
        offsets[partition] += 1
    batches = [messages[i : i + args.batch] for i in range(0, len(messages), args.batch)]
    tune_for_batches()  # the collector as the scoring helper sets it
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, data_dir=Path(tmp),  # type: ignore[call-arg]
                            profiles=("cnc",), partitions=PARTITIONS)
        passes = []
        for _ in range(args.repeat):
            processor = BatchProcessor(settings, {"cnc": profile}, {"cnc": model}.__getitem__,
                                       partitions=PARTITIONS)
            passes.append(_pass(processor, batches))
    n = len(messages)
    prepare = statistics.median(p for p, _ in passes) / n * 1e6
    score = statistics.median(s for _, s in passes) / n * 1e6
    total = statistics.median(p + s for p, s in passes) / n * 1e6
    print(json.dumps({"events": n, "assets": args.assets, "batch": args.batch,
                      "repeat": args.repeat, "us_per_event": round(total, 1),
                      "prepare_us": round(prepare, 1), "score_us": round(score, 1)}))


if __name__ == "__main__":
    main()

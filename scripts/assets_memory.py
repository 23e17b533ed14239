"""Memory per distinct asset: one worker fed 10,000 new asset ids, RSS before and after.

    python scripts/assets_memory.py                      # 10,000 cnc assets, 3 readings each
    python scripts/assets_memory.py --trace              # the helper's work, in-process

Starts the embedded broker (or uses KAFKA_BOOTSTRAP_SERVERS) and a throw-away MLflow store
with a small cnc baseline, then one ``assetwatch worker`` (scoring helper included). It warms
the worker up on a few assets, samples the resident memory of the worker's main process and
of its scoring helper (from /proc), sends ``--readings`` readings for each of ``--assets``
new asset ids, waits for every output, samples again, sends the same assets as many readings
again (the second pass shows what keeps growing with readings, not ids) and samples a third
time. Prints JSON lines: RSS of each process at each sample, bytes per asset of the growth,
and the serialised state size per asset of the cnc and pump profiles. Figures, not
assertions: RSS depends on the allocator and the machine.

``--trace`` runs the scoring helper's work in this process instead, under tracemalloc
(:class:`BatchProcessor` on the same readings, no worker), and prints where what it keeps
was allocated.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import procfs  # scripts/, beside this file
from confluent_kafka import Consumer

from assetwatch.agents.commands.simulate import SimulationPlan, simulated_readings
from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.agents.kafka.topics import ensure_topics
from assetwatch.agents.local.broker import free_port, start_broker
from assetwatch.agents.local.worker_process import WorkerProcess
from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.profiles import Profile, load_profile
from assetwatch.features.state import AssetState
from assetwatch.models.registry import RegistryConfig, register
from assetwatch.models.serving import load_version
from assetwatch.models.training import synthetic_readings, train_models
from assetwatch.schemas.codecs import codec
from assetwatch.scoring.partitioner import partition_for
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound
from assetwatch.settings import Settings

WARM_ASSETS = 50
WARM_READINGS = 20


def _helper(pid: int) -> int | None:
    """The worker's scoring helper: a spawned child."""
    return next((c for c in procfs.children(pid) if "spawn_main" in procfs.read(c, "cmdline")),
                None)


def _sample(label: str, worker: int, helper: int) -> dict[str, Any]:
    sample = {"sample": label, "worker_rss_mb": round(procfs.rss_bytes(worker) / 2**20, 1),
              "helper_rss_mb": round(procfs.rss_bytes(helper) / 2**20, 1)}
    print(json.dumps(sample), flush=True)
    return {"worker": procfs.rss_bytes(worker), "helper": procfs.rss_bytes(helper)}


class Outputs:
    """Counts output records without decoding them."""

    def __init__(self, settings: Settings) -> None:
        self._consumer = Consumer({
            **settings.kafka_client_config(), "group.id": f"assets-memory-{os.getpid()}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self._consumer.subscribe([settings.predictions_topic, settings.dead_letter_topic])
        self.seen = 0

    def wait_for(self, total: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.seen < total:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {self.seen}/{total} outputs within {timeout_s}s")
            self.seen += sum(1 for m in self._consumer.consume(10_000, 0.5) if m.error() is None)

    def close(self) -> None:
        self._consumer.close()


def _readings(assets: int, per_asset: int, prefix: str, seed: int) -> list[dict[str, Any]]:
    plan = SimulationPlan(assets=assets, count=assets * per_asset, rate=1e9, seed=seed,
                          asset_prefix=prefix)
    return list(simulated_readings(load_profile("cnc"), plan, threading.Event(), time.time))


def state_bytes(profile: Profile, readings: int) -> int:
    """Serialised state size of an asset after ``readings`` readings, one interval apart."""
    extractor, state = FeatureExtractor(profile), AssetState.empty(profile)
    step_ms = int(profile.reading_interval_s * 1000)
    for i in range(readings):
        values = [s.baseline + s.noise * ((i * 7919 + j) % 11 - 5) / 5
                  for j, s in enumerate(profile.sensors)]
        extractor.fold(state, 1_700_000_000_000 + i * step_ms, values)
    return len(state.to_bytes())


def _trace(settings: Settings, readings: list[dict[str, Any]], top: int) -> None:
    """The helper's per-asset work in this process, under tracemalloc."""
    profile = load_profile("cnc")
    config = RegistryConfig.from_settings(settings)
    model = load_version(config, "cnc", "1")
    processor = BatchProcessor(settings, {"cnc": profile}, lambda _: model,
                               partitions=settings.partitions)
    encode = codec("TelemetryReading").encode
    batch = [Inbound(r["asset_id"].encode(), encode(r), settings.telemetry_topic,
                     partition_for(r["asset_id"].encode(), settings.partitions), i)
             for i, r in enumerate(readings)]
    states: dict[bytes, bytes] = {}
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    for start in range(0, len(batch), 2000):
        outcome = processor.process(batch[start:start + 2000], states.get)
        states.update({k: raw for k, (_, raw) in outcome.states.items()})
        del outcome
    after = tracemalloc.take_snapshot()
    n = len({r["asset_id"] for r in readings})
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(json.dumps({"trace": "BatchProcessor in-process", "assets": n,
                      "processor_bytes_per_asset": round(
                          (grown - sum(map(len, states.values()))) / n),
                      "state_bytes_per_asset": round(sum(map(len, states.values())) / n)}))
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[0]
        print(json.dumps({"kept_kb": round(stat.size_diff / 1024),
                          "per_asset_b": round(stat.size_diff / n),
                          "at": f"{Path(frame.filename).parent.name}/"
                                f"{Path(frame.filename).name}:{frame.lineno}"}))


@contextlib.contextmanager
def _worker(settings: Settings, log: Path) -> Iterator[tuple[int, int]]:
    worker = WorkerProcess(settings.model_copy(update={"metrics_port": free_port()}), log,
                           cwd=Path.cwd())
    try:
        worker.wait_ready(180)
        helper = _helper(worker.pid)
        if helper is None:
            raise SystemExit("the worker has no scoring helper (ASSETWATCH_SCORING_PROCESS?)")
        yield worker.pid, helper
    finally:
        worker.stop(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--readings", type=int, default=3, help="readings per asset per pass")
    parser.add_argument("--trees", type=int, default=25)
    parser.add_argument("--trace", action="store_true",
                        help="tracemalloc BatchProcessor in this process instead of a worker")
    parser.add_argument("--log-dir", type=Path, default=Path("."))
    args = parser.parse_args()

    print(json.dumps({"profile": "cnc and pump", "state_bytes": {
        name: {"after_1_reading": state_bytes(load_profile(name), 1),
               "after_3_readings": state_bytes(load_profile(name), 3),
               "after_2000_readings": state_bytes(load_profile(name), 2000)}
        for name in ("cnc", "pump")}}), flush=True)

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        compat: Literal["none", "tansu"] = "none" if external else "tansu"
        servers = external or stack.enter_context(start_broker()).bootstrap_servers
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, kafka_bootstrap_servers=servers, broker_compat=compat,
            data_dir=Path(tmp), profiles=("cnc",), topic_prefix=f"mem{os.getpid()}",
            log_level="WARNING", metrics_port=0,
        )
        ensure_topics(settings)
        profile = load_profile("cnc")
        print(f"training a {args.trees}-tree cnc baseline...", file=sys.stderr)
        register(RegistryConfig.from_settings(settings),
                 train_models(profile, synthetic_readings(profile, 12, 1.0, seed=1),
                              trees=args.trees))
        fleet = _readings(args.assets, args.readings, "fleet", 2)
        if args.trace:
            _trace(settings, fleet, 15)
            return
        warm = _readings(WARM_ASSETS, WARM_READINGS, "warm", 1)
        again = _readings(args.assets, args.readings * 2, "fleet", 2)[len(fleet):]
        log = args.log_dir / "assets-memory-worker.log"
        log.unlink(missing_ok=True)
        with _worker(settings, log) as (worker, helper):
            outputs = Outputs(settings)
            publish(ReadingPublisher(settings), warm)
            outputs.wait_for(len(warm), 300)
            before = _sample("warm", worker, helper)
            publish(ReadingPublisher(settings), fleet)
            outputs.wait_for(len(warm) + len(fleet), 900)
            after = _sample(f"after {args.assets} new assets", worker, helper)
            publish(ReadingPublisher(settings), again)
            outputs.wait_for(len(warm) + len(fleet) + len(again), 900)
            again_rss = _sample("after as many readings again, same assets", worker, helper)
            outputs.close()
        print(json.dumps({
            "assets": args.assets, "readings_per_asset": args.readings,
            "bytes_per_asset": {name: round((after[name] - before[name]) / args.assets)
                                for name in ("worker", "helper")},
            "second_pass_bytes_per_asset": {
                name: round((again_rss[name] - after[name]) / args.assets)
                for name in ("worker", "helper")}}))


if __name__ == "__main__":
    main()

"""End-to-end throughput of one worker: produce N readings, time until N outputs arrive.

    python scripts/benchmark.py --events 100000 --assets 50

Starts the embedded broker (or uses KAFKA_BOOTSTRAP_SERVERS), registers a baseline with
100-tree forests in a throw-away MLflow store, starts one ``assetwatch worker`` process,
warms it up, then times from the first reading produced to the N-th prediction consumed.
Prints one JSON line with the figures, including the CPU time per event of the worker's
main process and of its helper process (from /proc), which noise on a shared machine
disturbs less than events/s.
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
from pathlib import Path

from confluent_kafka import Consumer

from assetwatch.agents.commands.simulate import SimulationPlan, simulated_readings
from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.agents.kafka.topics import ensure_topics
from assetwatch.agents.local.broker import start_broker
from assetwatch.agents.local.worker_process import WorkerProcess
from assetwatch.features.profiles import load_profile
from assetwatch.models.registry import RegistryConfig, register
from assetwatch.models.training import synthetic_readings, train_models
from assetwatch.settings import Settings


def _output_counter(settings: Settings) -> Consumer:
    """Counts output messages without decoding them, to leave the CPU to the worker."""
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"bench-{os.getpid()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([settings.predictions_topic, settings.dead_letter_topic])
    return consumer


def _wait_for(consumer: Consumer, count: int, timeout_s: float) -> float:
    """Consume until ``count`` outputs arrived; return the monotonic time of the last one."""
    seen = 0
    deadline = time.monotonic() + timeout_s
    while seen < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {seen}/{count} outputs within {timeout_s}s")
        seen += sum(1 for m in consumer.consume(10_000, 0.5) if m.error() is None)
    return time.monotonic()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--worker-log", type=Path, default=Path("benchmark-worker.log"))
    args = parser.parse_args()

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        if external:
            servers, compat = external, "none"
        else:
            servers, compat = stack.enter_context(start_broker()).bootstrap_servers, "tansu"
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, kafka_bootstrap_servers=servers, broker_compat=compat,
            data_dir=Path(tmp), profiles=("cnc",), topic_prefix=f"bench{os.getpid()}",
            log_level="WARNING", metrics_port=0,
        )
        ensure_topics(settings)
        profile = load_profile("cnc")
        print(f"training a {args.trees}-tree baseline...", file=sys.stderr)
        training = train_models(profile, synthetic_readings(profile, 12, 1.0, seed=1),
                                trees=args.trees)
        register(RegistryConfig.from_settings(settings), training)

        args.worker_log.unlink(missing_ok=True)  # one run per log
        worker = WorkerProcess(settings, args.worker_log.resolve(), cwd=Path.cwd())
        try:
            readings = list(simulated_readings(
                profile, SimulationPlan(assets=args.assets, count=args.events + args.assets * 20,
                                        rate=1e9), threading.Event(), time.time))
            warmup, timed = readings[: args.assets * 20], readings[args.assets * 20 :]
            counter = _output_counter(settings)
            publish(ReadingPublisher(settings), warmup)
            _wait_for(counter, len(warmup), 180)
            print(f"worker warm; timing {len(timed)} readings...", file=sys.stderr)
            helpers = _children(worker.pid)
            cpu_before = [_cpu_seconds(pid) for pid in (worker.pid, *helpers)]
            started = time.monotonic()
            publish(ReadingPublisher(settings), timed)
            produced = time.monotonic()
            finished = _wait_for(counter, len(timed), 600)
            cpu = [_cpu_seconds(pid) - before
                   for pid, before in zip((worker.pid, *helpers), cpu_before, strict=True)]
            counter.close()
        finally:
            worker.stop(30)
    seconds = finished - started
    print(json.dumps({
        "events": len(timed), "assets": args.assets, "trees": args.trees,
        "produce_seconds": round(produced - started, 3), "seconds": round(seconds, 3),
        "events_per_s": round(len(timed) / seconds),
        # CPU per event is steadier than events/s on a noisy machine: compare these too.
        "worker_cpu_us_per_event": round(cpu[0] / len(timed) * 1e6, 1),
        "helpers_cpu_us_per_event": round(sum(cpu[1:]) / len(timed) * 1e6, 1),
    }))


if __name__ == "__main__":
    main()

"""One worker beside a hand-written peer, on the same input and kind of broker, in one run.

    python scripts/benchmark.py --events 100000 --assets 50            # throughput
    python scripts/benchmark.py --rate 200 --duration 60               # latency at a rate

Registers a baseline with 100-tree forests in a throw-away MLflow store, then runs each
pipeline in turn with the same readings, each on a fresh embedded broker of its own (tansu
slows as it fills; with KAFKA_BOOTSTRAP_SERVERS, on its own topics of that cluster): one
``assetwatch worker`` process, then ``scripts/handwritten_peer.py`` (a plain
confluent-kafka micro-batch loop doing the same features, models and Prediction records,
without changelog, dead letters, drift or alerts). With ``--repeat N`` every round runs the
peer too, last in even rounds and first in odd ones (the machine drifts over an invocation),
each worker run is compared with its round's peer, and the median ratio is printed.
Every reading is produced before the pipeline starts (as the issue's figures were taken), and
each pipeline is timed from its warm-up's last output (``--assets`` x 20) to its last one, so
the timed window holds only the pipeline, the broker and the counting consumer (which reads
from before the pipeline starts: see :class:`_Tally`).
Prints one JSON line per pipeline and one with the ratio: events/s, CPU time per event of
each process (from /proc; steadier than events/s on a noisy machine) and RSS.

With ``--rate`` the worker is fed readings stamped "now" at that rate instead, and the
event-time-to-prediction latency percentiles are printed, over the whole run and over its
second half (start-up and warm-up behind it), the second half split at the readings' broker
acknowledgement and at their scoring. On the embedded tansu, readings produced with the
simulator's 5 ms linger at 2,000/s and more wait for their acknowledgement ever longer (many
small produce requests); ``--producer-linger-ms 50`` batches them.

``--workers 2`` times two workers in one group on the same input (their CPU per event is
the sum over every process of both); repeat it to alternate counts in one invocation:

    python scripts/benchmark.py --events 50000 --no-peer --workers 1 --workers 2 --repeat 2

``--scoring-processes N`` runs each worker with N scoring helpers (the worker's own setting
otherwise); repeat it to alternate counts the same way.

``--wire confluent`` runs the worker with Confluent framing (``0x00`` + schema id) through
the Schema Registry TEST DOUBLE of ``tests/schema_registry_double.py``, started as its own
process (no real registry installs here; benchmark and test use only). The worker talks to
it at start only (registering its subjects), so it measures the framing, not the registry.
Repeat ``--wire`` and add ``--repeat N`` to alternate framings in one invocation:

    python scripts/benchmark.py --events 20000 --no-peer \
        --wire single-object --wire confluent --repeat 2
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import procfs  # scripts/, beside this file
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from assetwatch.agents.commands.simulate import SimulationPlan, simulated_readings
from assetwatch.agents.kafka.producer import LINGER_MS, ReadingPublisher, publish
from assetwatch.agents.kafka.topics import ensure_topics
from assetwatch.agents.local.broker import free_port, start_broker
from assetwatch.agents.local.worker_process import WorkerProcess, settings_env
from assetwatch.features.profiles import load_profile
from assetwatch.models.registry import RegistryConfig, register
from assetwatch.models.training import synthetic_readings, train_models
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings

PEER = Path(__file__).with_name("handwritten_peer.py")
ROOT = Path(__file__).resolve().parents[1]
WIRES = ("single-object", "confluent")
COUNT_WAIT_S = 0.005
"""Longest an output waits in the counting consumer before it is counted (or timed)."""


@contextlib.contextmanager
def _registry_double() -> Iterator[str]:
    """The tests' Schema Registry double in a process of its own; yields its URL."""
    double = subprocess.Popen([sys.executable, "-m", "tests.schema_registry_double"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert double.stdout is not None
        url = double.stdout.readline().strip()  # the double prints its URL once listening
        if not url.startswith("http://"):
            raise SystemExit(f"the registry double did not start (exit {double.poll()})")
        yield url
    finally:
        double.terminate()
        double.wait(30)


def _counter(settings: Settings) -> Consumer:
    """Reads the outputs from their start, assigned rather than joining a group.

    A group join takes seconds on tansu, which latency mode would count.
    """
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"bench-{os.getpid()}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                     for topic in (settings.predictions_topic, settings.dead_letter_topic)
                     for p in range(settings.partitions)])
    return consumer


def _wait_for(consumer: Consumer, count: int, timeout_s: float) -> None:
    """Consume until ``count`` outputs arrived (latency mode's warm-up)."""
    seen = 0
    deadline = time.monotonic() + timeout_s
    while seen < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {seen}/{count} outputs within {timeout_s}s")
        # a short timeout: consume(n, timeout) returns once n came or the timeout passed
        seen += sum(1 for m in consumer.consume(10_000, COUNT_WAIT_S) if m.error() is None)


def _rss_mb(pid: int) -> float:
    return round(procfs.rss_bytes(pid) / 2**20, 1)


def _family(pid: int) -> list[int]:
    """The process and its children (the worker's scoring helper)."""
    return [pid, *procfs.children(pid)]


EMBEDDED = "embedded"
"""The bootstrap servers of settings whose pipeline gets an embedded broker of its own."""


@contextlib.contextmanager
def _own_broker(settings: Settings) -> Iterator[Settings]:
    """``settings`` on a fresh embedded broker (unless they name a cluster), topics created.

    tansu keeps every record in memory and slows as it fills: in one 60 s run at 200/s its
    produce acknowledgement went from 10 to 20 ms and the latency's median from 23 to 36 ms
    and more. A pipeline timed on the broker another one filled would pay for it.
    """
    with contextlib.ExitStack() as stack:
        if settings.kafka_bootstrap_servers == EMBEDDED:
            servers = stack.enter_context(start_broker()).bootstrap_servers
            settings = settings.model_copy(update={"kafka_bootstrap_servers": servers})
        ensure_topics(settings)
        yield settings


@contextlib.contextmanager
def _pipeline(kind: str, settings: Settings, log: Path, workers: int = 1) -> Iterator[list[int]]:
    """A running peer, or ``workers`` workers in one group, on ``settings``' topics; their pids."""
    if kind == "worker":
        with contextlib.ExitStack() as stack:
            started = []
            for _ in range(workers):
                own = settings.model_copy(update={"metrics_port": free_port()})
                worker = WorkerProcess(own, log, cwd=Path.cwd())
                stack.callback(worker.stop, 30)
                started.append(worker)
            for worker in started:
                worker.wait_ready(180)
            yield [worker.pid for worker in started]
        return
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ASSETWATCH_")},
           **settings_env(settings)}
    with log.open("ab") as out:
        peer = subprocess.Popen([sys.executable, str(PEER)], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            yield [peer.pid]
        finally:
            peer.terminate()
            peer.wait(30)


class _Tally(threading.Thread):
    """Counts a pipeline's outputs from before it starts, as they come, on its own thread.

    Counted only once the pipeline is up (a worker is "ready" seconds after it began), the
    outputs made meanwhile would arrive as one backlog and be counted at the reader's speed.
    """

    def __init__(self, settings: Settings, total: int) -> None:
        super().__init__(daemon=True)
        self._consumer, self._total = _counter(settings), total
        self._count, self._changed = 0, threading.Condition()

    def run(self) -> None:
        try:
            while self._count < self._total:
                got = sum(1 for m in self._consumer.consume(1000, COUNT_WAIT_S)
                          if m.error() is None)
                if got:
                    with self._changed:
                        self._count += got
                        self._changed.notify_all()
        finally:
            self._consumer.close()

    @property
    def count(self) -> int:
        """The outputs counted so far."""
        with self._changed:
            return self._count

    def reached(self, count: int, timeout_s: float) -> float:
        """The monotonic time once ``count`` outputs are in."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._count >= count, timeout_s):
                raise SystemExit(f"only {self._count}/{count} outputs within {timeout_s}s")
            return time.monotonic()


def _throughput(kind: str, base: Settings, readings: list[dict[str, Any]], warmup: int,
                log: Path, run: str = "", workers: int = 1) -> dict[str, Any]:
    """Every reading produced before the pipeline starts; timed from the ``warmup``-th output.

    Producing them meanwhile would put the encoding and producing (~2 s of CPU per 100,000
    readings, on a 2-core machine) inside the timed window. The window starts when the
    pipeline is up and past its warm-up, with the outputs counted so far.
    """
    named = base.model_copy(update={"topic_prefix": f"{base.topic_prefix}-{kind}{run}"})
    with _own_broker(named) as settings:
        publish(ReadingPublisher(settings), readings)
        tally = _Tally(settings, len(readings))
        tally.start()
        with _pipeline(kind, settings, log, workers) as pids:
            tally.reached(warmup, 180)
            family = [p for pid in pids for p in _family(pid)]
            before = [procfs.cpu_seconds(p) for p in family]
            started, seen = time.monotonic(), tally.count
            if len(readings) - seen < len(readings) // 2:
                raise SystemExit(f"the {kind} made {seen} of {len(readings)} outputs before "
                                 "its timing began: give it more --events")
            finished = tally.reached(len(readings), 900)
            cpu = [procfs.cpu_seconds(p) - b for p, b in zip(family, before, strict=True)]
            rss = [_rss_mb(p) for p in family]
        tally.join()
    n = len(readings) - seen
    return {"pipeline": kind, "events": n, "seconds": round(finished - started, 3),
            "events_per_s": round(n / (finished - started)),
            "cpu_us_per_event": [round(c / n * 1e6, 1) for c in cpu],
            "cpu_us_per_event_total": round(sum(cpu) / n * 1e6, 1), "rss_mb": rss}


class _TimedPublisher(ReadingPublisher):
    """A publisher that notes each reading's produce-to-acknowledgement time (ms)."""

    def __init__(self, settings: Settings, linger_ms: int) -> None:
        super().__init__(settings, linger_ms=linger_ms)
        self.acked_ms: list[float] = []

    def _on_delivery(self, error: KafkaError | None, msg: Message) -> None:
        super()._on_delivery(error, msg)
        if error is None:
            self.acked_ms.append(time.time() * 1000 - msg.timestamp()[1])


def _latency(kind: str, base: Settings, rate: float, duration_s: float, assets: int,
             log: Path, linger_ms: int) -> dict[str, Any]:
    """Readings stamped now, paced at ``rate``; percentiles of arrival minus event time.

    The pipeline is warmed up first (one reading per asset, its outputs awaited), so the
    timed readings see neither start-up nor a group join. The second half is also split: the
    readings' produce-to-acknowledgement time, event time to scoring (the Prediction's
    ``processed_timestamp``), and scoring to arrival here.
    """
    named = base.model_copy(update={"topic_prefix": f"{base.topic_prefix}-latency-{kind}"})
    profile = load_profile("cnc")
    plan = SimulationPlan(assets=assets, count=int(rate * duration_s), rate=rate, seed=3)
    decode = codec("Prediction").decode
    latencies: list[float] = []
    to_scoring: list[float] = []
    with _own_broker(named) as settings, _pipeline(kind, settings, log):
        publisher = _TimedPublisher(settings, linger_ms)
        consumer = _counter(settings)
        warmup = SimulationPlan(assets=assets, count=assets, rate=1e9, seed=4)
        _send_now(ReadingPublisher(settings), profile, warmup, None)
        _wait_for(consumer, assets, 180)  # one reading per asset
        sender = threading.Thread(target=_send_now, args=(publisher, profile, plan, rate))
        sender.start()
        deadline = time.monotonic() + duration_s + 120
        while len(latencies) < plan.count and time.monotonic() < deadline:  # type: ignore[operator]
            # consume(n, timeout) holds what came until n have or the timeout passes: with
            # (1000, 0.2) that added ~110 ms to the p50 at 200/s. One poll per output instead
            # left this process behind at 5,000/s (it also makes and sends the readings).
            for m in consumer.consume(1000, COUNT_WAIT_S):
                if m.error() is None and m.topic() == settings.predictions_topic:
                    prediction = decode(m.value() or b"")
                    latencies.append(time.time() * 1000 - prediction["event_timestamp"])
                    to_scoring.append(prediction["processed_timestamp"]
                                      - prediction["event_timestamp"])
        sender.join()
        consumer.close()
    half, acked = len(latencies) // 2, publisher.acked_ms
    return {"pipeline": kind, "rate": rate, "predictions": len(latencies),
            "producer_linger_ms": linger_ms, "latency_ms": _percentiles(latencies),
            # the second half of the run's predictions: warm-up effects left behind
            "latency_ms_second_half": _percentiles(latencies[half:]),
            "second_half_split_ms": {
                "produce_to_ack": _percentiles(acked[len(acked) // 2:]),
                "event_to_scored": _percentiles(to_scoring[half:]),
                "scored_to_here": _percentiles([total - part for total, part in zip(
                    latencies[half:], to_scoring[half:], strict=True)])}}


def _percentiles(latencies: list[float]) -> dict[str, float]:
    p = np.percentile(latencies, [50, 95, 99]) if latencies else [float("nan")] * 3
    return {"p50": round(p[0]), "p95": round(p[1]), "p99": round(p[2]),
            "max": round(max(latencies, default=float("nan")))}


def _send_now(publisher: ReadingPublisher, profile: Any, plan: SimulationPlan,
              rate: float | None) -> None:
    readings = simulated_readings(profile, plan, threading.Event(), time.time)
    stamped = ({**r, "timestamp": int(time.time() * 1000)} for r in readings)
    publish(publisher, stamped, rate=rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--no-peer", action="store_true", help="time the worker only")
    parser.add_argument("--workers", type=int, action="append",
                        help="workers in the group (repeatable: alternated; default 1); CPU "
                             "per event sums every process of every worker")
    parser.add_argument("--scoring-processes", type=int, action="append",
                        help="scoring helpers per worker (repeatable: alternated)")
    parser.add_argument("--rate", type=float, default=None,
                        help="latency mode: readings per second, stamped now")
    parser.add_argument("--duration", type=float, default=60.0, help="latency mode seconds")
    parser.add_argument("--producer-linger-ms", type=int, default=LINGER_MS,
                        help="latency mode: the readings' producer linger.ms (the simulator's "
                             f"{LINGER_MS} by default; on tansu, 2,000/s and more need ~50)")
    parser.add_argument("--log-dir", type=Path, default=Path("."))
    parser.add_argument("--wire", action="append", choices=WIRES,
                        help="worker output framing (repeatable: alternated); default "
                             "single-object; confluent starts the tests' registry double")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds over the worker configurations, each with its own peer run")
    args = parser.parse_args()
    wires = args.wire or ["single-object"]

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        compat: Literal["none", "tansu"] = "none" if external else "tansu"
        base = Settings(  # type: ignore[call-arg]
            _env_file=None, kafka_bootstrap_servers=external or EMBEDDED, broker_compat=compat,
            data_dir=Path(tmp), profiles=("cnc",), topic_prefix=f"bench{os.getpid()}",
            log_level="WARNING", metrics_port=0,
        )
        profile = load_profile("cnc")
        print(f"training a {args.trees}-tree baseline...", file=sys.stderr)
        training = train_models(profile, synthetic_readings(profile, 12, 1.0, seed=1),
                                trees=args.trees)
        register(RegistryConfig.from_settings(base), training)
        log = args.log_dir / "benchmark-worker.log"
        log.unlink(missing_ok=True)  # one run per log
        if args.rate:
            for kind in ("worker", *(() if args.no_peer else ("peer",))):
                print(f"timing the {kind}'s latency at {args.rate:g} readings/s...",
                      file=sys.stderr)
                print(json.dumps(_latency(kind, base, args.rate, args.duration, args.assets,
                                          log, args.producer_linger_ms)))
            return
        warmup = args.assets * 20
        readings = list(simulated_readings(
            profile, SimulationPlan(assets=args.assets, count=args.events + warmup, rate=1e9),
            threading.Event(), time.time))
        registry = (stack.enter_context(_registry_double()) if "confluent" in wires
                    else None)
        configs = [(wire, workers, helpers) for wire in wires for workers, helpers in
                   itertools.product(args.workers or [1],
                                     args.scoring_processes or [base.scoring_processes])]
        ratios: dict[tuple[str, int, int], list[float]] = {}
        for round_ in range(args.repeat):
            # ABBA: the peer runs last in even rounds and first in odd ones, so the machine's
            # drift over an invocation does not always favour one side of the ratio
            order: list[tuple[str, int, int] | None] = [*configs, None]
            peer: dict[str, Any] | None = None
            timed: list[dict[str, Any]] = []
            for config in order if round_ % 2 == 0 else order[::-1]:
                if config is None:
                    if args.no_peer:
                        continue
                    print(f"timing the peer on {args.events} readings...", file=sys.stderr)
                    peer = {**_throughput("peer", base, readings, warmup, log, f"-{round_}"),
                            "round": round_}
                    print(json.dumps({**peer, "assets": args.assets, "trees": args.trees}))
                    continue
                wire, workers, helpers = config
                framed = base.model_copy(update={
                    "schema_registry_url": registry if wire == "confluent" else None,
                    "scoring_processes": helpers})
                print(f"timing {workers} worker(s) with {helpers} scoring helper(s) "
                      f"({wire}) on {args.events} readings...", file=sys.stderr)
                result = {**_throughput("worker", framed, readings, warmup, log,
                                        f"-{wire}-{workers}-{helpers}-{round_}", workers),
                          "wire": wire, "round": round_, "workers": workers,
                          "scoring_processes": helpers}
                print(json.dumps({**result, "assets": args.assets, "trees": args.trees}))
                timed.append(result)
            peer_rate = peer["events_per_s"] if peer is not None else None
            for result in timed if peer_rate else ():  # each against its round's peer
                ratio = round(result["events_per_s"] / peer_rate, 2)
                key = (result["wire"], result["workers"], result["scoring_processes"])
                ratios.setdefault(key, []).append(ratio)
                print(json.dumps({"worker_over_peer": ratio, **dict(zip(
                    ("wire", "workers", "scoring_processes"), key, strict=True)),
                    "round": round_}))
        if args.repeat > 1:
            for (wire, workers, helpers), values in ratios.items():
                print(json.dumps({"median_worker_over_peer": statistics.median(values),
                                  "rounds": len(values), "wire": wire, "workers": workers,
                                  "scoring_processes": helpers}))

if __name__ == "__main__":
    main()

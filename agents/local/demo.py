"""``assetwatch demo``: the whole system on embedded defaults, with a live terminal view.

An embedded tansu broker, the local MLflow registry (trained baseline if none), one worker
process, paced simulators (CNC fleet plus a few pumps, some degrading to failure) and a
view of what comes out. With ``--duration`` it stops by itself; in every case it drains the
outputs, stops everything and prints one JSON summary line.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assetwatch.agents.commands.simulate import SimulationPlan, simulated_readings
from assetwatch.agents.kafka.consumer import RecordReader
from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.agents.kafka.topics import ensure_topics
from assetwatch.agents.local.broker import start_broker
from assetwatch.agents.local.worker_process import WorkerProcess
from assetwatch.agents.worker.run import load_models
from assetwatch.features.profiles import load_profiles
from assetwatch.settings import Settings

DRAIN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class DemoOptions:
    """What ``assetwatch demo`` was asked for: how long, with or without the view, the fleet."""

    duration_s: float | None = None
    headless: bool = False
    assets: int = 200
    failing: int = 2
    ramp_s: float = 60.0
    failure_rate_per_hour: float = 0.3
    """Fleet-wide: healthy assets also start degrading now and then."""


@dataclass
class Tally:
    """What the view shows, updated from the output topics."""

    predictions: int = 0
    anomalies: int = 0
    dead_letters: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    versions: dict[str, str] = field(default_factory=dict)
    risk: dict[str, float] = field(default_factory=dict)

    def add(self, kind: str, fields: dict[str, Any]) -> None:
        """Count one decoded output record of ``kind`` into the view."""
        if kind == "Prediction":
            self.predictions += 1
            self.anomalies += fields["is_anomaly"]
            self.versions[fields["model_name"]] = fields["model_version"]
            self.risk[fields["asset_id"]] = fields["failure_probability"]
        elif kind == "DeadLetter":
            self.dead_letters += 1
            self.reasons[fields["reason"]] += 1


def _simulators(
    settings: Settings, options: DemoOptions, stop: threading.Event
) -> tuple[list[threading.Thread], list[ReadingPublisher]]:
    profiles = load_profiles(settings.profiles, settings.profiles_dir)
    fleet = {"cnc": options.assets, "pump": max(2, options.assets // 10)}
    threads, publishers = [], []
    for seed, (name, count) in enumerate(fleet.items()):
        if name not in profiles:
            continue
        plan = SimulationPlan(assets=count, failing=min(options.failing, count),
                              ramp_s=options.ramp_s, seed=seed,
                              failure_rate_per_hour=options.failure_rate_per_hour)
        publisher = ReadingPublisher(settings)
        readings = simulated_readings(profiles[name], plan, stop, time.time)
        threads.append(threading.Thread(target=publish, args=(publisher, readings),
                                        name=f"simulate-{name}", daemon=True))
        publishers.append(publisher)
    return threads, publishers


def _render(tally: Tally, produced: int, elapsed: float, rate: float) -> str:
    lines = [
        "\x1b[2J\x1b[H assetwatch demo  (Ctrl-C to stop)",
        f" elapsed {elapsed:7.1f} s   readings sent {produced:9d}   scored/s {rate:8.1f}",
        f" predictions {tally.predictions:9d}   anomalies {tally.anomalies:7d}   "
        f"dead letters {tally.dead_letters:5d}",
        " models: " + ", ".join(f"{n} v{v}" for n, v in sorted(tally.versions.items())),
        "",
        " highest failure probability right now:",
    ]
    top = sorted(tally.risk.items(), key=lambda kv: kv[1], reverse=True)[:8]
    lines += [f"   {asset:<12} {p:6.1%} {'#' * int(p * 40)}" for asset, p in top]
    if tally.predictions == 0:
        lines.append("   (waiting for the worker: it joins the group in a few seconds)")
    return "\n".join(lines)


def run_demo(base: Settings, options: DemoOptions) -> dict[str, Any]:
    """Run until the duration ends or Ctrl-C; return the summary."""
    logs = base.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with start_broker(log_file=logs / "broker.log") as broker:
        settings = base.model_copy(update={
            "kafka_bootstrap_servers": broker.bootstrap_servers, "broker_compat": "tansu"})
        ensure_topics(settings)
        print("loading models (the first run trains and registers the baselines)...",
              file=sys.stderr, flush=True)
        models = load_models(settings, load_profiles(settings.profiles, settings.profiles_dir))
        worker = WorkerProcess(settings, logs / "worker.log", cwd=Path.cwd())
        stop = threading.Event()
        threads, publishers = _simulators(settings, options, stop)
        tally = Tally(versions={m.model.name: m.model.version for m in models.values()})
        started = time.monotonic()
        try:
            for thread in threads:
                thread.start()
            _watch(settings, options, tally, publishers, worker, started, stop)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
            produced = sum(p.sent for p in publishers)
            _drain(settings, tally, produced)
            worker.stop(60)
    return {
        "events_produced": produced,
        "predictions": tally.predictions,
        "dead_letters": tally.dead_letters,
        "lost": produced - tally.predictions - tally.dead_letters,
        "anomalies": tally.anomalies,
        "model_versions": tally.versions,
        "seconds": round(time.monotonic() - started, 1),
    }


def _watch(
    settings: Settings, options: DemoOptions, tally: Tally, publishers: list[ReadingPublisher],
    worker: WorkerProcess, started: float, stop: threading.Event,
) -> None:
    topics = [settings.predictions_topic, settings.dead_letter_topic]
    last_shown, last_count = started, 0
    with RecordReader(settings, topics) as reader:
        while options.duration_s is None or time.monotonic() - started < options.duration_s:
            worker.check_alive()
            for record in reader.poll(0.5):
                tally.add(record.kind, record.fields)
            now = time.monotonic()
            if now - last_shown >= 1.0:
                scored = tally.predictions + tally.dead_letters
                rate = (scored - last_count) / (now - last_shown)
                last_shown, last_count = now, scored
                produced = sum(p.sent for p in publishers)
                if options.headless:
                    print(f"{now - started:6.0f}s sent={produced} predictions={tally.predictions}"
                          f" anomalies={tally.anomalies} dead_letters={tally.dead_letters}",
                          file=sys.stderr, flush=True)
                else:
                    print(_render(tally, produced, now - started, rate), flush=True)
    stop.set()


def _drain(settings: Settings, tally: Tally, produced: int) -> None:
    """Read the outputs again from the start until every reading is accounted for."""
    final = Tally()
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    with RecordReader(settings, [settings.predictions_topic, settings.dead_letter_topic]) as r:
        while final.predictions + final.dead_letters < produced and time.monotonic() < deadline:
            for record in r.poll(0.5):
                final.add(record.kind, record.fields)
    tally.predictions, tally.anomalies = final.predictions, final.anomalies
    tally.dead_letters, tally.reasons = final.dead_letters, final.reasons
    tally.versions.update(final.versions)

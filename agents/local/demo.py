"""``assetwatch demo``: the whole system on embedded defaults, with a web dashboard.

A terminal view stays for ``--headless`` runs and SSH.

An embedded tansu broker, the local MLflow registry, one worker process (which trains and
registers a small baseline in seconds if there is none), paced simulators
(:mod:`agents.local.demo_fleet`), started once the worker is ready, and views of what comes
out. The broker and the worker run in sessions of their own, so the terminal's Ctrl-C
reaches only this process: it stops the simulators, waits until every reading sent has its
outcome (broker and worker still up), then stops the worker and the broker, in that order,
and prints one JSON summary line on stdout. A second Ctrl-C skips the wait.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assetwatch.agents.commands.interrupts import stop_on_interrupt
from assetwatch.agents.kafka.consumer import RecordReader
from assetwatch.agents.kafka.topics import ensure_topics
from assetwatch.agents.local.broker import free_port, start_broker
from assetwatch.agents.local.dashboard import Dashboard
from assetwatch.agents.local.demo_fleet import Fleet, FleetOptions
from assetwatch.agents.local.demo_tally import Tally
from assetwatch.agents.local.demo_view import Rates, headless_line, render, status
from assetwatch.agents.local.worker_process import WorkerProcess
from assetwatch.errors import AssetwatchError
from assetwatch.features.profiles import load_profiles
from assetwatch.settings import Settings

DRAIN_TIMEOUT_S = 30.0
WORKER_STOP_S = 15.0
WORKER_START_S = 600.0
"""Longest wait for the worker to be ready; a first run trains its baselines meanwhile."""
DEMO_TRAINING = {"train_assets": 6, "train_hours": 1.5, "train_trees": 25}
"""The demo's first-run baseline: trained in seconds, not minutes; `assetwatch train` and the
worker's own bootstrap keep the full defaults. Settings given explicitly win."""


@dataclass(frozen=True)
class DemoOptions:
    """What ``assetwatch demo`` runs and for how long."""
    duration_s: float | None = None
    headless: bool = False
    fleet: FleetOptions = field(default_factory=FleetOptions)
    dashboard_port: int | None = 8765
    """Loopback port of the web dashboard (0: a free one; None: no dashboard)."""


def demo_settings(base: Settings, bootstrap_servers: str) -> Settings:
    """The demo's worker settings: the embedded broker, a free endpoint port, inline scoring.

    A free port because a worker already holding 9108 must not clash (and the demo waits on its
    /health); inline scoring and the demo's small first-run training keep the first result
    quick.
    """
    update: dict[str, Any] = {k: v for k, v in DEMO_TRAINING.items()
                              if k not in base.model_fields_set}
    update.update(kafka_bootstrap_servers=bootstrap_servers, broker_compat="tansu",
                  metrics_port=free_port())
    if "scoring_process" not in base.model_fields_set:
        # A fleet at 1 Hz needs no helper process, and the helper's spawn-and-stop costs
        # seconds of start and of Ctrl-C on a small machine.
        update["scoring_process"] = False
    return base.model_copy(update=update)


def run_demo(base: Settings, options: DemoOptions) -> dict[str, Any]:
    """Run until the duration ends or Ctrl-C; return the summary."""
    logs = base.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    draining = "stopping the simulators and draining"
    with stop_on_interrupt(stop, draining), start_broker(log_file=logs / "broker.log",
                                                          new_session=True) as broker:
        settings = demo_settings(base, broker.bootstrap_servers)
        ensure_topics(settings)
        # Subscribed first, so its group join (seconds on tansu) is over by the first poll.
        with RecordReader(settings, _outputs(settings)) as reader:
            return _with_worker(settings, options, reader, stop)


def _with_worker(settings: Settings, options: DemoOptions, reader: RecordReader,
                 stop: threading.Event) -> dict[str, Any]:
    """Start the worker, wait until it is ready, run the fleet and the views; stop the worker.

    The worker loads the models itself (and on a first run trains them, as any worker with an
    empty registry does): loading them here first, then again in the worker, cost the
    worker's whole start-up on top of the training.
    """
    profiles = load_profiles(settings.profiles, settings.profiles_dir)
    worker = WorkerProcess(settings, settings.data_dir / "logs" / "worker.log", cwd=Path.cwd(),
                           new_session=True)
    try:
        print(f"starting the worker (a first run trains and registers small baselines, "
              f"seconds; log: {worker.log_path})...", file=sys.stderr, flush=True)
        health = worker.wait_ready(WORKER_START_S, until=stop)
        fleet = Fleet(settings, profiles, options.fleet, stop)
        tally = Tally(live_from_ms=fleet.live_from_ms, versions=_versions(health))
        return _Run(settings, options, fleet, tally, worker, stop).execute(reader)
    finally:
        worker.stop(WORKER_STOP_S)  # then the reader and the broker, as their blocks end


def _outputs(settings: Settings) -> list[str]:
    """The worker's output topics, which the views are made from."""
    return [settings.predictions_topic, settings.dead_letter_topic,
            settings.asset_alerts_topic, settings.drift_topic, settings.operator_alerts_topic]


def _versions(health: dict[str, Any]) -> dict[str, str]:
    """Model name -> version the worker serves, from its /health document."""
    return {m["name"]: m["version"] for m in health.get("models", {}).values()}


class _Run:
    """One demo run: watch while the fleet publishes, then drain and summarise."""

    def __init__(self, settings: Settings, options: DemoOptions, fleet: Fleet, tally: Tally,
                 worker: WorkerProcess, stop: threading.Event) -> None:
        self.settings, self.options, self.fleet, self.tally = settings, options, fleet, tally
        self.worker, self.stop = worker, stop
        self.rates = Rates()
        self.started = time.monotonic()
        self.dashboard = None if options.dashboard_port is None else Dashboard(
            options.dashboard_port, lambda: self.latest, self.asset)
        self.latest: dict[str, Any] = {}

    def execute(self, reader: RecordReader) -> dict[str, Any]:
        url = self.dashboard.start() if self.dashboard else None
        if url:
            print(f"dashboard: {url}", file=sys.stderr, flush=True)
        try:
            self.fleet.start()
            self._watch(reader, url)
            stopping = time.monotonic()
            self.stop.set()
            self.fleet.join(15)
            self._drain(reader)
        finally:
            if self.dashboard:
                self.dashboard.close()
        return self._summary(time.monotonic() - stopping)

    def _watch(self, reader: RecordReader, url: str | None) -> None:
        last_shown = 0.0
        deadline = None if self.options.duration_s is None else (
            self.started + self.options.duration_s)
        while not self.stop.is_set() and (deadline is None or time.monotonic() < deadline):
            self._check()
            self._read(reader, 0.25)
            self.latest = status(self.tally, self.fleet, self.rates, self.started, url)
            if time.monotonic() - last_shown >= 1.0:
                last_shown = time.monotonic()
                text = headless_line(self.latest) if self.options.headless else render(
                    self.latest)
                print(text, file=sys.stderr, flush=True)

    def _check(self) -> None:
        self.worker.check_alive()
        if self.fleet.errors:
            raise AssetwatchError(f"a simulator failed: {self.fleet.errors[0]!r}")

    def _read(self, reader: RecordReader, timeout_s: float) -> None:
        for record in reader.poll(timeout_s):
            self.tally.add(record.kind, record.fields)

    def _drain(self, reader: RecordReader) -> None:
        """Until every delivered reading has its outcome, while worker and broker are up."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while self.tally.scored < self.fleet.delivered and time.monotonic() < deadline:
            self.worker.check_alive()
            self._read(reader, 0.25)
        self._read(reader, 0.5)  # outcomes beyond the count (duplicates) show in the summary

    def asset(self, asset: str) -> dict[str, Any] | None:
        """One asset's charts: scores from the outputs, sensors from what the fleet sent."""
        scores = self.tally.asset_history(asset)
        if scores is None:
            return None
        sensors = self.fleet.sensors(asset)
        kind = asset.split("-", 1)[0]
        return {"asset": asset, "scores": scores,
                "sensor_names": self.fleet.sensor_names.get(kind, []), "sensors": sensors,
                "degrading": self.fleet.degrading().get(asset)}

    def _summary(self, stop_s: float) -> dict[str, Any]:
        produced, t = self.fleet.delivered, self.tally
        return {
            "events_produced": produced, "predictions": t.predictions,
            "dead_letters": t.dead_letters, "lost": produced - t.predictions - t.dead_letters,
            "duplicates": t.duplicates, "undelivered": self.fleet.failed,
            "anomalies": t.anomalies, "asset_alerts": t.asset_alerts_raised,
            "drift_alerts": len(t.drift_alerts), "model_versions": t.versions,
            "seconds": round(time.monotonic() - self.started, 1),
            "drain_seconds": round(stop_s, 1),
        }

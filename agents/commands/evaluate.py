"""``assetwatch evaluate``: backtest labelled files through the real streaming path.

Each file becomes its own asset. By default an embedded tansu broker and one worker
subprocess run on a fresh topic prefix; with ``external`` the configured cluster is used
instead (still a fresh topic prefix and our own worker, so nothing else is disturbed). The
worker loads its model like any worker: registry, local artifact, bootstrap. Every reading
is produced as fast as the broker takes it, with the file's timestamps; predictions and
dead letters are matched back by event id until each reading has an outcome or the deadline
passes. The arithmetic lives in :mod:`assetwatch.models.evaluation`.
"""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from assetwatch.agents.commands.replay import telemetry_records
from assetwatch.agents.kafka.consumer import Record, RecordReader
from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.agents.kafka.topics import ensure_topics
from assetwatch.agents.local.broker import free_port, start_broker
from assetwatch.agents.local.worker_process import WorkerProcess
from assetwatch.errors import ConfigError
from assetwatch.features.profiles import Profile, load_profile
from assetwatch.features.readings import (
    default_asset_id,
    labels,
    read_readings_file,
    sensor_readings,
)
from assetwatch.models.evaluation import (
    SKIP_ROWS,
    Evaluation,
    FileOutcomes,
    evaluate,
    match_outcomes,
)
from assetwatch.settings import Settings

LABEL_COLUMNS = ("anomaly", "label")
"""Tried in order when no label column is named: SKAB's, then the training format's."""
PROGRESS_EVERY_S = 2.0
DRAIN_IDLE_S = 1.0
"""After the last expected outcome, read on until the topics are quiet this long (duplicates)."""


@dataclass(frozen=True)
class EvaluateOptions:
    """What ``assetwatch evaluate`` was asked for: labelled files, profile, plots, deadline."""

    files: tuple[Path, ...]
    asset_type: str = "pump"
    plot_dir: Path | None = None
    skip_rows: int = SKIP_ROWS
    label_column: str | None = None
    external: bool = False
    timeout_s: float = 600.0
    """Deadline for the worker to be ready, and again for every reading to get an outcome."""


@dataclass(frozen=True)
class LabelledFile:
    """One labelled readings file, replayed under its own asset id."""

    path: Path
    asset_id: str
    readings: pd.DataFrame
    """asset_id, timestamp, sensors and 0/1 label, every row of the file."""


@dataclass
class Outputs:
    """What came back, keyed by event id."""

    predictions: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list))
    dead_letters: Counter[str] = field(default_factory=Counter)
    models: set[str] = field(default_factory=set)

    def answered(self) -> int:
        """Event ids that got an outcome: a prediction or a dead letter."""
        return len(self.predictions.keys() | self.dead_letters.keys())


@dataclass(frozen=True)
class EvaluationRun:
    """An evaluation and what it was computed from, for the report and the plots."""

    evaluation: Evaluation
    files: tuple[LabelledFile, ...]
    outcomes: tuple[FileOutcomes, ...]
    outputs: Outputs
    timed_out: bool
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The JSON report: the evaluation with file paths, timing and the models that answered."""
        document = self.evaluation.as_dict()
        for row, labelled in zip(document["files"], self.files, strict=True):
            row["file"] = str(labelled.path)
        return {**document, "timed_out": self.timed_out, "seconds": round(self.seconds, 1),
                "models": sorted(self.outputs.models)}


def load_files(paths: Sequence[Path], profile: Profile, label_column: str | None
               ) -> list[LabelledFile]:
    """Read every file; asset ids follow replay's rule, numbered on a clash."""
    files, seen = [], Counter[str]()
    for path in paths:
        base = default_asset_id(profile.name, path)
        seen[base] += 1
        asset = base if seen[base] == 1 else f"{base}-{seen[base]}"
        raw = read_readings_file(path)
        try:
            frame = sensor_readings(raw, profile, asset).assign(asset_id=asset)
            frame["label"] = labels(raw, label_column or _label_column(raw))
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        files.append(LabelledFile(path, asset, frame))
    return files


def _label_column(frame: pd.DataFrame) -> str:
    found = next((c for c in LABEL_COLUMNS if c in frame.columns), None)
    if found is None:
        raise ConfigError(f"no label column (one of {LABEL_COLUMNS}; name one with "
                          f"--label-column); columns: {list(frame.columns)}")
    return found


@contextlib.contextmanager
def streaming(base: Settings, options: EvaluateOptions, oldest_ms: int
              ) -> Iterator[tuple[Settings, WorkerProcess]]:
    """A broker (embedded unless ``external``), fresh topics and a ready worker.

    A backtest replays history, so this worker alone accepts readings back to ``oldest_ms``
    (a day of margin) instead of the usual ``max_past_age_s``.
    """
    logs = base.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        update: dict[str, Any] = {
            "topic_prefix": f"{base.topic_prefix}-eval-{uuid.uuid4().hex[:8]}",
            "profiles": (options.asset_type,), "metrics_port": free_port(),
            "max_past_age_s": max(base.max_past_age_s, time.time() - oldest_ms / 1000 + 86_400)}
        if not options.external:
            broker = stack.enter_context(start_broker(log_file=logs / "evaluate-broker.log"))
            update |= {"kafka_bootstrap_servers": broker.bootstrap_servers,
                       "broker_compat": "tansu"}
        settings = base.model_copy(update=update)
        ensure_topics(settings)
        _progress(f"starting a worker on {settings.kafka_bootstrap_servers} "
                  f"(log: {logs / 'evaluate-worker.log'})")
        worker = stack.enter_context(WorkerProcess(settings, logs / "evaluate-worker.log"))
        health = worker.wait_ready(options.timeout_s)
        _progress(f"worker ready, serving {health.get('models')}")
        yield settings, worker


def produce(settings: Settings, profile: Profile, files: Sequence[LabelledFile]
            ) -> list[list[str]]:
    """Publish every row of every file unpaced; the event ids of each file in row order."""
    publisher = ReadingPublisher(settings)
    event_ids = []
    for labelled in files:
        records = list(telemetry_records(labelled.readings, profile, labelled.asset_id))
        publish(publisher, records)
        event_ids.append([r["event_id"] for r in records])
    _progress(f"sent {sum(map(len, event_ids))} readings from {len(files)} files")
    return event_ids


def collect(settings: Settings, expected: set[str], worker: WorkerProcess, timeout_s: float
            ) -> tuple[Outputs, bool]:
    """Outputs until every expected reading has one (then until quiet); True on timeout."""
    outputs = Outputs()
    deadline = time.monotonic() + timeout_s
    shown = time.monotonic()
    with RecordReader(settings, [settings.predictions_topic, settings.dead_letter_topic]) as r:
        while outputs.answered() < len(expected):
            if time.monotonic() > deadline:
                return outputs, True
            worker.check_alive()
            _add(outputs, r.poll(0.5), expected)
            if time.monotonic() - shown >= PROGRESS_EVERY_S:
                shown = time.monotonic()
                _progress(f"outcomes for {outputs.answered()} of {len(expected)} readings")
        _add(outputs, list(r.iterate(DRAIN_IDLE_S)), expected)
    return outputs, False


def _add(outputs: Outputs, records: Sequence[Record], expected: set[str]) -> None:
    for record in records:
        event_id = record.fields.get("event_id")
        if event_id not in expected:
            continue  # another run's record, or a dead letter too broken to name its event
        if record.kind == "Prediction":
            outputs.predictions[event_id].append(record.fields)
            outputs.models.add(f"{record.fields['model_name']}@{record.fields['model_version']}")
        elif record.kind == "DeadLetter":
            outputs.dead_letters[event_id] += 1


def run_evaluation(base: Settings, options: EvaluateOptions) -> EvaluationRun:
    """Replay, collect, score; plots too when asked. Timing covers broker to last outcome."""
    started = time.monotonic()
    profile = load_profile(options.asset_type, base.profiles_dir)
    files = load_files(options.files, profile, options.label_column)
    oldest_ms = min(int(f.readings["timestamp"].min()) for f in files)
    with streaming(base, options, oldest_ms) as (settings, worker):
        event_ids = produce(settings, profile, files)
        expected = {e for ids in event_ids for e in ids}
        outputs, timed_out = collect(settings, expected, worker, options.timeout_s)
    outcomes = [match_outcomes(f.asset_id, f.readings["label"].to_numpy(), ids,
                               outputs.predictions, outputs.dead_letters)
                for f, ids in zip(files, event_ids, strict=True)]
    run = EvaluationRun(evaluate(outcomes, options.skip_rows), tuple(files), tuple(outcomes),
                        outputs, timed_out, time.monotonic() - started)
    if options.plot_dir is not None:
        write_plots(run, options.plot_dir, options.skip_rows, profile.baseline.threshold)
    return run


def write_plots(run: EvaluationRun, plot_dir: Path, skip_rows: int,
                threshold: float) -> list[Path]:
    """One PNG per file, named after its asset id.

    The baseline score against ``threshold`` (what decides ``is_anomaly``).
    """
    from assetwatch.models.evaluation_plots import evaluation_png  # matplotlib only if asked

    plot_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for labelled, outcomes in zip(run.files, run.outcomes, strict=True):
        frame = labelled.readings
        seconds = (frame["timestamp"] - frame["timestamp"].iloc[0]).to_numpy() / 1000.0
        sensors = {c: frame[c].to_numpy(dtype=float) for c in frame.columns
                   if c not in ("asset_id", "timestamp", "label")}
        png = evaluation_png(f"{labelled.path} ({labelled.asset_id})", seconds, sensors,
                             outcomes.scores["baseline_score"], outcomes.labels,
                             outcomes.alarms, threshold=threshold, skip_rows=skip_rows)
        path = plot_dir / f"{labelled.asset_id}.png"
        path.write_bytes(png)
        written.append(path)
    _progress(f"wrote {len(written)} plots to {plot_dir}")
    return written


def _progress(message: str) -> None:
    print(f"evaluate: {message}", file=sys.stderr, flush=True)


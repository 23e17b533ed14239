"""Label feedback on a real broker: ``assetwatch feedback`` joins labels to predictions.

Predictions of two model versions are published directly (no worker, no model needed),
labels both directly and through ``assetwatch label``; the service's /performance and
/metrics must show exactly the confusion counts the rules of models/feedback.py give.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from assetwatch.agents.commands.labels import label_record
from assetwatch.agents.kafka.producer import ReadingPublisher
from assetwatch.agents.kafka.topics import ensure_topics
from assetwatch.agents.local.broker import free_port
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings
from tests.integration.conftest import http_get, poll_until, settings_env

pytestmark = pytest.mark.integration

T = 1_700_000_000_000
"""Outcome time of the labels (2023-11-14T22:13:20Z)."""
S = 1000
V1, V2 = "1", "2"
ModelCounts = dict[str, tuple[int, int, int, int, int]]


class Service:
    """``python -m assetwatch <verb>`` in a subprocess, logging to a file."""

    def __init__(self, settings: Settings, log_path: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETWATCH_")}
        env.update(settings_env(settings))
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "assetwatch", *args], env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(f"assetwatch exited with {self.process.returncode}:\n"
                        f"{self.log_path.read_text(errors='replace')[-4000:]}")


@pytest.fixture
def settings(broker: tuple[str, str], tmp_path: Path) -> Settings:
    servers, compat = broker
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": servers, "broker_compat": compat,
        "topic_prefix": f"t{uuid.uuid4().hex[:10]}", "data_dir": tmp_path, "log_level": "INFO",
        "feedback_port": free_port(), "feedback_horizon_s": 60.0, "feedback_threshold": 0.5}
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    ensure_topics(settings)
    return settings


@pytest.fixture
def start(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Service]]:
    services: list[Service] = []

    def run(*args: str, port: int | None = None) -> Service:
        env_settings = settings.model_copy(update={"feedback_port": port or
                                                   settings.feedback_port})
        service = Service(env_settings, tmp_path / f"{args[0]}-{len(services)}.log", *args)
        services.append(service)
        return service

    yield run
    for service in services:
        service.stop()


def _wait(check: Callable[[], Any], what: str, service: Service) -> Any:
    return poll_until(check, what, service.alive, timeout_s=60.0)


def _performance(port: int) -> dict[str, Any]:
    status, body = http_get(f"http://127.0.0.1:{port}/performance")
    assert status == 200, body
    document: dict[str, Any] = json.loads(body)
    return document


def _counts(document: dict[str, Any]) -> ModelCounts:
    return {m["model_version"]: (m["tp"], m["fp"], m["fn"], m["tn"], m["labels"])
            for m in document["models"]}


def _totals_reach(port: int, **expected: int) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        document = _performance(port)
        totals = document["totals"]
        return document if all(totals[k] == v for k, v in expected.items()) else None
    return check


def _prediction(asset: str, offset_s: float, probability: float, version: str,
                anomaly: bool = False) -> dict[str, Any]:
    at = T + round(offset_s * S)
    return {"asset_id": asset, "asset_type": "cnc", "event_id": f"{asset}-{at}",
            "event_timestamp": at, "processed_timestamp": at + 40, "anomaly_score": 0.0,
            "is_anomaly": anomaly, "failure_probability": probability,
            "model_name": "assetwatch-cnc", "model_version": version, "top_features": [],
            "calibrating": False, "baseline_score": 0.0}


class Publisher:
    """Predictions and labels, keyed by asset id like the worker's."""

    def __init__(self, settings: Settings) -> None:
        self.predictions = ReadingPublisher(settings, settings.predictions_topic)
        self.labels = ReadingPublisher(settings, settings.labels_topic)

    def predict(self, *records: dict[str, Any]) -> None:
        for record in records:
            self.predictions.send_raw(record["asset_id"].encode(),
                                      codec("Prediction").encode(record))
        self.predictions.flush()

    def label(self, asset: str, failure: bool, offset_s: float = 0.0) -> None:
        record = label_record(asset, failure, T + round(offset_s * S))
        self.labels.send_raw(asset.encode(), codec("MaintenanceLabel").encode(record))
        self.labels.flush()


# Horizon 60 s, threshold 0.5. Asset a: predictions first, then a failure label at T.
A_PREDICTIONS = [
    _prediction("a", -120, 0.9, V1),               # before the horizon: never judged
    _prediction("a", -50, 0.9, V1),                # tp
    _prediction("a", -40, 0.2, V1),                # fn
    _prediction("a", -30, 0.1, V1, anomaly=True),  # tp (flagged as an anomaly)
    _prediction("a", -20, 0.8, V2),                # tp
    _prediction("a", -10, 0.3, V2),                # fn
    _prediction("a", 5, 0.9, V2),                  # after the outcome: not judged
]
# Asset b: a no-failure label first, then its (late) predictions.
B_PREDICTIONS = [
    _prediction("b", -15, 0.7, V1),  # fp
    _prediction("b", -5, 0.1, V2),   # tn
    _prediction("b", -3, 0.6, V2),   # fp
]
# Asset c: a failure label sent twice through the CLI (the repeat is ignored).
C_PREDICTIONS = [_prediction("c", -1, 0.95, V2)]  # tp
EXPECTED: ModelCounts = {V1: (2, 1, 1, 0, 2), V2: (2, 1, 1, 1, 3)}
"""(tp, fp, fn, tn, labels) per version: v1 judged by a's and b's labels, v2 by all three."""


def test_feedback_joins_labels_to_predictions_per_model_version(
    settings: Settings, start: Callable[..., Service]
) -> None:
    port = settings.feedback_port
    service = start("feedback")
    _wait(lambda: http_get(f"http://127.0.0.1:{port}/health")[0] == 200, "/health", service)
    publish = Publisher(settings)

    publish.predict(*A_PREDICTIONS, A_PREDICTIONS[1])  # and one duplicate
    publish.label("b", failure=False)
    _wait(_totals_reach(port, predictions=7, labels=1, duplicates=1), "a's predictions and "
          "b's label taken", service)
    assert _counts(_performance(port)) == {}  # b's label has nothing to judge yet

    publish.label("a", failure=True)
    publish.predict(*B_PREDICTIONS, *C_PREDICTIONS)
    for _ in range(2):
        label = start("label", "--asset", "c", "--failure", "--at", "2023-11-14T22:13:20Z",
                      "--note", "bearing seized")
        assert label.process.wait(60) == 0, label.log_path.read_text()
    document = _wait(_totals_reach(port, predictions=11, labels=3, duplicates=2),
                     "every record taken", service)

    assert _counts(document) == EXPECTED
    v1, v2 = document["models"]
    assert (v1["precision"], v1["recall"], v1["f1"]) == (0.666667, 0.666667, 0.666667)
    assert (v2["precision"], v2["recall"], v2["f1"]) == (0.666667, 0.666667, 0.666667)
    assert document["caught_up"] is True
    assert document["totals"] == {"predictions": 11, "labels": 3, "duplicates": 2,
                                  "expired": 0, "undecodable": 0}
    _assert_metrics(port)

    # A new replica re-reads both topics from the beginning, in whatever interleaving the
    # broker serves them: the same counts.
    replica_port = free_port()
    replica = start("feedback", port=replica_port)
    replayed = _wait(_totals_reach(replica_port, predictions=11, labels=3, duplicates=2),
                     "the replica to replay the history", replica)
    assert _counts(replayed) == EXPECTED


def _assert_metrics(port: int) -> None:
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    judged = {(dict(labels)["model_version"], dict(labels)["outcome"]): value
              for (name, labels), value in samples.items()
              if name == "assetwatch_feedback_predictions_total"}
    cells = ("tp", "fp", "fn", "tn")
    assert judged == {(version, cell): counts[i] for version, counts in EXPECTED.items()
                      for i, cell in enumerate(cells)}
    assert samples[("assetwatch_feedback_labels_total", ())] == 3
    for version in (V1, V2):
        key = (("model_name", "assetwatch-cnc"), ("model_version", version))
        assert samples[("assetwatch_model_precision", key)] == pytest.approx(2 / 3)
        assert samples[("assetwatch_model_recall", key)] == pytest.approx(2 / 3)

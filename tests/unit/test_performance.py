"""The feedback service's view and HTTP answers without a broker; label records and times."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from assetwatch.agents.commands.labels import label_record, parse_event_time
from assetwatch.agents.endpoint import MonitoringServer
from assetwatch.agents.feedback.performance import FeedbackCollector, FeedbackConfig, FeedbackView
from assetwatch.errors import ConfigError
from assetwatch.schemas.codecs import codec

T = 1_700_000_000_000


def _prediction(asset: str, at_ms: int, probability: float, version: str) -> bytes:
    return codec("Prediction").encode({
        "asset_id": asset, "asset_type": "cnc", "event_id": f"{asset}-{at_ms}",
        "event_timestamp": at_ms, "processed_timestamp": at_ms + 5, "anomaly_score": -0.1,
        "is_anomaly": False, "failure_probability": probability,
        "model_name": "assetwatch-cnc", "model_version": version, "top_features": [],
        "calibrating": False, "baseline_score": 0.0,
    })


def _label(asset: str, at_ms: int, failure: bool) -> bytes:
    return codec("MaintenanceLabel").encode(label_record(asset, failure, at_ms))


@pytest.fixture
def view() -> FeedbackView:
    view = FeedbackView(FeedbackConfig(horizon_s=60.0, threshold=0.5, buffer=100))
    for at, probability, version in [(T - 30_000, 0.9, "1"), (T - 20_000, 0.1, "1"),
                                     (T - 10_000, 0.7, "2"), (T - 90_000, 0.9, "2")]:
        view.take("prediction", _prediction("cnc-1", at, probability, version))
    view.take("label", _label("cnc-1", T, True))
    view.take("label", b"not a label")
    view.take("prediction", None)
    return view


@pytest.fixture
def endpoint(view: FeedbackView) -> Iterator[str]:
    registry = CollectorRegistry()
    registry.register(FeedbackCollector(view))
    server = MonitoringServer(0, registry, view, host="127.0.0.1",
                              routes={"/performance": view.performance})
    yield f"http://127.0.0.1:{server.start()}"
    server.close()


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_performance_reports_counts_and_ratios_per_version(endpoint: str) -> None:
    status, body = _get(f"{endpoint}/performance")

    assert status == 200
    document = json.loads(body)
    assert document["models"] == [
        {"model_name": "assetwatch-cnc", "model_version": "1", "tp": 1, "fp": 0, "fn": 1,
         "tn": 0, "labels": 1, "precision": 1.0, "recall": 0.5, "f1": 0.666667},
        {"model_name": "assetwatch-cnc", "model_version": "2", "tp": 1, "fp": 0, "fn": 0,
         "tn": 0, "labels": 1, "precision": 1.0, "recall": 1.0, "f1": 1.0},
    ]
    assert document["totals"] == {"predictions": 4, "labels": 1, "duplicates": 0,
                                  "expired": 0, "undecodable": 2}
    assert (document["horizon_s"], document["threshold"]) == (60.0, 0.5)


def test_metrics_export_the_confusion_and_ratios(endpoint: str) -> None:
    status, text = _get(f"{endpoint}/metrics")

    assert status == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    v1 = (("model_name", "assetwatch-cnc"), ("model_version", "1"))
    assert samples[("assetwatch_feedback_labels_total", ())] == 1
    assert samples[("assetwatch_feedback_predictions_total", (*v1, ("outcome", "tp")))] == 1
    assert samples[("assetwatch_feedback_predictions_total", (*v1, ("outcome", "fn")))] == 1
    assert samples[("assetwatch_feedback_predictions_total", (*v1, ("outcome", "fp")))] == 0
    assert samples[("assetwatch_model_precision", v1)] == 1.0
    assert samples[("assetwatch_model_recall", v1)] == 0.5
    assert samples[("assetwatch_feedback_skipped_total", (("reason", "undecodable"),))] == 2


def test_ratios_without_a_defined_value_have_no_series() -> None:
    view = FeedbackView(FeedbackConfig(horizon_s=60.0, threshold=0.5, buffer=100))
    view.take("prediction", _prediction("a", T - 1, 0.1, "1"))
    view.take("label", _label("a", T, False))  # one tn: precision and recall undefined
    registry = CollectorRegistry()
    registry.register(FeedbackCollector(view))

    names = {f.name for f in registry.collect() for _ in f.samples}

    assert "assetwatch_feedback_predictions" in names
    assert not names & {"assetwatch_model_precision", "assetwatch_model_recall",
                        "assetwatch_model_f1"}


def test_ready_once_every_partition_was_read_to_its_end(endpoint: str,
                                                        view: FeedbackView) -> None:
    assert _get(f"{endpoint}/health")[0] == 503
    view.assigned([("p", 0), ("l", 0)])
    view.reached_end("p", 0)
    status, body = _get(f"{endpoint}/health")
    assert status == 503 and json.loads(body)["reasons"] == [
        "1 partitions not read to their end yet"]

    view.reached_end("l", 0)

    assert _get(f"{endpoint}/health")[0] == 200
    assert json.loads(_get(f"{endpoint}/performance")[1])["caught_up"] is True
    assert _get(f"{endpoint}/live")[0] == 200
    assert "/performance" in json.loads(_get(f"{endpoint}/nothing")[1])["paths"]


def test_label_record_defaults() -> None:
    assert label_record("cnc-1", True, T) == {"label_id": f"cnc-1-{T}", "asset_id": "cnc-1",
                                             "event_timestamp": T, "failure": True,
                                             "note": None}


@pytest.mark.parametrize(
    ("text", "ms"),
    [(None, 1_234_000), ("1700000000123", 1_700_000_000_123),
     ("2023-11-14T22:13:20", T), ("2023-11-14T22:13:20.5Z", T + 500)])
def test_event_times(text: str | None, ms: int) -> None:
    assert parse_event_time(text, now=lambda: 1234.0) == ms


def test_a_bad_event_time_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_event_time("yesterday")

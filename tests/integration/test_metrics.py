"""The worker's /metrics and /health on a real broker: figures equal what was sent."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from assetwatch.agents.commands.simulate import SimulationPlan, simulated_readings
from assetwatch.agents.kafka.producer import ReadingPublisher
from assetwatch.agents.local.broker import free_port
from assetwatch.features.profiles import load_profile
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings
from tests.integration.conftest import WorkerProcess, collect, http_get, poll_until

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

GARBAGE = b"\x00\x01 not a reading"
BAD_JSON = b'{"asset_id": "cnc-001", "timestamp": "yesterday"}'
POISON_REASONS = {"undecodable": 3, "schema_mismatch": 2, "unknown_asset_type": 1}


def _scrape(base: str) -> Samples:
    status, text = http_get(f"{base}/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _wait(check: Callable[[], Any], what: str, worker: WorkerProcess) -> Any:
    return poll_until(check, what, worker.alive, timeout_s=90.0)


def _poison(publisher: ReadingPublisher) -> None:
    press = {"event_id": "press-01-1", "asset_id": "press-01", "asset_type": "press",
             "timestamp": int(time.time() * 1000), "sensors": {"force": 1.0}}
    for _ in range(3):
        publisher.send_raw(b"cnc-000", GARBAGE)
    for _ in range(2):
        publisher.send_raw(b"cnc-001", BAD_JSON)
    publisher.send_raw(b"press-01", codec("TelemetryReading").encode(press))


def test_metrics_and_health_account_for_every_reading(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
    registered_models: dict[str, str],
    tmp_path: Path,
) -> None:
    settings = make_settings(profiles=("cnc",), metrics_port=free_port())
    base = f"http://127.0.0.1:{settings.metrics_port}"
    plan = SimulationPlan(assets=12, count=600, rate=1e9, seed=21)
    readings = list(simulated_readings(load_profile("cnc"), plan, threading.Event(), time.time))
    sent = len(readings) + sum(POISON_REASONS.values())
    worker = start_worker(settings)
    _wait(lambda: http_get(f"{base}/live")[0] == 200, "/live", worker)
    _wait(lambda: http_get(f"{base}/health")[0] == 200, "/health to say ready", worker)

    publisher = ReadingPublisher(settings)
    for reading in readings:
        publisher.send(reading)
    _poison(publisher)
    publisher.flush()
    records = collect(settings, [settings.predictions_topic, settings.dead_letter_topic],
                      lambda rs: len(rs) >= sent, workers=(worker,))

    def settled() -> Samples | None:
        samples = _scrape(base)
        consumed = samples.get(("assetwatch_readings_consumed_total", ()))
        return samples if consumed == sent else None

    samples = _wait(settled, f"{sent} readings consumed in /metrics", worker)
    predictions = [r.fields for r in records if r.kind == "Prediction"]
    anomalies = sum(p["is_anomaly"] for p in predictions)
    latency = "assetwatch_prediction_latency_seconds"
    version = registered_models["cnc"]
    expected = {
        ("assetwatch_predictions_total", ()): len(readings),
        ("assetwatch_anomalies_total", ()): anomalies,
        ("assetwatch_outcomes_total", (("outcome", "prediction"),)): len(readings),
        ("assetwatch_outcomes_total", (("outcome", "dead_letter"),)): 6,
        ("assetwatch_outcomes_total", (("outcome", "skipped_replay"),)): 0,
        **{("assetwatch_dead_letters_total", (("reason", reason),)): count
           for reason, count in POISON_REASONS.items()},
        (f"{latency}_count", ()): len(readings),
        (f"{latency}_bucket", (("le", "+Inf"),)): len(readings),
        ("assetwatch_failure_probability_count", ()): len(readings),
        ("assetwatch_batch_size_sum", ()): sent,
        ("assetwatch_model_info", (("model_name", settings.model_name("cnc")), ("profile", "cnc"),
                                   ("version", version))): 1,
    }
    assert {key: samples.get(key) for key in expected} == expected
    assert {k for k in samples if k[0] == "assetwatch_dead_letters_total"} == {
        ("assetwatch_dead_letters_total", (("reason", r),)) for r in POISON_REASONS}
    assert samples[("assetwatch_batch_processing_seconds_count", ())] == samples[
        ("assetwatch_batch_size_count", ())]
    assert samples[("assetwatch_failure_probability_sum", ())] == pytest.approx(
        sum(p["failure_probability"] for p in predictions), rel=1e-9)

    status, body = http_get(f"{base}/health")
    health = json.loads(body)
    assert status == 200, health
    assert health["status"] == "ready" and health["broker"]["state"] == "connected"
    assert health["partitions"] == list(range(settings.partitions))
    assert health["models"] == {"cnc": {"name": settings.model_name("cnc"), "version": version}}
    assert health["totals"] == {"readings": sent, "predictions": len(readings),
                                "dead_letters": 6, "anomalies": anomalies, "skipped_replays": 0}
    average = sum(p["failure_probability"] for p in predictions) / len(predictions)
    assert health["average_failure_probability"] == pytest.approx(average, abs=1e-6)

    # Faust commits every few seconds: then every partition that took readings shows no lag.
    fed = {r.partition for r in records if r.kind == "Prediction"}

    def caught_up() -> bool:
        lag = {int(dict(labels)["partition"]): value for (name, labels), value
               in _scrape(base).items() if name == "assetwatch_consumer_lag"}
        return fed <= lag.keys() and sum(lag.values()) == 0

    _wait(caught_up, "consumer lag 0 on every fed partition", worker)
    (tmp_path / "metrics.txt").write_text(http_get(f"{base}/metrics")[1])  # for a reader
    (tmp_path / "health.json").write_text(http_get(f"{base}/health")[1])

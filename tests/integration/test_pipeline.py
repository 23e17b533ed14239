"""The main path on a real broker and a real MLflow registry: readings in, predictions out."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from assetwatch.agents.commands.simulate import SimulationPlan, simulated_readings
from assetwatch.agents.kafka.consumer import Record
from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.features.offline import compute_baseline, compute_features
from assetwatch.features.profiles import load_profile
from assetwatch.settings import Settings
from tests.integration.conftest import WorkerProcess, champion, collect

pytestmark = pytest.mark.integration


def _readings(profile: str, plan: SimulationPlan) -> list[dict[str, Any]]:
    return list(simulated_readings(load_profile(profile), plan, threading.Event(), time.time))


def _send(settings: Settings, readings: list[dict[str, Any]]) -> None:
    assert publish(ReadingPublisher(settings), readings) == len(readings)


def _predictions(records: list[Record]) -> list[dict[str, Any]]:
    return [r.fields for r in records if r.kind == "Prediction"]


def test_every_reading_yields_one_prediction_with_model_version(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
    registered_models: dict[str, str],
) -> None:
    settings = make_settings()
    readings = _readings("cnc", SimulationPlan(assets=30, count=3000, rate=1e9, seed=3))
    readings += _readings("pump", SimulationPlan(assets=5, count=500, rate=1e9, seed=4))
    worker = start_worker(settings)
    _send(settings, readings)

    records = collect(settings, [settings.predictions_topic, settings.dead_letter_topic],
                      lambda rs: len(rs) >= len(readings), workers=(worker,))

    assert [r.kind for r in records if r.kind != "Prediction"] == []
    by_event = Counter(p["event_id"] for p in _predictions(records))
    assert set(by_event) == {r["event_id"] for r in readings}
    assert max(by_event.values()) == 1
    versions = {(p["model_name"], p["model_version"]) for p in _predictions(records)}
    assert versions == {(settings.model_name(name), version)
                        for name, version in registered_models.items()}


def test_injected_failing_asset_is_flagged(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    settings = make_settings(profiles=("cnc",))
    plan = SimulationPlan(assets=10, count=10 * 600, rate=1e9, failing=2, ramp_s=600, seed=5)
    readings = _readings("cnc", plan)
    worker = start_worker(settings)
    _send(settings, readings)

    records = collect(settings, [settings.predictions_topic],
                      lambda rs: len(rs) >= len(readings), workers=(worker,))

    frame = pd.DataFrame(_predictions(records))
    late_ramp = frame["event_timestamp"] >= frame["event_timestamp"].quantile(0.8)
    failing = frame["asset_id"].isin(["cnc-000", "cnc-001"])
    flagged = (frame["is_anomaly"] | (frame["failure_probability"] >= 0.5))
    failing_rate = flagged[failing & late_ramp].mean()
    healthy_rate = flagged[~failing & late_ramp].mean()
    assert failing_rate > 0.8, (failing_rate, healthy_rate)
    assert healthy_rate < 0.2, (failing_rate, healthy_rate)


def test_restarted_worker_recovers_feature_state_exactly(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    """Scores after a restart equal those of an uninterrupted offline run on all readings."""
    settings = make_settings(profiles=("cnc",))
    readings = _readings("cnc", SimulationPlan(assets=12, count=12 * 400, rate=1e9, seed=9))
    half = len(readings) // 2
    topics = [settings.predictions_topic, settings.dead_letter_topic]

    first = start_worker(settings)
    _send(settings, readings[:half])
    collect(settings, topics, lambda rs: len(rs) >= half, workers=(first,))
    assert first.stop() == 0

    second = start_worker(settings)
    _send(settings, readings[half:])
    records = collect(settings, topics, lambda rs: len(rs) >= len(readings), workers=(second,))
    assert "Restore complete" in second.log_text()

    predictions = {p["event_id"]: p for p in _predictions(records)}
    assert len(predictions) == len(readings)
    profile = load_profile("cnc")
    frame = pd.DataFrame([{"asset_id": r["asset_id"], "timestamp": r["timestamp"],
                           **r["sensors"]} for r in readings])
    expected_features = compute_features(frame, profile).to_numpy()
    model = champion(settings, "cnc")
    assert model is not None
    expected = model.bundle.score(expected_features)
    after = range(half, len(readings))
    got = np.array([predictions[readings[i]["event_id"]]["anomaly_score"] for i in after])
    got_failure = np.array(
        [predictions[readings[i]["event_id"]]["failure_probability"] for i in after])
    np.testing.assert_allclose(got, expected.anomaly_score[half:], rtol=1e-9, atol=0)
    np.testing.assert_allclose(got_failure, expected.failure_probability[half:], rtol=1e-9,
                               atol=1e-12)


def test_restarted_worker_resumes_each_assets_baseline_exactly(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    """Stopped mid-calibration, a new worker judges every reading as an uninterrupted run does.

    The uninterrupted run is offline; the baseline totals come back with the changelogged state.
    """
    settings = make_settings(profiles=("pump",))
    profile = load_profile("pump")
    plan = SimulationPlan(assets=4, count=4 * 800, rate=1e9, failing=1, failing_from_s=500,
                          ramp_s=300, seed=11)
    readings = _readings("pump", plan)
    cut = 4 * 300  # every asset is 300 readings into its 400-reading calibration
    topics = [settings.predictions_topic, settings.dead_letter_topic]

    first = start_worker(settings)
    _send(settings, readings[:cut])
    collect(settings, topics, lambda rs: len(rs) >= cut, workers=(first,))
    assert first.stop() == 0
    second = start_worker(settings)
    _send(settings, readings[cut:])
    records = collect(settings, topics, lambda rs: len(rs) >= len(readings), workers=(second,))

    predictions = {p["event_id"]: p for p in _predictions(records)}
    assert len(predictions) == len(readings)
    frame = pd.DataFrame([{"asset_id": r["asset_id"], "timestamp": r["timestamp"],
                           **r["sensors"]} for r in readings])
    expected = compute_baseline(frame, profile)
    got = pd.DataFrame([predictions[r["event_id"]] for r in readings])
    assert got["calibrating"].tolist() == expected["calibrating"].tolist()
    np.testing.assert_array_equal(got["baseline_score"], expected["baseline_score"])
    judged = got[~got["calibrating"]]
    assert (judged["is_anomaly"] == (judged["baseline_score"] > profile.baseline.threshold)).all()
    late = judged.groupby("asset_id").tail(100).groupby("asset_id")["is_anomaly"].mean()
    assert late["pump-000"] > 0.9 and (late.drop("pump-000") < 0.05).all(), late

"""The demo's counters: rates that do not alias with the 1 Hz tick, alerts and states."""

from __future__ import annotations

from typing import Any

from assetwatch.agents.local.demo_tally import Tally
from assetwatch.agents.local.demo_view import Rates


def _prediction(event_id: str, asset: str = "cnc-000", calibrating: bool = False,
                p: float = 0.1) -> dict[str, Any]:
    return {"event_id": event_id, "asset_id": asset, "asset_type": "cnc",
            "event_timestamp": 1_000, "processed_timestamp": 1_050, "anomaly_score": 0.2,
            "is_anomaly": False, "failure_probability": p, "model_name": "assetwatch-cnc",
            "model_version": "3", "calibrating": calibrating, "baseline_score": 0.0}


def test_rates_over_bursty_ticks_stay_steady() -> None:
    rates, sent, seen = Rates(window_s=10.0), 0, []
    for step in range(80):  # samples every 0.25 s; 220 readings arrive in a burst each second
        at = step * 0.25
        sent += 220 if step % 4 == 0 else 0
        rates.add(at, sent, sent)
        if at >= 11:
            seen.append(rates.per_second()[1])
    assert min(seen) > 190 and max(seen) < 250  # one-second rates swung 0 / 220 / 440


def test_a_reading_predicted_twice_counts_once() -> None:
    tally = Tally()
    for event in ("a", "b", "a"):
        tally.add("Prediction", _prediction(event))
    assert (tally.predictions, tally.duplicates) == (2, 1)
    assert tally.snapshot()["latency_ms"] == {"p50": 50, "p95": 50, "max": 50}


def test_states_follow_calibration_and_asset_alerts() -> None:
    tally = Tally()
    tally.add("Prediction", _prediction("a", "cnc-000", calibrating=True))
    tally.add("Prediction", _prediction("b", "cnc-001", p=0.9))
    alert = {"alert_id": "x", "kind": "FAILURE_RISK", "state": "RAISED", "severity": "WARNING",
             "asset_id": "cnc-001", "failure_probability": 0.9, "contributing_features": [],
             "event_timestamp": 1_000}
    tally.add("AssetAlert", alert)
    snapshot = tally.snapshot()
    assert snapshot["states"] == {"calibrating": 1, "alert": 1}
    tally.add("AssetAlert", {**alert, "state": "RECOVERED"})
    assert tally.snapshot()["assets"]["cnc-001"]["state"] == "normal"
    assert tally.asset_alerts_raised == 1


def test_drift_and_model_swaps_are_tracked() -> None:
    tally = Tally()
    drift = {"state": "RAISED", "model_name": "m", "model_version": "1", "feature": "f",
             "divergence": 0.3, "threshold": 0.2, "window_end": 0}
    tally.add("DriftAlert", drift)
    assert tally.snapshot()["drift_raised"] == ["m f"]
    tally.add("DriftAlert", {**drift, "state": "CLEARED", "threshold": 0.1})
    tally.add("OperatorAlert", {"kind": "MODEL_SWAPPED", "model_name": "m", "version": "2",
                                "serving_version": "2", "reason": "promoted",
                                "issued_timestamp": 0})
    snapshot = tally.snapshot()
    assert snapshot["drift_raised"] == [] and len(snapshot["drift_alerts"]) == 2
    assert snapshot["model_versions"] == {"m": "2"}

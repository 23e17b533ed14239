"""What the demo has seen on its output topics, for the terminal view and the dashboard.

One :class:`Tally` is fed by the demo's reader thread and read by the view and the dashboard's
HTTP threads, so every read goes through :meth:`Tally.snapshot` under one lock: the figures of
one snapshot belong to the same moment (the issue's "predictions above readings sent" came
from figures sampled at different moments).
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

HISTORY = 900
"""Points of score history kept per asset (15 minutes at 1 Hz)."""
RECENT = 30
"""Alerts of each kind kept for the views."""
LATENCIES = 2000


@dataclass
class AssetView:
    """The latest of one asset, and its score history for the charts."""

    asset_type: str
    risk: float = 0.0
    calibrating: bool = True
    anomaly: bool = False
    alert: str | None = None
    """Kind of the asset alert raised and not yet recovered."""
    scores: deque[tuple[int, float, float, float]] = field(
        default_factory=lambda: deque(maxlen=HISTORY))
    """(event ms, failure probability, anomaly score, baseline score)."""

    def state(self) -> str:
        """``alert``, ``calibrating`` or ``normal``, as the fleet view shows it."""
        if self.alert is not None:
            return "alert"
        return "calibrating" if self.calibrating else "normal"


@dataclass
class Tally:
    """Counts and latest state per output record; thread-safe through ``lock``."""

    live_from_ms: int = 0
    """Readings stamped before this are backfilled history: no latency figure for them."""
    predictions: int = 0
    """Distinct readings predicted (a reading predicted twice counts once, in ``duplicates``)."""
    duplicates: int = 0
    anomalies: int = 0
    dead_letters: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    versions: dict[str, str] = field(default_factory=dict)
    assets: dict[str, AssetView] = field(default_factory=dict)
    asset_alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))
    asset_alerts_raised: int = 0
    drift_alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))
    drift_raised: set[tuple[str, str]] = field(default_factory=set)
    operator_alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))
    latencies_ms: deque[int] = field(default_factory=lambda: deque(maxlen=LATENCIES))
    lock: threading.Lock = field(default_factory=threading.Lock)
    _seen: set[str] = field(default_factory=set)

    @property
    def scored(self) -> int:
        """Readings with an outcome: a prediction or a dead letter."""
        return self.predictions + self.dead_letters

    def add(self, kind: str, fields: dict[str, Any]) -> None:
        """Count one decoded output record of ``kind``."""
        with self.lock:
            handler = _HANDLERS.get(kind)
            if handler is not None:
                handler(self, fields)

    def _prediction(self, f: dict[str, Any]) -> None:
        if f["event_id"] in self._seen:
            self.duplicates += 1
            return
        self._seen.add(f["event_id"])
        self.predictions += 1
        self.anomalies += f["is_anomaly"]
        self.versions[f["model_name"]] = f["model_version"]
        view = self.assets.get(f["asset_id"]) or self.assets.setdefault(
            f["asset_id"], AssetView(f["asset_type"]))
        view.risk, view.calibrating = f["failure_probability"], f["calibrating"]
        view.anomaly = f["is_anomaly"]
        view.scores.append((f["event_timestamp"], f["failure_probability"], f["anomaly_score"],
                            f["baseline_score"]))
        if f["event_timestamp"] >= self.live_from_ms:
            self.latencies_ms.append(f["processed_timestamp"] - f["event_timestamp"])

    def _dead_letter(self, f: dict[str, Any]) -> None:
        self.dead_letters += 1
        self.reasons[f["reason"]] += 1

    def _asset_alert(self, f: dict[str, Any]) -> None:
        self.asset_alerts.appendleft(_brief(f, "alert_id", "kind", "state", "severity",
                                            "asset_id", "failure_probability",
                                            "contributing_features", "event_timestamp"))
        view = self.assets.get(f["asset_id"])
        raised = f["state"] == "RAISED"
        self.asset_alerts_raised += raised
        if view is not None:
            view.alert = f["kind"] if raised else None

    def _drift_alert(self, f: dict[str, Any]) -> None:
        self.drift_alerts.appendleft(_brief(f, "state", "model_name", "model_version", "feature",
                                            "divergence", "threshold", "window_end"))
        key = (f["model_name"], f["feature"])
        if f["state"] == "RAISED":
            self.drift_raised.add(key)
        else:
            self.drift_raised.discard(key)

    def _operator_alert(self, f: dict[str, Any]) -> None:
        self.operator_alerts.appendleft(_brief(f, "kind", "model_name", "version",
                                               "serving_version", "reason", "issued_timestamp"))
        if f["kind"] == "MODEL_SWAPPED":
            self.versions[f["model_name"]] = f["version"]

    def snapshot(self) -> dict[str, Any]:
        """Every figure of the views, taken at one moment (JSON-ready)."""
        with self.lock:
            states = Counter(view.state() for view in self.assets.values())
            return {
                "predictions": self.predictions, "duplicates": self.duplicates,
                "anomalies": self.anomalies,
                "dead_letters": self.dead_letters, "scored": self.scored,
                "dead_letter_reasons": dict(self.reasons), "model_versions": dict(self.versions),
                "states": dict(states),
                "assets": {asset: {"type": v.asset_type, "risk": round(v.risk, 4),
                                   "state": v.state(), "anomaly": v.anomaly}
                           for asset, v in self.assets.items()},
                "asset_alerts_raised": self.asset_alerts_raised,
                "asset_alerts": list(self.asset_alerts),
                "drift_alerts": list(self.drift_alerts),
                "drift_raised": sorted(f"{m} {c}" for m, c in self.drift_raised),
                "operator_alerts": list(self.operator_alerts),
                "latency_ms": _percentiles(self.latencies_ms),
            }

    def asset_history(self, asset: str) -> list[tuple[int, float, float, float]] | None:
        """The asset's recent scores for its charts, or None if unknown."""
        with self.lock:
            view = self.assets.get(asset)
            return None if view is None else list(view.scores)


def _brief(fields: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: fields.get(name) for name in names}


def _percentiles(values: deque[int]) -> dict[str, int] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"p50": ordered[len(ordered) // 2], "p95": ordered[int(len(ordered) * 0.95)],
            "max": ordered[-1]}


_HANDLERS = {
    "Prediction": Tally._prediction, "DeadLetter": Tally._dead_letter,
    "AssetAlert": Tally._asset_alert, "DriftAlert": Tally._drift_alert,
    "OperatorAlert": Tally._operator_alert,
}

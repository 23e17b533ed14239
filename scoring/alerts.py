"""``AssetAlert`` records for subscribers (no I/O: they are published with the batch).

Failure-risk alerts follow :class:`models.alerts.AssetAlertTracker` (k of the last n readings
flagged, a cool-down, a RECOVERED record). The tracker lives in the process that scores, so
an asset's last n readings start afresh after a restart or when its partition moves to
another worker. Silent sensors are watched by the worker itself (:mod:`agents.worker.silence`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from assetwatch.models.alerts import AlertConfig, AssetAlertTracker
from assetwatch.models.bundle import ScoringModel
from assetwatch.schemas.codecs import codec
from assetwatch.scoring.predictions import PredictionRows
from assetwatch.settings import Settings


def asset_alert_record(kind: str, state: str, severity: str, asset_id: str, asset_type: str,
                       event_ms: int, issued_ms: int, **details: Any) -> dict[str, Any]:
    """An AssetAlert record; ``details`` fills flagged/window/probability/features/model."""
    return {
        "alert_id": f"{asset_id}-{kind}-{state}-{event_ms}", "kind": kind, "state": state,
        "severity": severity, "asset_id": asset_id, "asset_type": asset_type,
        "flagged": 0, "window": 0, "failure_probability": 0.0, "contributing_features": [],
        "model_name": None, "model_version": None, **details,
        "event_timestamp": event_ms, "issued_timestamp": issued_ms,
    }


class AssetAlerts:
    """Turns each prediction into a failure-risk alert transition, encoded, or None."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._window = settings.alert_n
        self._tracker = AssetAlertTracker(AlertConfig(
            k=settings.alert_k, n=settings.alert_n, threshold=settings.alert_failure_threshold,
            cooldown_s=settings.alert_cooldown_s))
        self._clock = clock
        self._codec = codec("AssetAlert")

    def observe(self, rows: PredictionRows, i: int, model: ScoringModel) -> bytes | None:
        """The encoded AssetAlert prediction ``i`` of ``rows`` raises or recovers, or None."""
        ids, tracker = rows.ids, self._tracker
        asset, event_ms = ids.asset_ids[i], ids.event_ms[i]
        anomaly, probability = rows.is_anomaly[i], rows.failure_probability[i]
        transition = tracker.observe(asset, event_ms, anomaly, probability,
                                     rows.top_names(i) if tracker.flags(anomaly, probability)
                                     else ())
        if transition is None:
            return None
        return self._codec.encode(asset_alert_record(
            "FAILURE_RISK", transition.state, transition.severity, asset, ids.asset_type,
            event_ms,
            int(self._clock() * 1000), flagged=transition.flagged, window=self._window,
            failure_probability=transition.failure_probability,
            contributing_features=list(transition.contributing),
            model_name=model.name, model_version=model.version))

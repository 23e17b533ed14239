"""Drift alerts of the served models, as ``DriftAlert`` records.

No I/O: the publisher sends them with the batch's other outputs.

One :class:`models.drift.ModelDrift` per profile, started afresh whenever the served model
changes (a new version has its own training reference). It lives in the process that scores
(the scoring helper by default), so its window starts empty after a restart or a rebalance,
and with several workers each watches the assets it is assigned.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np

from assetwatch.models.bundle import BatchScores, ScoringModel
from assetwatch.models.drift import DriftConfig, ModelDrift
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings

log = logging.getLogger(__name__)


class DriftStatus(NamedTuple):
    """The latest divergence per watched column of a profile, and the raised columns."""

    model_version: str
    divergence: dict[str, float]
    raised: frozenset[str]


class DriftAlerts:
    """Feeds scored batches to each profile's drift monitor; encodes its transitions."""

    def __init__(self, settings: Settings) -> None:
        self._config = DriftConfig(
            window=settings.drift_window, step=settings.drift_step,
            threshold=settings.drift_threshold, clear_below=settings.drift_clear_threshold,
            cooldown_s=settings.drift_cooldown_s,
        )
        self._drift: dict[str, tuple[tuple[str, str], ModelDrift | None]] = {}
        self._codec = codec("DriftAlert")

    def observe(self, profile: str, model: ScoringModel, features: np.ndarray,
                scores: BatchScores, event_ms: np.ndarray) -> list[tuple[bytes, bytes]]:
        """(key, value) DriftAlert records for the transitions this batch caused."""
        drift = self._drift_of(profile, model)
        if drift is None:
            return []
        events = drift.observe(features, scores.anomaly_score, scores.failure_probability,
                               event_ms)
        records = []
        for event in events:
            log.warning("drift %s: %s %s divergence %.3f (threshold %.3f) over %d rows",
                        event.state, model.name, event.column, event.divergence,
                        event.threshold, event.sample_count)
            records.append((model.name.encode(), self._codec.encode({
                "alert_id": f"{model.name}-{model.version}-{event.column}-"
                            f"{event.window_end_ms}-{event.state}",
                "state": event.state, "model_name": model.name,
                "model_version": model.version, "feature": event.column,
                "divergence": event.divergence, "threshold": event.threshold,
                "window_start": event.window_start_ms, "window_end": event.window_end_ms,
                "sample_count": event.sample_count,
            })))
        return records

    def status(self) -> dict[str, DriftStatus]:
        """Per profile with a full window: the latest divergences and the raised columns."""
        out = {}
        for profile, ((_, version), drift) in self._drift.items():
            if drift is None or drift.monitor.latest is None:
                continue
            names = drift.monitor.reference.names
            out[profile] = DriftStatus(
                version, dict(zip(names, drift.monitor.latest.tolist(), strict=True)),
                drift.monitor.raised)
        return out

    def _drift_of(self, profile: str, model: ScoringModel) -> ModelDrift | None:
        key = (model.name, model.version)
        current = self._drift.get(profile)
        if current is not None and current[0] == key:
            return current[1]
        reference = model.bundle.reference
        if reference is None:
            log.warning("%s version %s has no training reference: no drift detection",
                        model.name, model.version)
        drift = None if reference is None else ModelDrift(reference, self._config)
        self._drift[profile] = (key, drift)
        return drift

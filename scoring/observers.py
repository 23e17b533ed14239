"""Observers: the outputs a profile's scored rows give rise to besides their predictions.

The processor publishes each profile's predictions, then hands the same rows to every
observer, in a fixed order, once per profile per batch; each adds its records (by
:class:`~assetwatch.scoring.records.Output` kind) and figures to the batch's outcome. A new
kind of output is a new observer in :func:`default_observers`, not a change to the processor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from assetwatch.features.baseline import BaselineScores
from assetwatch.models.bundle import BatchScores, ScoringModel
from assetwatch.schemas.wire import model_headers
from assetwatch.scoring.alerts import AssetAlerts
from assetwatch.scoring.drift import DriftAlerts
from assetwatch.scoring.outcome import Outcome
from assetwatch.scoring.predictions import PredictionRows, prediction_rows
from assetwatch.scoring.preparation import Scorable
from assetwatch.scoring.records import Outbound, Output
from assetwatch.scoring.shadow import Shadows, shadow_records
from assetwatch.settings import Settings

Encode = Callable[[PredictionRows], list[bytes]]
"""Encodes a batch's Prediction records."""


@dataclass(frozen=True, slots=True)
class Scored:
    """One profile's published rows of a batch, row-aligned: what observers are given."""

    profile: str
    model: ScoringModel
    items: list[Scorable]
    features: np.ndarray
    scores: BatchScores
    """The model's scores, ``is_anomaly`` judged by each asset's baseline."""
    baseline: BaselineScores
    event_ms: np.ndarray
    predictions: PredictionRows
    """The Prediction records published, a row each (:meth:`PredictionRows.record`)."""


class Observer(Protocol):
    """Turns scored rows into records of its own kinds; no I/O (they leave with the batch)."""

    def observe(self, scored: Scored, out: Outcome) -> None:
        """Add the records and figures of one profile's ``scored`` rows to ``out``."""

    def finish(self, out: Outcome) -> None:
        """Add the batch's figures to ``out`` once every profile is observed."""


class DriftObserver:
    """``DriftAlert`` records: the served model's inputs and outputs against its reference."""

    def __init__(self, settings: Settings) -> None:
        self._alerts = DriftAlerts(settings)

    def observe(self, scored: Scored, out: Outcome) -> None:
        """Feed the judged rows whose windows are complete, as the training reference's are."""
        watched = ~scored.baseline.calibrating & scored.baseline.windows_complete
        if watched.any():
            out.records[Output.DRIFT_ALERT].extend(
                Outbound(key, value) for key, value in self._alerts.observe(
                    scored.profile, scored.model, scored.features[watched],
                    scored.scores.rows(watched), scored.event_ms[watched]))

    def finish(self, out: Outcome) -> None:
        """The latest divergences of every watched profile."""
        out.drift = self._alerts.status()


class AlertObserver:
    """``AssetAlert`` records: each asset's failure risk over its last readings."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._alerts = AssetAlerts(settings, clock)

    def observe(self, scored: Scored, out: Outcome) -> None:
        """Each judged row's prediction, in order; a calibrating row raises nothing."""
        alerts = out.records[Output.ASSET_ALERT]
        items, rows, model = scored.items, scored.predictions, scored.model
        for i in np.flatnonzero(~scored.baseline.calibrating).tolist():
            alert = self._alerts.observe(rows, i, model)
            if alert is not None:
                alerts.append(Outbound(items[i].inbound.key, alert))

    def finish(self, out: Outcome) -> None:
        """Nothing per batch."""


class ShadowObserver:
    """``Prediction`` records of the ``@challenger`` for the same rows, and the agreement."""

    def __init__(self, shadows: Shadows, encode: Encode) -> None:
        self._shadows = shadows
        """The challenger of each shadow-scored profile (the scorer swaps entries)."""
        self._encode = encode

    def observe(self, scored: Scored, out: Outcome) -> None:
        """The challenger's predictions, if ``scored.profile`` is shadow-scored."""
        challenger = self._shadows.get(scored.profile)
        if challenger is None:
            return
        shadow = shadow_records(challenger, scored.features, scored.predictions.ids,
                                scored.scores, prediction_rows)
        if shadow is not None:
            rows, stats = shadow
            headers = model_headers(challenger.name, challenger.version)
            out.records[Output.SHADOW_PREDICTION].extend(
                Outbound(asset.encode(), value, None, headers)
                for asset, value in zip(rows.ids.asset_ids, self._encode(rows), strict=True))
            out.shadow[scored.profile] = stats

    def finish(self, out: Outcome) -> None:
        """Nothing per batch: the agreement is per profile."""


def default_observers(settings: Settings, clock: Callable[[], float], shadows: Shadows,
                      encode: Encode) -> list[Observer]:
    """The observers a worker's processor runs, in the order their records are made."""
    return [DriftObserver(settings), AlertObserver(settings, clock),
            ShadowObserver(shadows, encode)]

"""Shadow scoring: the ``@challenger`` scores the same rows as the champion, on the side.

Its predictions go to the shadow predictions topic (same ``Prediction`` contract, the
challenger's version), never to the predictions topic, and a failure of the challenger
only loses shadow records. What the champion publishes is unchanged; the batch takes one
more model call and one more encode per row (see the README for the measured bound).
Agreement is summed per batch (:class:`ShadowStats`) and turned into metrics by the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import NamedTuple, TypeVar

import numpy as np

from assetwatch.models.bundle import BatchScores, ScoringModel

log = logging.getLogger(__name__)


class ShadowStats(NamedTuple):
    """Sums over the rows both models scored, to add up across batches."""

    challenger_version: str
    rows: int
    champion_flags: int
    challenger_flags: int
    agreeing_flags: int
    sums: tuple[float, float, float, float, float]
    """Anomaly scores, champion x and challenger y: sum x, sum y, sum x², sum y², sum xy."""

    def plus(self, other: ShadowStats) -> ShadowStats:
        """These sums plus a later batch's; a new challenger version starts afresh."""
        if other.challenger_version != self.challenger_version:
            return other  # a new challenger starts its own tally
        return ShadowStats(
            self.challenger_version, self.rows + other.rows,
            self.champion_flags + other.champion_flags,
            self.challenger_flags + other.challenger_flags,
            self.agreeing_flags + other.agreeing_flags,
            tuple(a + b for a, b in zip(self.sums, other.sums, strict=True)),  # type: ignore[arg-type]
        )

    def correlation(self) -> float | None:
        """Pearson correlation of the two anomaly scores (None below 2 rows or no spread)."""
        n = self.rows
        sx, sy, sxx, syy, sxy = self.sums
        vx, vy = n * sxx - sx * sx, n * syy - sy * sy
        if n < 2 or vx <= 0 or vy <= 0:
            return None
        return float((n * sxy - sx * sy) / np.sqrt(vx * vy))


def stats(version: str, champion: BatchScores, challenger: BatchScores) -> ShadowStats:
    """Agreement figures of one batch scored by the champion and challenger ``version``."""
    x, y = champion.anomaly_score.astype(float), challenger.anomaly_score.astype(float)
    return ShadowStats(
        version, len(x), int(champion.is_anomaly.sum()), int(challenger.is_anomaly.sum()),
        int((champion.is_anomaly == challenger.is_anomaly).sum()),
        (float(x.sum()), float(y.sum()), float(x @ x), float(y @ y), float(x @ y)),
    )


Ids = TypeVar("Ids")
"""The champion's rows' ids (``scoring.predictions.PredictionIds``)."""
Rows = TypeVar("Rows")
"""The challenger's records (``scoring.predictions.PredictionRows``)."""


def shadow_records(
    challenger: ScoringModel, features: np.ndarray, ids: Ids, champion_scores: BatchScores,
    build: Callable[[Ids, ScoringModel, BatchScores, np.ndarray], Rows],
) -> tuple[Rows, ShadowStats] | None:
    """The challenger's records for the same rows, and the agreement; None if it fails."""
    try:
        scores = challenger.bundle.score(features)
    except Exception:  # the challenger failing must not touch the champion's outputs
        log.exception("shadow scoring with %s version %s failed", challenger.name,
                      challenger.version)
        return None
    if not scores.finite().all():  # a NaN never leaves as a prediction, shadow ones neither
        log.error("shadow scoring with %s version %s gave non-finite scores: batch skipped",
                  challenger.name, challenger.version)
        return None
    return (build(ids, challenger, scores, features),
            stats(challenger.version, champion_scores, scores))


Shadows = Mapping[str, ScoringModel]

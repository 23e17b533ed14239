"""Serve-time guard: a row whose score is not finite is never published as a prediction.

The checks before serving run on a reference batch; a model can still meet a row that makes
it answer NaN or infinity. Such a row becomes a ``scoring_failed`` dead letter with the
reason, and the rest of the batch is published as usual, so NaN never reaches a prediction,
a metric or ``/health``.
"""

from __future__ import annotations

import numpy as np

from assetwatch.models.bundle import BatchScores, ScoringModel


def non_finite_rows(model: ScoringModel, scores: BatchScores) -> dict[int, str]:
    """Row index -> dead-letter detail, for each row with a non-finite score (usually none)."""
    finite = scores.finite()
    if finite.all():
        return {}
    return {
        i: f"{model.name} version {model.version} gave a non-finite score (anomaly score "
           f"{float(scores.anomaly_score[i])}, failure probability "
           f"{float(scores.failure_probability[i])}): not published"
        for i in np.flatnonzero(~finite).tolist()
    }

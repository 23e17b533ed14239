"""The Prediction record of one scored row, shared by the champion's and the shadow's."""

from __future__ import annotations

from typing import Any

import numpy as np

from assetwatch.models.bundle import BatchScores, ScoringModel


def prediction_record(base: dict[str, Any], model: ScoringModel, scores: BatchScores,
                      features: np.ndarray, i: int) -> dict[str, Any]:
    """A Prediction record: ``base`` (ids, times) with row ``i``'s scores from ``model``."""
    names, row = model.bundle.feature_names, features[i]
    top = [{"name": names[j], "value": float(row[j]), "z_score": z}
           for j, z in zip(scores.top_index[i].tolist(), scores.top_z[i].tolist(), strict=True)]
    return {
        **base,
        "anomaly_score": float(scores.anomaly_score[i]),
        "is_anomaly": bool(scores.is_anomaly[i]),
        "failure_probability": float(scores.failure_probability[i]),
        "model_name": model.name,
        "model_version": model.version,
        "top_features": top,
    }

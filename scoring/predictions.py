"""The Prediction records of a batch's scored rows, shared by the champion's and the shadow's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from assetwatch.models.bundle import BatchScores, ScoringModel

IDS = ("asset_id", "asset_type", "event_id", "event_timestamp", "processed_timestamp",
       "calibrating", "baseline_score")
"""The fields of a Prediction that do not depend on the model."""


def prediction_records(ids: Sequence[dict[str, Any]], model: ScoringModel,
                       scores: BatchScores, features: np.ndarray) -> list[dict[str, Any]]:
    """A Prediction record per row: ``ids[i]`` (:data:`IDS`) with row ``i``'s scores.

    The scores and the top features' values leave numpy once per batch (``tolist``), not
    once per value: the same Python floats as ``float(x[i])``, at a fraction of the cost.
    """
    names = model.bundle.feature_names
    top_index = scores.top_index
    values = np.take_along_axis(features, top_index, axis=1).tolist()
    name, version = model.name, model.version
    return [
        {
            **row_ids,
            "anomaly_score": anomaly,
            "is_anomaly": flagged,
            "failure_probability": probability,
            "model_name": name,
            "model_version": version,
            "top_features": [{"name": names[j], "value": v, "z_score": z}
                             for j, v, z in zip(index, top_values, top_z, strict=True)],
        }
        for row_ids, anomaly, flagged, probability, index, top_values, top_z in zip(
            ids, scores.anomaly_score.tolist(), scores.is_anomaly.tolist(),
            scores.failure_probability.tolist(), top_index.tolist(), values,
            scores.top_z.tolist(), strict=True)
    ]

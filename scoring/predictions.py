"""The Prediction records of a batch's scored rows, as columns, shared by champion and shadow.

A record per row as a dict (with a dict per top feature) cost ~10 µs a row in the scoring
process, more than the models; the columns leave numpy once per batch (``tolist``: the same
Python floats as ``float(x[i])``) and :func:`schemas.prediction_writer.encode_predictions`
writes each row's bytes from them. :meth:`PredictionRows.record` gives one row as the dict
the Avro schema describes, for the few who need one (schemas/prediction_rows.py).
"""

from __future__ import annotations

import numpy as np

from assetwatch.models.bundle import BatchScores, ScoringModel
from assetwatch.schemas.prediction_rows import PredictionIds, PredictionRows

__all__ = ["PredictionIds", "PredictionRows", "prediction_rows"]


def prediction_rows(ids: PredictionIds, model: ScoringModel, scores: BatchScores,
                    features: np.ndarray) -> PredictionRows:
    """The Prediction records of ``model``'s ``scores`` of the rows ``ids`` names."""
    top_index = scores.top_index
    return PredictionRows(
        ids, model.name, model.version, scores.anomaly_score.tolist(),
        scores.is_anomaly.tolist(), scores.failure_probability.tolist(), top_index.tolist(),
        np.take_along_axis(features, top_index, axis=1).tolist(), scores.top_z.tolist(),
        model.bundle.feature_names)

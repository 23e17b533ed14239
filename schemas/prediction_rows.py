"""A batch's Prediction records as columns: what the scoring process builds and encodes.

:func:`schemas.prediction_writer.encode_predictions` writes each row's Avro bytes from the
columns; :meth:`PredictionRows.record` gives one row as the record the schema describes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class PredictionIds:
    """What a Prediction holds besides the model's scores, a list per field, row-aligned."""

    asset_type: str
    asset_ids: list[str]
    event_ids: list[str]
    event_ms: list[int]
    processed_ms: int
    calibrating: list[bool]
    baseline_score: list[float]


@dataclass(frozen=True, slots=True)
class PredictionRows:
    """A batch's Prediction records by one model, a list per field, row-aligned."""

    ids: PredictionIds
    model_name: str
    model_version: str
    anomaly_score: list[float]
    is_anomaly: list[bool]
    failure_probability: list[float]
    top_index: list[list[int]]
    """Each row's top features, as indices into ``feature_names``."""
    top_value: list[list[float]]
    top_z: list[list[float]]
    feature_names: Sequence[str]

    def __len__(self) -> int:
        return len(self.anomaly_score)

    def top_names(self, i: int) -> tuple[str, ...]:
        """Row ``i``'s top feature names, furthest from the training distribution first."""
        names = self.feature_names
        return tuple(names[j] for j in self.top_index[i])

    def record(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a Prediction record (the schema's fields)."""
        ids, names = self.ids, self.feature_names
        return {
            "asset_id": ids.asset_ids[i], "asset_type": ids.asset_type,
            "event_id": ids.event_ids[i], "event_timestamp": ids.event_ms[i],
            "processed_timestamp": ids.processed_ms,
            "anomaly_score": self.anomaly_score[i], "is_anomaly": self.is_anomaly[i],
            "failure_probability": self.failure_probability[i],
            "model_name": self.model_name, "model_version": self.model_version,
            "top_features": [{"name": names[j], "value": v, "z_score": z} for j, v, z in
                             zip(self.top_index[i], self.top_value[i], self.top_z[i],
                                 strict=True)],
            "calibrating": ids.calibrating[i], "baseline_score": ids.baseline_score[i],
        }

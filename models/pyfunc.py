"""The MLflow pyfunc face of a bundle, logged beside its data-only files at registration.

For people and MLflow tools (``mlflow.pyfunc.load_model`` unpickles it), never for serving,
which reads the data-only files. Needs the ``train`` extra (``mlflow.pyfunc`` imports pandas).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel  # type: ignore[attr-defined]

from assetwatch.models.artifacts import SERVING_DIR, read_bundle
from assetwatch.models.bundle import ModelBundle


class AssetModel(PythonModel):
    """pyfunc face of a :class:`ModelBundle`, so any MLflow client can score it too.

    MLflow unpickles this object: for people and MLflow tools, never for serving.
    """

    bundle: ModelBundle

    def load_context(self, context: Any) -> None:
        """MLflow's load hook: read the bundle from the logged serving artifact."""
        self.bundle = read_bundle(Path(context.artifacts[SERVING_DIR]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        """Score a DataFrame holding the bundle's feature columns; one output row per row."""
        return predictions_frame(self.bundle, model_input)


def predictions_frame(bundle: ModelBundle, features: pd.DataFrame) -> pd.DataFrame:
    """The bundle's three outputs for ``features`` (its feature columns), a row per row."""
    scores = bundle.score(features[list(bundle.feature_names)].to_numpy(float))
    return pd.DataFrame({
        "anomaly_score": scores.anomaly_score,
        "is_anomaly": scores.is_anomaly,
        "failure_probability": scores.failure_probability,
    })

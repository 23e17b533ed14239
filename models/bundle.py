"""The scoring model: an anomaly detector and a failure classifier over one profile's features.

A bundle is data only (two ONNX graphs, arrays and a few numbers), so a worker can load one
from a registry without unpickling anything (:mod:`assetwatch.models.artifacts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import onnxruntime as ort

from assetwatch.models.isolation import path_length_to_decision
from assetwatch.models.reference import FeatureReference

TOP_FEATURES = 3
INPUT = "X"
"""The input name of both ONNX graphs (the compiler writes it, the scorer feeds it)."""


@dataclass(frozen=True)
class BatchScores:
    """Scores of a batch of feature rows, row-aligned."""

    anomaly_score: np.ndarray
    is_anomaly: np.ndarray
    failure_probability: np.ndarray
    top_index: np.ndarray
    """(rows, TOP_FEATURES) feature indices, furthest from the training distribution first."""
    top_z: np.ndarray

    def finite(self) -> np.ndarray:
        """Row mask: anomaly score and failure probability both finite."""
        finite: np.ndarray = np.isfinite(self.anomaly_score) & np.isfinite(
            self.failure_probability)
        return finite

    def rows(self, mask: np.ndarray) -> BatchScores:
        """The scores of the rows ``mask`` selects, still row-aligned with each other."""
        return BatchScores(self.anomaly_score[mask], self.is_anomaly[mask],
                           self.failure_probability[mask], self.top_index[mask],
                           self.top_z[mask])


@dataclass(frozen=True)
class DetectorScale:
    """What scikit-learn's ``decision_function`` takes from an IsolationForest besides its trees.

    Kept as numbers so serving needs no scikit-learn object.
    """

    trees: int
    max_samples: float
    offset: float


@dataclass(frozen=True)
class ModelBundle:
    """What is trained, registered and served together for one profile."""

    profile: str
    feature_names: tuple[str, ...]
    feature_mean: np.ndarray
    feature_std: np.ndarray
    detector_onnx: bytes
    """The detector compiled by :func:`assetwatch.models.compiled.isolation_forest_to_onnx`."""
    classifier_onnx: bytes
    """The classifier compiled by :func:`assetwatch.models.compiled.classifier_to_onnx`."""
    detector_scale: DetectorScale
    classes: tuple[int, ...]
    """The classifier's classes, in the order of its probability columns."""
    reference: FeatureReference | None = None
    """Training distribution of the features and outputs (None in bundles trained before it)."""

    @cached_property
    def _sessions(self) -> tuple[ort.InferenceSession, ort.InferenceSession]:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # the worker's event loop has the other core
        options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        return (ort.InferenceSession(self.detector_onnx, options, providers=providers),
                ort.InferenceSession(self.classifier_onnx, options, providers=providers))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_sessions", None)  # runtime sessions are rebuilt after unpickling
        return state

    def score(self, features: np.ndarray) -> BatchScores:
        """Score a (rows, features) batch with one call per model."""
        if features.ndim != 2 or features.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected (n, {len(self.feature_names)}) features, got {features.shape}"
            )
        detector, classifier = self._sessions
        inputs = {INPUT: features.astype(np.float32)}
        # decision_function < 0 is IsolationForest's own outlier rule; flip it so higher
        # means more anomalous and 0 stays the threshold.
        scale = self.detector_scale
        anomaly = -path_length_to_decision(detector.run(None, inputs)[0], scale.trees,
                                           scale.max_samples, scale.offset)
        proba = classifier.run(["probabilities"], inputs)[0].astype(float)
        classes = list(self.classes)
        failure = proba[:, classes.index(1)] if 1 in classes else np.zeros(len(features))
        # The ONNX forest sums its trees' votes in float32: a unanimous 1.0 can come out 1.0000001.
        failure = np.clip(failure, 0.0, 1.0)
        z = (features - self.feature_mean) / self.feature_std
        k = min(TOP_FEATURES, z.shape[1])
        magnitude = np.abs(z)
        top = np.argpartition(-magnitude, k - 1, axis=1)[:, :k]
        rows = np.arange(len(z))[:, None]  # indexing per row: take_along_axis costs ~10 µs a call
        top = top[rows, np.argsort(-magnitude[rows, top], axis=1)]
        return BatchScores(
            anomaly_score=anomaly,
            is_anomaly=anomaly > 0.0,
            failure_probability=failure,
            top_index=top,
            top_z=z[rows, top],
        )


@dataclass(frozen=True)
class ScoringModel:
    """A bundle with the registry name and version it is served as."""

    name: str
    version: str
    bundle: ModelBundle

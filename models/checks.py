"""What a worker checks before it serves a model version: pure, no registry, no broker."""

from __future__ import annotations

import numpy as np

from assetwatch.errors import ModelRejectedError
from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.offline import compute_features
from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import ScoringModel
from assetwatch.models.training import synthetic_readings

REFERENCE_ASSETS = 4
REFERENCE_HOURS = 0.1
"""A reference batch of ~1,400 rows: healthy and degrading assets alike."""


def reference_features(profile: Profile, seed: int = 11) -> np.ndarray:
    """Feature rows of simulated readings, through the same feature code as serving."""
    readings = synthetic_readings(profile, REFERENCE_ASSETS, REFERENCE_HOURS, seed)
    return compute_features(readings, profile).to_numpy(dtype=float)


def check_servable(model: ScoringModel, profile: Profile, reference: np.ndarray) -> None:
    """Raise :class:`ModelRejectedError` unless ``model`` can serve ``profile``.

    Its features must be the profile's, in order, and scoring ``reference`` must give finite
    anomaly scores and failure probabilities within [0, 1].
    """
    expected = FeatureExtractor(profile).names
    if model.bundle.profile != profile.name or tuple(model.bundle.feature_names) != expected:
        missing = sorted(set(expected) - set(model.bundle.feature_names))
        extra = sorted(set(model.bundle.feature_names) - set(expected))
        raise ModelRejectedError(
            f"{model.name} version {model.version} was trained for profile "
            f"{model.bundle.profile!r} on different features (missing {missing[:3]}, "
            f"extra {extra[:3]}, or another order)"
        )
    try:
        scores = model.bundle.score(reference)
    except Exception as exc:  # any failure to score means it cannot serve
        raise ModelRejectedError(
            f"{model.name} version {model.version} failed to score the reference batch: {exc!r}"
        ) from exc
    probability = scores.failure_probability
    if not (np.isfinite(scores.anomaly_score).all() and np.isfinite(probability).all()
            and ((probability >= 0) & (probability <= 1)).all()):
        raise ModelRejectedError(
            f"{model.name} version {model.version} gives non-finite or out-of-range scores "
            "on the reference batch"
        )

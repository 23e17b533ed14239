"""What is checked before a model version is served or promoted: pure, no registry, no broker.

The same checks run in ``assetwatch promote``, at a worker's start-up and before a hot swap.
Each failure raises :class:`ModelRejectedError` whose ``step`` names the check that failed.
"""

from __future__ import annotations

import numpy as np

from assetwatch.errors import ModelRejectedError
from assetwatch.features.batch import feature_rows
from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import BatchScores, ScoringModel
from assetwatch.simulation import START_MS, synthetic_fleet

REFERENCE_ASSETS = 4
REFERENCE_HOURS = 0.1
"""A realistic batch of ~1,400 rows: healthy and degrading assets alike."""
SWEEP_STEPS = 121
"""Readings per sweep of one sensor across its legal range (up, then down, then jumps)."""
MIN_SPREAD = 1e-3
"""Anomaly scores or failure probabilities spanning less than this over the reference are
degenerate: such a model says the same thing of every asset."""
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def reference_features(profile: Profile, seed: int = 11) -> np.ndarray:
    """The reference batch: realistic rows, then rows spanning every sensor's legal range."""
    fleet = synthetic_fleet(profile, REFERENCE_ASSETS, REFERENCE_HOURS, seed)
    realistic = feature_rows(profile, fleet.asset_ids, fleet.timestamps, fleet.values)
    return np.concatenate([realistic, full_range_features(profile)])


def full_range_features(profile: Profile) -> np.ndarray:
    """Feature rows of readings that sweep each sensor from its min to its max and back.

    The readings then jump between the extremes (others at baseline); the rows come from the
    serving feature code.

    Rows with a feature a worker would dead-letter (non-finite, beyond float32) are left out:
    a model never scores them.
    """
    sweeps = [_sweep(profile, i) for i in range(len(profile.sensors))]
    rows = feature_rows(profile, np.concatenate([ids for ids, _, _ in sweeps]),
                        np.concatenate([ts for _, ts, _ in sweeps]),
                        np.concatenate([values for _, _, values in sweeps]))
    legal: np.ndarray = rows[(np.abs(rows) < _FLOAT32_MAX).all(axis=1)]
    return legal


def _sweep(profile: Profile, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asset ids, timestamps and values (rows, sensors) of one sensor's sweep."""
    sensor = profile.sensors[index]
    ramp = np.linspace(sensor.min, sensor.max, SWEEP_STEPS)
    jumps = np.resize([sensor.min, sensor.max], SWEEP_STEPS)
    swept = np.concatenate([ramp, ramp[::-1], jumps])
    values = np.tile([s.baseline for s in profile.sensors], (len(swept), 1)).astype(float)
    values[:, index] = swept
    step_ms = int(profile.reading_interval_s * 1000)
    timestamps = START_MS + step_ms * np.arange(len(swept), dtype=np.int64)
    return np.full(len(swept), f"sweep-{sensor.name}"), timestamps, values


def check_servable(model: ScoringModel, profile: Profile, reference: np.ndarray) -> None:
    """Raise :class:`ModelRejectedError` unless ``model`` can serve ``profile``.

    Its features must be the profile's, in order; scoring ``reference`` must give finite
    anomaly scores and failure probabilities within [0, 1], and neither may be (near) constant.
    """
    label = f"{model.name} version {model.version}"
    _check_features(model, profile, label)
    try:
        scores = model.bundle.score(reference)
    except Exception as exc:  # any failure to score means it cannot serve
        raise ModelRejectedError(
            "score reference", f"{label} failed to score the reference batch: {exc!r}"
        ) from exc
    _check_finite(scores, label, reference, profile)
    _check_spread(scores, label)


def _check_features(model: ScoringModel, profile: Profile, label: str) -> None:
    expected = FeatureExtractor(profile).names
    if model.bundle.profile != profile.name or tuple(model.bundle.feature_names) != expected:
        missing = sorted(set(expected) - set(model.bundle.feature_names))
        extra = sorted(set(model.bundle.feature_names) - set(expected))
        raise ModelRejectedError(
            "features", f"{label} was trained for profile {model.bundle.profile!r} on "
            f"different features (missing {missing[:3]}, extra {extra[:3]}, or another order)")


def _check_finite(scores: BatchScores, label: str, reference: np.ndarray,
                  profile: Profile) -> None:
    probability = scores.failure_probability
    bad = ~scores.finite() | (probability < 0) | (probability > 1)
    if bad.any():
        row = int(np.argmax(bad))
        sensors = {name: float(reference[row, profile.feature_names.index(name)])
                   for name in profile.sensor_names if name in profile.feature_names}
        raise ModelRejectedError(
            "finite scores", f"{label} gives non-finite or out-of-range scores on "
            f"{int(bad.sum())} of {len(bad)} reference rows (first: anomaly score "
            f"{float(scores.anomaly_score[row])}, failure probability {float(probability[row])}"
            f" at {sensors})")


def _check_spread(scores: BatchScores, label: str) -> None:
    for output, values in (("anomaly score", scores.anomaly_score),
                           ("failure probability", scores.failure_probability)):
        spread = float(np.ptp(values)) if len(values) else 0.0
        if spread < MIN_SPREAD:
            raise ModelRejectedError(
                "degenerate output", f"{label} gives a (near) constant {output} over the "
                f"reference batch: {float(values[0]) if len(values) else None} "
                f"(spread {spread:.2g} < {MIN_SPREAD})")

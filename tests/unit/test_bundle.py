"""ModelBundle.score on a tiny model trained once (10 trees, 4 assets, half an hour)."""

from __future__ import annotations

import numpy as np
import pytest

from assetwatch.features.offline import compute_features
from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import TOP_FEATURES, BatchScores, ModelBundle
from assetwatch.models.training import TrainingResult, synthetic_readings


@pytest.fixture(scope="module")
def bundle(cnc_training: TrainingResult) -> ModelBundle:
    return cnc_training.bundle


@pytest.fixture(scope="module")
def features(cnc: Profile) -> np.ndarray:
    """Feature rows the model has not seen: another seed, healthy and degrading assets."""
    readings = synthetic_readings(cnc, n_assets=2, hours=0.1, seed=9)
    return compute_features(readings, cnc).to_numpy(dtype=float)


@pytest.fixture(scope="module")
def scores(bundle: ModelBundle, features: np.ndarray) -> BatchScores:
    return bundle.score(features)


def test_bundle_describes_the_profile(bundle: ModelBundle, cnc: Profile) -> None:
    assert bundle.profile == "cnc"
    assert bundle.feature_names == cnc.feature_names
    assert bundle.feature_mean.shape == bundle.feature_std.shape == (len(cnc.feature_names),)
    assert (bundle.feature_std > 0).all()


def test_scores_are_row_aligned(scores: BatchScores, features: np.ndarray) -> None:
    n = len(features)

    assert scores.anomaly_score.shape == (n,)
    assert scores.is_anomaly.shape == (n,)
    assert scores.failure_probability.shape == (n,)
    assert scores.top_index.shape == scores.top_z.shape == (n, TOP_FEATURES)


def test_failure_probability_is_a_probability(scores: BatchScores) -> None:
    assert ((scores.failure_probability >= 0.0) & (scores.failure_probability <= 1.0)).all()


def test_anomaly_flag_is_a_positive_anomaly_score(scores: BatchScores) -> None:
    assert scores.is_anomaly.dtype == bool
    np.testing.assert_array_equal(scores.is_anomaly, scores.anomaly_score > 0.0)


def test_top_features_are_the_largest_z_scores_in_descending_order(
    bundle: ModelBundle, features: np.ndarray, scores: BatchScores
) -> None:
    z = (features - bundle.feature_mean) / bundle.feature_std
    magnitude = np.abs(z)
    top_magnitude = np.take_along_axis(magnitude, scores.top_index, axis=1)

    np.testing.assert_array_equal(scores.top_z, np.take_along_axis(z, scores.top_index, axis=1))
    assert (np.diff(top_magnitude, axis=1) <= 0).all()
    np.testing.assert_array_equal(top_magnitude, -np.sort(-magnitude, axis=1)[:, :TOP_FEATURES])
    assert all(len(set(row)) == TOP_FEATURES for row in scores.top_index.tolist())


def test_a_row_far_from_training_names_its_outlying_feature(bundle: ModelBundle) -> None:
    row = bundle.feature_mean.copy()
    far = bundle.feature_names.index("temperature_zscore_30m")
    row[far] += 50 * bundle.feature_std[far]

    scores = bundle.score(row[None, :])

    assert scores.top_index[0, 0] == far
    assert scores.top_z[0, 0] == pytest.approx(50.0)


def test_single_row_scores_like_its_batch(
    bundle: ModelBundle, features: np.ndarray, scores: BatchScores
) -> None:
    one = bundle.score(features[5:6])

    assert one.anomaly_score[0] == pytest.approx(scores.anomaly_score[5], rel=1e-12)
    assert one.failure_probability[0] == pytest.approx(scores.failure_probability[5], rel=1e-12)
    np.testing.assert_array_equal(one.top_index[0], scores.top_index[5])


@pytest.mark.parametrize(
    "shape", [(3, 41), (3, 43), (0,), (42,), (2, 42, 1)], ids=lambda s: f"shape{s}"
)
def test_wrong_feature_shape_raises_value_error(
    bundle: ModelBundle, shape: tuple[int, ...]
) -> None:
    assert len(bundle.feature_names) == 42
    with pytest.raises(ValueError, match="expected"):
        bundle.score(np.zeros(shape))


def test_training_reports_its_metrics(cnc_training: TrainingResult) -> None:
    metrics = cnc_training.metrics

    assert {"f1", "precision", "recall", "roc_auc"} <= set(metrics)
    for name in ("f1", "precision", "recall", "roc_auc", "anomaly_rate"):
        assert 0.0 <= metrics[name] <= 1.0
    # the simulator's injected failures are learnable: far better than chance (0.5), even
    # for 10 trees on half an hour of 4 assets (0.92 here; 1.00 and 0.997 for seeds 2 and 3)
    assert metrics["roc_auc"] >= 0.8
    assert metrics["train_rows"] + metrics["validation_rows"] == 4 * 1800
    assert metrics["feature_count"] == 42
    assert cnc_training.params["trees"] == 10

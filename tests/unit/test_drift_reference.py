"""The drift reference: normal rows with complete windows, scored by forests not fitted on them.

The healthy demo fleet raised drift on ``output:failure_probability`` because the reference
held the forests' in-sample outputs (a fitted forest scores its own healthy rows ~0) on a
failure-enriched mix; these pin the cause and the fix without a broker.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from assetwatch.features.offline import compute_baseline, compute_features, windows_complete
from assetwatch.features.profiles import Profile
from assetwatch.models.drift import DriftConfig
from assetwatch.models.reference import js_divergence
from assetwatch.models.training import (
    TrainingResult,
    synthetic_readings,
    synthetic_reference,
    train_models,
    training_reference,
)

THRESHOLD = DriftConfig().threshold


@pytest.fixture(scope="module")
def trained(cnc: Profile) -> tuple[pd.DataFrame, pd.DataFrame, TrainingResult]:
    """Training readings, a held-out healthy reference fleet, and the forests trained on them."""
    readings = synthetic_readings(cnc, n_assets=4, hours=0.75, seed=1)
    reference = synthetic_reference(cnc, 4, seed=1)
    return readings, reference, train_models(cnc, readings, trees=10, seed=0,
                                             reference=reference)


def test_offline_window_completeness_is_the_folds(cnc: Profile) -> None:
    readings = synthetic_readings(cnc, n_assets=2, hours=0.6, seed=3)
    folded = compute_baseline(readings, cnc)["windows_complete"].to_numpy()
    np.testing.assert_array_equal(windows_complete(readings, cnc), folded)
    age_s = (readings["timestamp"] - readings["timestamp"].min()).to_numpy() / 1000
    np.testing.assert_array_equal(folded, age_s >= cnc.windows_complete_s)
    assert folded.any() and not folded.all()


def test_the_reference_is_the_reference_readings_complete_rows(
    cnc: Profile, trained: tuple[pd.DataFrame, pd.DataFrame, TrainingResult],
) -> None:
    _, reference, result = trained
    keep = windows_complete(reference, cnc)
    rows = compute_features(reference, cnc).to_numpy(dtype=float)[keep]
    expected = training_reference(result.bundle, rows)
    assert result.bundle.reference is not None
    np.testing.assert_array_equal(result.bundle.reference.frequencies, expected.frequencies)
    assert result.params["drift_reference"].startswith(f"{int(keep.sum())} normal complete")
    assert 0 < keep.sum() < len(reference)


def test_healthy_unseen_assets_match_the_reference_and_not_in_sample_outputs(
    cnc: Profile, trained: tuple[pd.DataFrame, pd.DataFrame, TrainingResult],
) -> None:
    readings, _, result = trained
    bundle = result.bundle
    fleet = synthetic_reference(cnc, 6, seed=99)  # other healthy assets, windows complete
    features = compute_features(fleet, cnc).to_numpy(dtype=float)[windows_complete(fleet, cnc)]
    scores = bundle.score(features)
    outputs = np.column_stack([scores.anomaly_score, scores.failure_probability])
    training_rows = compute_features(readings, cnc).to_numpy(dtype=float)
    in_sample = training_reference(bundle, training_rows[: int(len(training_rows) * 0.75)])
    assert bundle.reference is not None
    served, old = (js_divergence(r.counts(np.column_stack([features, outputs]))[-2:],
                                 r.frequencies[-2:]) for r in (bundle.reference, in_sample))
    assert served.max() < THRESHOLD / 4, served
    assert old[1] > THRESHOLD, old  # the false alarm the in-sample reference gave

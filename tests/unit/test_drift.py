"""Training reference histograms, Jensen-Shannon divergence and the drift monitor."""

from __future__ import annotations

import numpy as np
import pytest

from assetwatch.models.drift import DriftConfig, DriftMonitor, ModelDrift
from assetwatch.models.reference import FeatureReference, js_divergence

NAMES = ("a", "b", "c")


def _reference(rng: np.random.Generator) -> FeatureReference:
    return FeatureReference.from_rows(NAMES, rng.normal(size=(20_000, 3)))


def test_reference_bins_hold_equal_shares_of_the_training_rows() -> None:
    reference = _reference(np.random.default_rng(1))
    assert reference.frequencies.shape == (3, 10)
    np.testing.assert_allclose(reference.frequencies.sum(axis=1), 1.0)
    np.testing.assert_allclose(reference.frequencies, 0.1, atol=0.002)


def test_values_beyond_the_training_range_land_in_the_outer_bins() -> None:
    reference = _reference(np.random.default_rng(2))
    counts = reference.counts(np.array([[-1e9, 1e9, np.nan]]))
    assert counts[0, 0] == 1 and counts[1, -1] == 1 and counts[2].sum() == 0


@pytest.mark.parametrize(("counts", "frequencies", "expected"), [
    ([[5, 5]], [[0.5, 0.5]], 0.0),
    ([[10, 0]], [[0.0, 1.0]], 1.0),
    ([[0, 0]], [[0.5, 0.5]], 0.0),
    ([[1, 0]], [[0.5, 0.5]], 0.3112781244591328),  # (log2(4/3) + (log2(2/3) + 1) / 2) / 2
])
def test_js_divergence_table(counts: list[list[int]], frequencies: list[list[float]],
                             expected: float) -> None:
    got = js_divergence(np.array(counts, float), np.array(frequencies))
    np.testing.assert_allclose(got, [expected], atol=1e-12)


def _times(n: int, start: int = 0) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.int64) * 1000


def test_stationary_rows_raise_nothing_over_many_windows() -> None:
    rng = np.random.default_rng(3)
    monitor = DriftMonitor(_reference(rng), DriftConfig(window=2000, step=500))
    events = [monitor.observe(rng.normal(size=(250, 3)), _times(250, i * 250))
              for i in range(400)]  # 100,000 rows: 197 evaluations
    assert [e for batch in events for e in batch] == []
    assert monitor.latest is not None and monitor.latest.max() < 0.02


def test_a_shift_in_one_column_raises_it_then_clears_with_hysteresis() -> None:
    rng = np.random.default_rng(4)
    config = DriftConfig(window=2000, step=500, threshold=0.2, clear_below=0.1, cooldown_s=0)
    monitor = DriftMonitor(_reference(rng), config)
    assert monitor.observe(rng.normal(size=(2000, 3)), _times(2000)) == []

    shifted = rng.normal(size=(2000, 3))
    shifted[:, 1] += 3.0
    steps = [monitor.observe(shifted[i:i + 500], _times(500, 2000 + i)) for i in
             range(0, 2000, 500)]
    raised = [(k, e.column, e.state) for k, batch in enumerate(steps) for e in batch]
    assert raised == [(raised[0][0], "b", "RAISED")]
    assert raised[0][0] <= 2  # within three steps of the shift
    event = steps[raised[0][0]][0]
    assert event.divergence > 0.2 and event.sample_count == 2000
    assert event.threshold == monitor.config.threshold
    assert event.window_end_ms - event.window_start_ms == 1999 * 1000

    back = [monitor.observe(rng.normal(size=(500, 3)), _times(500, 4000 + 500 * i))
            for i in range(4)]
    cleared = [(k, e.column, e.state) for k, batch in enumerate(back) for e in batch]
    assert [c[1:] for c in cleared] == [("b", "CLEARED")]
    assert cleared[0][0] >= 1  # not at the first step: a half-shifted window is in between
    clear = back[cleared[0][0]][0]
    assert clear.threshold == config.clear_below  # the clearing bound, not the raising one:
    assert config.clear_below != config.threshold  # (the config tells the two apart)
    assert clear.divergence < clear.threshold  # the log line reads "0.04 (threshold 0.10)"


def test_the_cool_down_stops_a_flapping_column_from_raising_again() -> None:
    rng = np.random.default_rng(5)
    config = DriftConfig(window=500, step=500, cooldown_s=3600)
    monitor = DriftMonitor(_reference(rng), config)
    states = []
    for i in range(6):  # shifted, normal, shifted, ... one window each
        rows = rng.normal(size=(500, 3))
        rows[:, 0] += 4.0 if i % 2 == 0 else 0.0
        states += [e.state for e in monitor.observe(rows, _times(500, 500 * i))]
    assert states == ["RAISED", "CLEARED"]


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="step"):
        DriftConfig(window=100, step=200)
    with pytest.raises(ValueError, match="thresholds"):
        DriftConfig(threshold=0.1, clear_below=0.2)


def test_model_drift_watches_instantaneous_columns_and_outputs() -> None:
    rng = np.random.default_rng(6)
    names = ("x", "x_mean_5m", "x_std_30m", "x_rate_of_change",
             "output:anomaly_score", "output:failure_probability")
    reference = FeatureReference.from_rows(names, rng.normal(size=(5000, 6)))
    drift = ModelDrift(reference, DriftConfig(window=500, step=500))
    rows = rng.normal(size=(500, 6))
    rows[:, 1] += 5.0  # a window aggregate moving is not watched
    rows[:, 4] += 5.0  # the anomaly score moving is
    events = drift.observe(rows[:, :4], rows[:, 4], rows[:, 5], _times(500))
    assert drift.monitor.reference.names == (
        "x", "x_rate_of_change", "output:anomaly_score", "output:failure_probability")
    assert [(e.column, e.state) for e in events] == [("output:anomaly_score", "RAISED")]

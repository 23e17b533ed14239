"""Per-asset baselines: calibration, judgement, restored state, profile checks, resets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assetwatch.errors import ConfigError
from assetwatch.features.baseline import Baseline
from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.profiles import Profile, load_profile
from assetwatch.features.state import AssetState
from tests.data import SKAB_VALVE1

START_MS = 1_700_000_000_000


def _pump_stream(pump: Profile, n: int, shift_from: int | None = None,
                 shift: float = 0.0, seed: int = 0) -> list[tuple[int, list[float]]]:
    """``n`` readings of one pump at 1 Hz, noise around each sensor's level; flow shifted late."""
    rng = np.random.default_rng(seed)
    levels = np.array([s.baseline for s in pump.sensors])
    noise = np.array([s.noise for s in pump.sensors])
    flow = pump.sensor_names.index("volume_flow_rate_rms")
    out = []
    for i in range(n):
        values = levels + noise * rng.standard_normal(len(levels))
        if shift_from is not None and i >= shift_from:
            values[flow] += shift
        out.append((START_MS + 1000 * i, values.tolist()))
    return out


def _judge(profile: Profile, stream: list[tuple[int, list[float]]],
           state: AssetState | None = None) -> tuple[np.ndarray, np.ndarray]:
    extractor = FeatureExtractor(profile)
    state = state or extractor.new_state()
    scores = extractor.baseline([extractor.fold(state, ts, v) for ts, v in stream])
    return scores.calibrating, scores.score


def test_the_first_readings_calibrate_and_are_never_judged(pump: Profile) -> None:
    calibrating, score = _judge(pump, _pump_stream(pump, 600, shift_from=0, shift=50.0))

    n = pump.baseline.calibration_readings
    assert calibrating[:n].all() and not calibrating[n:].any()
    assert (score[:n] == 0.0).all()


def test_level_and_deviation_are_those_of_the_complete_calibration_windows(
    pump: Profile,
) -> None:
    stream = _pump_stream(pump, 400)
    extractor = FeatureExtractor(pump)
    state = extractor.new_state()
    means = []
    for ts, values in stream:
        extractor.fold(state, ts, values)
        means.append(state.windows[pump.baseline_window].means(pump.baseline_sensors))
    window = pump.windows[pump.baseline_window]
    complete = np.array(means[window.length_s // window.bucket_s - 1:])

    baseline = state.baseline
    assert baseline.n == len(complete) == 391
    np.testing.assert_allclose(baseline.sums, complete.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(baseline.sumsqs, (complete ** 2).sum(axis=0), rtol=1e-12)


def test_a_shift_of_the_assets_own_flow_is_flagged_and_its_normal_is_not(pump: Profile) -> None:
    """A fault is a shift in the asset's own deviations: -5 l/min here, about 10 of them."""
    threshold = pump.baseline.threshold
    _, normal = _judge(pump, _pump_stream(pump, 1200, seed=1))
    _, shifted = _judge(pump, _pump_stream(pump, 1200, shift_from=800, shift=-5.0, seed=1))

    assert (normal[400:] > threshold).mean() < 0.01
    assert (shifted[810:] > threshold).mean() > 0.99
    assert (shifted[400:800] == normal[400:800]).all()


@pytest.mark.parametrize("split", [5, 250, 399, 700])
def test_a_restored_state_judges_exactly_as_one_that_never_stopped(
    pump: Profile, split: int
) -> None:
    stream = _pump_stream(pump, 900, shift_from=600, shift=-3.0, seed=2)
    straight = _judge(pump, stream)

    extractor = FeatureExtractor(pump)
    state = extractor.new_state()
    for ts, values in stream[:split]:
        extractor.fold(state, ts, values)
    resumed = _judge(pump, stream[split:], AssetState.from_bytes(state.to_bytes(), pump))

    np.testing.assert_array_equal(resumed[0], straight[0][split:])
    np.testing.assert_array_equal(resumed[1], straight[1][split:])


def test_a_reset_baseline_calibrates_afresh(pump: Profile) -> None:
    stream = _pump_stream(pump, 900, seed=3)
    extractor = FeatureExtractor(pump)
    state = extractor.new_state()
    for ts, values in stream[:500]:
        extractor.fold(state, ts, values)
    state.baseline = Baseline.empty(pump)

    calibrating, _ = _judge(pump, stream[500:], state)

    assert calibrating[:400].all() and not calibrating[400:].any()


def test_an_idle_sensor_does_not_flag_every_rounding_step(pump: Profile) -> None:
    """A sensor constant through calibration gets a floor deviation, not zero."""
    stream = [(ts, [*v[:-1], 32.0]) for ts, v in _pump_stream(pump, 500, seed=4)]
    stream[450:] = [(ts, [*v[:-1], 32.01]) for ts, v in stream[450:]]

    extractor = FeatureExtractor(pump)
    state = extractor.new_state()
    scores = extractor.baseline([extractor.fold(state, ts, v) for ts, v in stream])
    flow = pump.baseline_sensors.index(pump.sensor_names.index("volume_flow_rate_rms"))

    assert np.isfinite(scores.z).all()
    assert 0.0 < np.abs(scores.z[460:, flow]).max() < 1.0


def test_on_skab_valve1_the_pump_baseline_tells_closures_from_normal(pump: Profile) -> None:
    """SKAB's outlier protocol, offline through the serving code: 400 rows calibrate each file.

    The streaming check of the same figures is ``assetwatch evaluate`` (README).
    """
    tp = fp = fn = tn = 0
    for path in sorted(SKAB_VALVE1.glob("*.csv")):
        frame = pd.read_csv(path, sep=";")
        times = (pd.to_datetime(frame["datetime"]) - pd.Timestamp(0)) // pd.Timedelta("1ms")
        values = frame[[s.csv_column for s in pump.sensors]].to_numpy(dtype=float)
        calibrating, score = _judge(pump, list(zip(times.tolist(), values.tolist(), strict=True)))
        alarm = (score > pump.baseline.threshold)[400:]
        truth = frame["anomaly"].to_numpy()[400:] > 0
        tp += int((alarm & truth).sum())
        fp += int((alarm & ~truth).sum())
        fn += int((~alarm & truth).sum())
        tn += int((~alarm & ~truth).sum())
        assert not calibrating[400:].any()
    f1, far = 2 * tp / (2 * tp + fp + fn), fp / (fp + tn)
    assert f1 >= 0.80 and far <= 0.10, (f1, far)


@pytest.mark.parametrize(("table", "problem"), [
    ('window = "nope"', "must name a window with a mean"),
    ('sensors = ["flux"]', "are not sensors of the profile"),
    ("threshold = 0", "threshold > 0"),
    ("calibration_readings = 1", "calibration_readings must be >= 2"),
])
def test_a_malformed_baseline_section_raises_config_error(
    tmp_path: Path, table: str, problem: str, make_pump_toml: Callable[[str], str],
) -> None:
    (tmp_path / "pump.toml").write_text(make_pump_toml(table))

    with pytest.raises(ConfigError, match=problem):
        load_profile("pump", tmp_path)


@pytest.fixture
def make_pump_toml() -> Callable[[str], str]:
    from importlib import resources

    text = (resources.files("assetwatch.features") / "profiles" / "pump.toml").read_text()
    head = text[: text.index("[baseline]")]
    return lambda line: f"{head}[baseline]\n{line}\n"

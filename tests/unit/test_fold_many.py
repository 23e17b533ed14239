"""Folding many assets' readings at once is folding them one at a time, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from assetwatch.features.extractor import VECTOR_MIN, FeatureExtractor
from assetwatch.features.profiles import Profile, load_profile
from assetwatch.features.running import Segments, running
from assetwatch.features.state import AssetState

START_MS = 1_700_000_000_000


def _stream(profile: Profile, n: int, seed: int, disorder: float = 0.0
            ) -> tuple[list[int], list[list[float]]]:
    """``n`` readings about 1 s apart, some out of order with ``disorder``.

    With gaps (buckets expire by several at once) and repeated timestamps.
    """
    rng = np.random.default_rng(seed)
    steps = rng.choice([0, 1000, 1000, 1000, 1500, 40_000, 700_000], size=n,
                       p=[0.05, 0.6, 0.2, 0.05, 0.05, 0.04, 0.01])
    ts = START_MS + np.cumsum(steps)
    late = rng.random(n) < disorder
    ts[late] -= rng.integers(1, 30_000, size=int(late.sum()))
    levels = np.array([s.baseline for s in profile.sensors])
    noise = np.array([s.noise for s in profile.sensors])
    values = levels + noise * rng.standard_normal((n, len(levels)))
    values[rng.random(n) < 0.02] = levels  # exact repeats: ties among extrema
    return ts.tolist(), values.tolist()


def _one_at_a_time(extractor: FeatureExtractor, state: AssetState, ts: list[int],
                   values: list[list[float]]) -> np.ndarray:
    return extractor.snapshots([extractor.fold(state, t, v)
                                for t, v in zip(ts, values, strict=True)])


@pytest.mark.parametrize("profile_name", ["cnc", "pump"])
@pytest.mark.parametrize("seed", range(3))
def test_fold_many_is_fold_one_at_a_time(profile_name: str, seed: int) -> None:
    """Assets in and out of order, batches of every size, calibration ending mid-batch."""
    profile = load_profile(profile_name)
    extractor = FeatureExtractor(profile)
    n_assets, n = 7, 1200
    streams = [_stream(profile, n, seed * 100 + a, disorder=0.03 if a == 3 else 0.0)
               for a in range(n_assets)]
    one = [extractor.new_state() for _ in range(n_assets)]
    many = [extractor.new_state() for _ in range(n_assets)]
    rng = np.random.default_rng(seed)
    cuts = [np.unique(np.concatenate(([0, n], rng.integers(0, n, 30)))) for _ in range(n_assets)]
    for step in range(31):
        ranges = [(int(c[min(step, len(c) - 1)]), int(c[min(step + 1, len(c) - 1)]))
                  for c in cuts]
        chosen = [a for a in range(n_assets) if ranges[a][0] < ranges[a][1]]
        expected = np.concatenate(
            [_one_at_a_time(extractor, one[a], streams[a][0][slice(*ranges[a])],
                            streams[a][1][slice(*ranges[a])]) for a in chosen]
            or [np.empty((0, extractor.snapshot_width))])
        got = extractor.fold_many([many[a] for a in chosen],
                                  [streams[a][0][slice(*ranges[a])] for a in chosen],
                                  [streams[a][1][slice(*ranges[a])] for a in chosen])
        np.testing.assert_array_equal(got, expected)
        for a in chosen:
            assert many[a].to_bytes() == one[a].to_bytes(), f"asset {a} at step {step}"
    calibrating = got[:, extractor.snapshot_width - extractor.baseline_width]
    assert not calibrating.any()  # calibration ended within the test


def test_fold_many_continues_a_restored_state_mid_calibration() -> None:
    profile = load_profile("pump")
    extractor = FeatureExtractor(profile)
    cut = profile.baseline.calibration_readings - 50
    ts, values = _stream(profile, cut + 250, seed=9)
    one = extractor.new_state()
    _one_at_a_time(extractor, one, ts[:cut], values[:cut])
    restored = AssetState.from_bytes(one.to_bytes(), profile)
    expected = _one_at_a_time(extractor, one, ts[cut:], values[cut:])
    got = extractor.fold_many([restored], [ts[cut:]], [values[cut:]])
    np.testing.assert_array_equal(got, expected)
    assert restored.to_bytes() == one.to_bytes()
    calibrating = got[:, extractor.snapshot_width - extractor.baseline_width]
    assert calibrating[0] == 1.0 and calibrating[-1] == 0.0  # calibration ended inside the call


def test_running_matches_a_python_loop_and_bounds_its_padding() -> None:
    rng = np.random.default_rng(3)
    lengths = np.array([2000, *rng.integers(1, 20, 300)])
    segments = Segments.of(np.repeat(np.arange(len(lengths)), lengths))
    assert len(segments.chunks()) > 1  # one long segment does not pad the short ones
    steps = rng.standard_normal((int(lengths.sum()), 2))
    start = rng.standard_normal((len(lengths), 2))
    sums = running(start, steps, segments)
    lows = running(start, steps, segments, np.minimum.accumulate, np.inf)
    row = 0
    for s, length in enumerate(lengths.tolist()):
        total, low = start[s].tolist(), start[s].tolist()
        for _ in range(length):
            total = [t + x for t, x in zip(total, steps[row].tolist(), strict=True)]
            low = [min(m, x) for m, x in zip(low, steps[row].tolist(), strict=True)]
            assert sums[row].tolist() == total and lows[row].tolist() == low
            row += 1


def test_times_too_far_apart_for_one_sorted_key_fold_asset_by_asset() -> None:
    """Offline files may hold any int64 time: a fold then goes one asset at a time."""
    profile = load_profile("pump")
    extractor = FeatureExtractor(profile)
    n_assets = 600  # 600 x 9e15 one-second buckets apart: past an int64 key
    times = [[far * 9 * 10**18 + 1000 * i for i in range(VECTOR_MIN)]
             for far in (0, 1) for _ in range(n_assets // 2)]
    values = [[[s.baseline + i for s in profile.sensors] for i in range(VECTOR_MIN)]] * n_assets
    one = [extractor.new_state() for _ in range(n_assets)]
    expected = np.concatenate([_one_at_a_time(extractor, state, ts, v)
                               for state, ts, v in zip(one, times, values, strict=True)])
    many = [extractor.new_state() for _ in range(n_assets)]

    np.testing.assert_array_equal(extractor.fold_many(many, times, values), expected)
    assert [s.to_bytes() for s in many] == [s.to_bytes() for s in one]

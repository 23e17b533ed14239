"""BucketedWindow against numpy over exactly the readings its buckets should hold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from assetwatch.features.profiles import WindowSpec
from assetwatch.features.windows import BucketedWindow

FULL = WindowSpec("50s", length_s=50, bucket_s=10, stats=("mean", "std", "min", "max"))
"""Five buckets of ten seconds: the window is bucket indices (head - 5, head]."""
MOMENTS = WindowSpec("50s", length_s=50, bucket_s=10, stats=("mean", "std"))
K = 2
STATS = ("mean", "std", "min", "max")


def _values(n: int, seed: int = 0) -> np.ndarray:
    """Two sensors on different scales (a temperature and a small vibration)."""
    rng = np.random.default_rng(seed)
    return np.column_stack([65.0 + 1.5 * rng.standard_normal(n), 0.2 + 0.005 * rng.random(n)])


def _jittered(n: int, seed: int = 1) -> list[int]:
    """A 1 Hz stream in ms, each reading up to 4 s late, so some arrive out of order."""
    rng = np.random.default_rng(seed)
    arrival = np.arange(n) * 1000 + rng.integers(0, 4000, n)
    return (np.arange(n) * 1000)[np.argsort(arrival, kind="stable")].tolist()


def _reference(spec: WindowSpec, timestamps: list[int]) -> tuple[list[bool], np.ndarray]:
    """Which adds are accepted, and a mask of the accepted readings inside the final window."""
    bucket_ms, n = spec.bucket_s * 1000, spec.n_buckets
    head: int | None = None
    accepted = []
    for ts in timestamps:
        index = ts // bucket_ms
        ok = head is None or index > head - n
        accepted.append(ok)
        if ok and (head is None or index > head):
            head = index
    assert head is not None
    indices = np.array(timestamps) // bucket_ms
    return accepted, np.array(accepted) & (indices > head - n) & (indices <= head)


def _filled(spec: WindowSpec, timestamps: list[int], values: np.ndarray) -> BucketedWindow:
    window = BucketedWindow(spec, k=K)
    for ts, row in zip(timestamps, values.tolist(), strict=True):
        window.add(ts, row)
    return window


def _seconds(*seconds: float) -> list[int]:
    return [int(s * 1000) for s in seconds]


SCENARIOS = {
    "one reading": _seconds(0),
    "one bucket": _seconds(0, 1, 2.5, 9.999),
    "five buckets, none expired": _seconds(0, 10, 20, 30, 45),
    "oldest bucket expires": _seconds(0, 1, 10, 20, 30, 40, 50),
    "jump expires all but the newest": _seconds(0, 5, 12, 300, 301),
    "out of order inside the window folds in": _seconds(0, 10, 40, 15, 3, 41),
    "older than the window is dropped": _seconds(0, 10, 60, 5, 61),
    "bucket at head - n is dropped": _seconds(50, 0, 9.999),
    "bucket at head - n + 1 is kept": _seconds(50, 10, 19.999),
    "negative event times": _seconds(-25, -12, -3, 1),
    "long jittered stream": _jittered(400),
}


@pytest.mark.parametrize("timestamps", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_stats_match_numpy_over_the_window(timestamps: list[int]) -> None:
    values = _values(len(timestamps))
    accepted, inside = _reference(FULL, timestamps)
    window = BucketedWindow(FULL, k=K)

    returned = [window.add(ts, row) for ts, row in zip(timestamps, values.tolist(), strict=True)]

    assert returned == accepted
    expected = values[inside]
    assert window.count == len(expected)
    for i in range(K):
        column = expected[:, i]
        assert window.mean(i) == pytest.approx(column.mean(), rel=1e-12)
        std = column.std(ddof=1) if len(column) > 1 else 0.0
        assert window.std(i) == pytest.approx(std, rel=1e-9, abs=1e-12)
        assert window.minimum(i) == column.min()
        assert window.maximum(i) == column.max()


EXPIRY = [
    # (timestamps in s, buckets left, head)
    ((0, 10, 20, 30, 40), [0, 1, 2, 3, 4], 4),
    ((0, 10, 20, 30, 40, 50), [1, 2, 3, 4, 5], 5),
    ((0, 10, 20, 30, 40, 70), [3, 4, 7], 7),
    ((0, 10, 20, 30, 40, 1000), [100], 100),
    ((0, 30, 15), [0, 1, 3], 3),
]


@pytest.mark.parametrize(("seconds", "buckets", "head"), EXPIRY)
def test_buckets_expire_once_the_head_moves_past_them(
    seconds: tuple[float, ...], buckets: list[int], head: int
) -> None:
    window = _filled(FULL, _seconds(*seconds), _values(len(seconds)))

    assert sorted(window.buckets) == buckets
    assert window.head == head
    assert window.count == sum(int(window.buckets[i][0]) for i in buckets)


def test_out_of_order_reading_inside_the_window_folds_into_its_own_bucket() -> None:
    window = _filled(FULL, _seconds(0, 40), np.array([[1.0, 10.0], [3.0, 30.0]]))

    assert window.add(15_000, [8.0, -2.0]) is True

    assert window.head == 4
    assert window.buckets[1][:3] == [1.0, 8.0, -2.0]
    assert (window.count, window.mean(0), window.maximum(0), window.minimum(1)) == (
        3,
        4.0,
        8.0,
        -2.0,
    )


@pytest.mark.parametrize("too_old_s", [0, 5, 19.999, -100])
def test_reading_older_than_the_window_is_refused_and_changes_nothing(too_old_s: float) -> None:
    window = _filled(FULL, _seconds(0, 10, 20, 70), _values(4))
    before = window.to_floats()

    assert window.add(int(too_old_s * 1000), [1e6, -1e6]) is False

    assert window.to_floats() == before
    assert window.head == 7


@pytest.mark.parametrize("spec", [FULL, MOMENTS], ids=["with extrema", "moments only"])
@pytest.mark.parametrize("split", [0, 1, 37, 200, 399])
def test_to_floats_and_load_floats_round_trip_bit_identically(spec: WindowSpec, split: int) -> None:
    timestamps, values = _jittered(400), _values(400)
    original = _filled(spec, timestamps[:split], values[:split])
    data = [-1.0, 2.0, *original.to_floats(), 99.0]

    restored = BucketedWindow(spec, k=K)
    end = restored.load_floats(data, 2)

    assert end == len(data) - 1
    assert restored.to_floats() == original.to_floats()
    assert restored.head == original.head
    for ts, row in zip(timestamps[split:], values[split:].tolist(), strict=True):
        assert restored.add(ts, row) == original.add(ts, row)
        assert restored.to_floats() == original.to_floats()
    for stat in spec.stats:
        assert restored.column(stat) == original.column(stat)


METHODS = {
    "mean": BucketedWindow.mean,
    "std": BucketedWindow.std,
    "min": BucketedWindow.minimum,
    "max": BucketedWindow.maximum,
}


@pytest.mark.parametrize("n_readings", [0, 1, 2, 60, 400])
@pytest.mark.parametrize("stat", STATS)
def test_column_equals_the_per_sensor_methods(n_readings: int, stat: str) -> None:
    window = _filled(FULL, _jittered(400)[:n_readings], _values(400)[:n_readings])

    assert window.column(stat) == [METHODS[stat](window, i) for i in range(K)]


EXTREMES = {
    # values per reading (one sensor pair each), a bucket of 10 s apart: the min or max leaves
    "minimum in the oldest bucket": [(float(v), -float(v)) for v in range(12)],
    "maximum in the oldest bucket": [(-float(v), float(v)) for v in range(12)],
    "tie with a surviving bucket": [(1.0, 1.0), (5.0, 0.0), (1.0, 1.0)] * 4,
    "spike then values near 1": [(1e6, -1e6)] + [(1.0 + v / 1e3, 1.0) for v in range(11)],
}


@pytest.mark.parametrize("rows", EXTREMES.values(), ids=EXTREMES.keys())
@pytest.mark.parametrize("step_s", [10, 23], ids=["one bucket a step", "buckets skipped"])
def test_extrema_after_expiry_equal_those_of_the_surviving_buckets(
    rows: list[tuple[float, float]], step_s: int
) -> None:
    window = BucketedWindow(FULL, k=K)
    for t, row in enumerate(rows):
        window.add(t * step_s * 1000, row)

        buckets = list(window.buckets.values())
        for i in range(K):
            assert window.minimum(i) == min(b[1 + 2 * K + i] for b in buckets)
            assert window.maximum(i) == max(b[1 + 3 * K + i] for b in buckets)
            assert window.mean(i) == pytest.approx(
                math.fsum(b[1 + i] for b in buckets) / window.count, rel=1e-12)

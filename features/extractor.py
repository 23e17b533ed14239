"""The one feature implementation: training (offline) and serving (online) both call it."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np

from assetwatch.features.baseline import (
    BaselineScores,
    baseline_scores,
    observe_sorted,
    snapshot_width,
)
from assetwatch.features.profiles import Profile
from assetwatch.features.running import Segments
from assetwatch.features.state import NO_TIME, AssetState
from assetwatch.features.window_batch import fold_sorted

Snapshots = Sequence[Sequence[float]] | np.ndarray
"""Per-reading snapshots from :meth:`FeatureExtractor.fold`, as lists or one matrix."""

VECTOR_MIN = 4
"""Readings of one asset from which :meth:`FeatureExtractor.fold_many` folds them a column
at a time. Reading and writing an asset's windows as arrays has a cost per asset; measured
with 5,000 assets, µs a reading one at a time / together: cnc 19.8 / 31.2 with one reading
each, 18.6 / 21.7 with two, 13.2 / 9.7 with four; pump 24.7 / 28.0 with two, 37.9 / 32.4
with four. Below it an asset's readings are folded one at a time."""

MIN_DENOMINATOR = 1e-9
"""Ratios and percentage changes over a smaller magnitude are 0.0, as over an exact zero.

Sensor readings that small are zero to any instrument, and dividing by them gives values of
1e30 and beyond (or inf) that no model was trained on and float32 models cannot even take.
"""


class FeatureExtractor:
    """Folds readings into an :class:`AssetState` and returns the profile's feature row."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.names = profile.feature_names
        self._k = len(profile.sensors)
        index = {name: i for i, name in enumerate(profile.sensor_names)}
        self._interactions = [
            (i.op == "product", index[i.left], index[i.right]) for i in profile.interactions
        ]
        self._zwindow = next(
            (j for j, w in enumerate(profile.windows) if w.name == profile.zscore_window), None
        )
        self._no_prev = [0.0] * (self._k + 2)
        """Snapshot fields of a reading with no previous one: flag, dt, previous values."""
        self._baseline_window = profile.baseline_window
        self._baseline_sensors = profile.baseline_sensors
        self.baseline_width = snapshot_width(profile)
        window_widths = [1 + (4 if spec.extrema else 2) * self._k for spec in profile.windows]
        self._baseline_count = 2 * self._k + 2 + sum(window_widths[: self._baseline_window])
        """Snapshot column of the baseline window's count; its sums follow."""
        self._baseline_sums = [self._baseline_count + 1 + i for i in self._baseline_sensors]
        self.snapshot_width = 2 * self._k + 2 + sum(window_widths) + self.baseline_width
        """Floats in one reading's snapshot (see :meth:`fold`)."""
        self._window_stats = [
            [(stat, j) for stat in spec.stats] for j, spec in enumerate(profile.windows)
        ]

    def new_state(self) -> AssetState:
        """The state of an asset not seen before."""
        return AssetState.empty(self.profile)

    def is_late(self, newest_ms: int, ts_ms: int, grace_ms: int) -> bool:
        """True when a reading is older than the asset's newest one by more than the grace.

        ``newest_ms`` is the asset's watermark, or :data:`NO_TIME` before its first reading.
        """
        return newest_ms != NO_TIME and ts_ms < newest_ms - grace_ms

    def fold(self, state: AssetState, ts_ms: int, values: Sequence[float]) -> list[float]:
        """Fold one reading (values in profile sensor order) in; return its snapshot.

        The snapshot holds what the reading's features derive from (its values, the previous
        reading, each window's totals after folding, then the asset's baseline totals);
        :meth:`rows` turns a batch of them into features in one vectorised pass, with the same
        IEEE operations as one at a time, and :meth:`baseline` into baseline scores.
        """
        for window in state.windows:
            window.add(ts_ms, values)
        if ts_ms > state.watermark_ms:
            state.watermark_ms = ts_ms
        prev, prev_ts = state.prev_values, state.prev_ts_ms
        snapshot = list(values)
        if prev:
            snapshot.append(1.0)
            snapshot.append((ts_ms - prev_ts) / 1000.0)
            snapshot.extend(prev)
        else:
            snapshot.extend(self._no_prev)
        for window in state.windows:
            window.snapshot_into(snapshot)
        calibrating = state.baseline.observe(self.profile, ts_ms,
                                             state.windows[self._baseline_window])
        state.baseline.snapshot_into(snapshot, calibrating,
                                     state.baseline.windows_complete(self.profile, ts_ms))
        if ts_ms >= prev_ts:
            state.prev_ts_ms = ts_ms
            state.prev_values = list(values)
        return snapshot

    def fold_many(self, states: Sequence[AssetState], timestamps: Sequence[Sequence[int]],
                  values: Sequence[Sequence[Sequence[float]]]) -> np.ndarray:
        """Fold each asset's readings into its state, in the order given; one snapshot each.

        ``timestamps[j]`` and ``values[j]`` are the readings of ``states[j]``; the snapshots
        come back asset after asset, each asset's in its order. The same as :meth:`fold` per
        reading, bit for bit (only the sign of a zero extremum may differ). The assets with
        at least :data:`VECTOR_MIN` readings, in time order, are folded together a column at
        a time (:func:`fold_sorted`, :func:`observe_sorted`); any other goes through
        :meth:`fold`.
        """
        offsets = np.cumsum([0, *map(len, timestamps)]).tolist()
        out = np.empty((offsets[-1], self.snapshot_width))
        in_order = [len(ts) >= VECTOR_MIN and self._in_order(state, ts)
                    for state, ts in zip(states, timestamps, strict=True)]
        for j, ok in enumerate(in_order):
            if not ok:
                out[offsets[j] : offsets[j + 1]] = self.snapshots(
                    [self.fold(states[j], ts, v) for ts, v in zip(timestamps[j], values[j],
                                                                  strict=True)])
        if all(in_order):
            self._fold_sorted(states, timestamps, values, out)
        elif any(in_order):
            chosen = [j for j, ok in enumerate(in_order) if ok]
            rows = [i for j in chosen for i in range(offsets[j], offsets[j + 1])]
            out[rows] = self._fold_sorted([states[j] for j in chosen],
                                          [timestamps[j] for j in chosen],
                                          [values[j] for j in chosen],
                                          np.empty((len(rows), self.snapshot_width)))
        return out

    def _fold_sorted(self, states: Sequence[AssetState], timestamps: Sequence[Sequence[int]],
                     values: Sequence[Sequence[Sequence[float]]], out: np.ndarray) -> np.ndarray:
        """:meth:`fold_many` of assets whose readings are in time order, into ``out``."""
        k, n = self._k, len(out)
        assets = Segments.of(np.repeat(np.arange(len(states)), [len(t) for t in timestamps]))
        ts = np.fromiter(chain.from_iterable(timestamps), np.int64, n)
        x = np.array(list(chain.from_iterable(values)), dtype=float).reshape(n, k)
        out[:, :k] = x
        out[:, k] = 1.0
        out[1:, k + 1] = (ts[1:] - ts[:-1]) / 1000.0
        out[1:, k + 2 : 2 * k + 2] = x[:-1]
        # an asset's first reading follows its state's previous one, if it has one
        firsts, lasts = assets.firsts, assets.lasts
        has = np.array([bool(state.prev_values) for state in states])
        prev_ts = np.array([state.prev_ts_ms for state in states], dtype=np.int64)
        prev = np.array([state.prev_values or self._no_prev[2:] for state in states])
        out[firsts, k] = has
        out[firsts, k + 1] = np.where(has, (ts[firsts] - prev_ts) / 1000.0, 0.0)
        out[firsts, k + 2 : 2 * k + 2] = np.where(has[:, None], prev, 0.0)
        contributions = np.concatenate((np.ones((n, 1)), x, x * x, x, x), axis=1)
        pos = 2 * k + 2
        for j, window in enumerate(states[0].windows):
            out[:, pos : pos + window.bucket_width] = fold_sorted(
                [state.windows[j] for state in states], assets, ts, contributions)
            pos += window.bucket_width
        means = out[:, self._baseline_sums] / out[:, self._baseline_count, None]
        out[:, pos:] = observe_sorted([state.baseline for state in states], self.profile,
                                      assets, ts, means)
        for state, last_ts, last in zip(states, ts[lasts].tolist(), x[lasts].tolist(),
                                        strict=True):
            state.watermark_ms = max(state.watermark_ms, last_ts)
            state.prev_ts_ms, state.prev_values = last_ts, last
        return out

    def _in_order(self, state: AssetState, ts_ms: Sequence[int]) -> bool:
        """True when no reading is older than the one before it (nor than the state's newest).

        Then every reading is in order for :meth:`fold` (it becomes the previous one), and
        no window finds one too old.
        """
        newest = max(state.prev_ts_ms, state.watermark_ms)
        for ts in ts_ms:
            if ts < newest:
                return False
            newest = ts
        return True

    def update(self, state: AssetState, ts_ms: int, values: Sequence[float]) -> list[float]:
        """Fold one reading in and return its feature row."""
        row: list[float] = self.rows([self.fold(state, ts_ms, values)])[0].tolist()
        return row

    def snapshots(self, snapshots: Snapshots) -> np.ndarray:
        """Snapshots as one (n, :attr:`snapshot_width`) matrix, shared by rows and baseline."""
        return np.asarray(snapshots, dtype=float).reshape(len(snapshots), self.snapshot_width)

    def baseline(self, snapshots: Snapshots) -> BaselineScores:
        """Baseline scores of the readings whose snapshots are given (see :meth:`fold`)."""
        s = self.snapshots(snapshots)
        count = s[:, self._baseline_count : self._baseline_count + 1]
        means = _divide(s[:, self._baseline_sums], count, count > 0.0)
        return baseline_scores(s[:, self.snapshot_width - self.baseline_width :], means,
                               self.profile)

    def rows(self, snapshots: Snapshots) -> np.ndarray:
        """Feature matrix (n, features) of the readings whose snapshots are given."""
        s = self.snapshots(snapshots)
        k, n = self._k, len(s)
        x = s[:, :k]
        has_prev = s[:, k : k + 1] > 0.0
        dt = s[:, k + 1 : k + 2]
        prev = s[:, k + 2 : 2 * k + 2]
        pos = 2 * k + 2
        stats: list[dict[str, np.ndarray]] = []
        for spec in self.profile.windows:
            count = s[:, pos : pos + 1]
            sums, sumsqs = s[:, pos + 1 : pos + 1 + k], s[:, pos + 1 + k : pos + 1 + 2 * k]
            pos += 1 + 2 * k
            window = {"mean": _divide(sums, count, count > 0.0),
                      "std": _std(sums, sumsqs, count)}
            if spec.extrema:
                some = count > 0.0
                window["min"] = np.where(some, s[:, pos : pos + k], 0.0)
                window["max"] = np.where(some, s[:, pos + k : pos + 2 * k], 0.0)
                pos += 2 * k
            stats.append(window)
        kinds: list[np.ndarray] = [x] if self.profile.raw else []
        for window, wanted in zip(stats, self._window_stats, strict=True):
            kinds.extend(window[stat] for stat, _ in wanted)
        if self._zwindow is not None:
            z = stats[self._zwindow]
            kinds.append(_divide(x - z["mean"], z["std"], z["std"] > 0.0))
        deltas = np.where(has_prev, x - prev, 0.0)
        if self.profile.rate_of_change:
            kinds.append(_divide(deltas, dt, (dt > 0.0) & has_prev))
        if self.profile.pct_change:
            magnitude = np.abs(prev)
            kinds.append(_divide(deltas, magnitude, (magnitude >= MIN_DENOMINATOR) & has_prev))
        # interleave per sensor: sensor 0's kinds, then sensor 1's, ...
        matrix = np.stack(kinds, axis=2).reshape(n, -1)
        extra = []
        for is_product, a, b in self._interactions:
            if is_product:
                extra.append(x[:, a] * x[:, b])
            else:
                extra.append(_divide(x[:, a], x[:, b], np.abs(x[:, b]) >= MIN_DENOMINATOR))
        if extra:
            matrix = np.column_stack([matrix, *extra])
        return matrix


def _divide(numerator: np.ndarray, denominator: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` where ``where`` holds, else 0.0 (no warnings, no inf)."""
    out = np.zeros(np.broadcast(numerator, denominator, where).shape)
    np.divide(numerator, denominator, out=out, where=where)  # ``where`` broadcasts to out
    return out


def _std(sums: np.ndarray, sumsqs: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Sample standard deviation (ddof=1) from totals; 0 below two readings."""
    enough = count >= 2.0
    safe_count = np.where(enough, count, 2.0)
    variance = (sumsqs - sums * sums / safe_count) / (safe_count - 1.0)
    return np.where(enough, np.sqrt(np.maximum(variance, 0.0)), 0.0)

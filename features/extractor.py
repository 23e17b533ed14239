"""The one feature implementation: training (offline) and serving (online) both call it."""

from __future__ import annotations

from collections.abc import Sequence

from features.profiles import Profile
from features.state import NO_TIME, AssetState

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
        self._window_stats = [
            [(stat, j) for stat in spec.stats] for j, spec in enumerate(profile.windows)
        ]

    def new_state(self) -> AssetState:
        return AssetState.empty(self.profile)

    def is_late(self, state: AssetState, ts_ms: int, grace_ms: int) -> bool:
        """True when a reading is older than the asset's newest one by more than the grace."""
        return state.watermark_ms != NO_TIME and ts_ms < state.watermark_ms - grace_ms

    def update(self, state: AssetState, ts_ms: int, values: Sequence[float]) -> list[float]:
        """Fold one reading (values in profile sensor order) in; return its feature row."""
        for window in state.windows:
            window.add(ts_ms, values)
        if ts_ms > state.watermark_ms:
            state.watermark_ms = ts_ms
        prev, prev_ts = state.prev_values, state.prev_ts_ms
        dt_s = (ts_ms - prev_ts) / 1000.0 if prev else 0.0
        row = self._row(state, values, prev, dt_s)
        if ts_ms >= prev_ts:
            state.prev_ts_ms = ts_ms
            state.prev_values = list(values)
        return row

    def _row(
        self, state: AssetState, values: Sequence[float], prev: Sequence[float], dt_s: float
    ) -> list[float]:
        """Build the row column-wise (one list per feature kind), then interleave by sensor."""
        profile, k = self.profile, self._k
        columns: list[Sequence[float]] = []
        if profile.raw:
            columns.append(values)
        for window, stats in zip(state.windows, self._window_stats, strict=True):
            for stat, _ in stats:
                columns.append(window.column(stat))
        if self._zwindow is not None:
            zw = state.windows[self._zwindow]
            means, stds = zw.column("mean"), zw.column("std")
            columns.append(
                [
                    (x - m) / sd if sd > 0.0 else 0.0
                    for x, m, sd in zip(values, means, stds, strict=False)
                ]
            )
        deltas = [x - p for x, p in zip(values, prev, strict=False)] if prev else [0.0] * k
        if profile.rate_of_change:
            columns.append([d / dt_s for d in deltas] if dt_s > 0.0 else [0.0] * k)
        if profile.pct_change:
            columns.append(
                [
                    d / abs(p) if abs(p) >= MIN_DENOMINATOR else 0.0
                    for d, p in zip(deltas, prev, strict=False)
                ]
                if prev else [0.0] * k
            )
        row = [column[i] for i in range(k) for column in columns]
        for is_product, a, b in self._interactions:
            if is_product:
                row.append(values[a] * values[b])
            else:
                b_value = values[b]
                row.append(values[a] / b_value if abs(b_value) >= MIN_DENOMINATOR else 0.0)
        return row

"""Synthetic labelled telemetry: normal operation and degradation ramps ending in failure.

Pure and seeded: the trainer draws its training set from it and the ``simulate`` verb
publishes the same kind of readings. Each sensor follows its profile's baseline and noise,
plus a slow load cycle; a degrading asset drifts by ``failure_drift`` over the ramp, then
fails, is repaired and starts again from normal.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assetwatch.features.profiles import Profile

LOAD_CYCLE_S = 600.0
START_MS = 1_700_000_000_000
"""Event time of the first reading of :func:`synthetic_fleet` (training, reference batches)."""


@dataclass
class _AssetTrack:
    asset_id: str
    phase: float
    degrading_from: int | None = None
    """Tick at which the current degradation ramp began (None: healthy)."""


@dataclass
class Block:
    """``n`` ticks of readings for every asset, in tick-major order."""

    asset_ids: list[str]
    timestamps: np.ndarray
    values: np.ndarray
    labels: np.ndarray


@dataclass
class TelemetrySimulator:
    """Readings for ``n_assets`` assets of one profile, one per asset per interval."""

    profile: Profile
    n_assets: int
    start_ms: int
    seed: int = 0
    failing: Iterable[int] = ()
    """Indices of assets that degrade from ``failing_from_s`` on (failure injection)."""
    failing_from_s: float = 0.0
    """When the failing assets start degrading, and before which no healthy asset starts to:
    after their baselines calibrate, say (a degradation seen in calibration is learnt as normal)."""
    failure_rate_per_hour: float = 0.0
    """Expected spontaneous degradation starts per healthy asset-hour (a Poisson rate, >= 0)."""
    ramp_s: float = 1200.0
    """Length of a degradation ramp, from first drift to failure."""
    asset_prefix: str | None = None
    _tick: int = field(default=0, init=False)
    _tracks: list[_AssetTrack] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        rate = self.failure_rate_per_hour
        if not rate >= 0.0:  # also refuses NaN
            raise ValueError(f"failure_rate_per_hour must be >= 0, not {rate}")
        # Poisson starts: the chance of at least one in a tick of reading_interval_s seconds.
        self._start_p = -math.expm1(-rate * self.profile.reading_interval_s / 3600.0)
        self._rng = np.random.default_rng(self.seed)
        prefix = self.asset_prefix or f"{self.profile.name}"
        self._tracks = [
            _AssetTrack(f"{prefix}-{i:03d}", float(self._rng.uniform(0, 2 * math.pi)))
            for i in range(self.n_assets)
        ]
        self._from_tick = int(self.failing_from_s / self.profile.reading_interval_s)
        for i in self.failing:
            self._tracks[i].degrading_from = self._from_tick
        sensors = self.profile.sensors
        self._baseline = np.array([s.baseline for s in sensors])
        self._noise = np.array([s.noise for s in sensors])
        self._drift = np.array([s.failure_drift for s in sensors])
        self._low = np.array([s.min for s in sensors])
        self._high = np.array([s.max for s in sensors])
        self._interval_ms = int(self.profile.reading_interval_s * 1000)
        self._ramp_ticks = max(1, int(self.ramp_s / self.profile.reading_interval_s))

    @property
    def asset_ids(self) -> list[str]:
        """The simulated assets' ids, in track order."""
        return [t.asset_id for t in self._tracks]

    def degrading(self) -> dict[str, float]:
        """Assets degrading at the current tick, with how far along their ramp (0..1).

        What a viewer needs to tell a hit from a false alarm.
        """
        out = {}
        for track in self._tracks:
            start = track.degrading_from
            if start is not None and start <= self._tick:
                out[track.asset_id] = min(1.0, (self._tick - start) / self._ramp_ticks)
        return out

    def block(self, n_ticks: int) -> Block:
        """The next ``n_ticks`` ticks for every asset."""
        n_assets, k = len(self._tracks), len(self.profile.sensors)
        values = np.empty((n_ticks, n_assets, k))
        labels = np.zeros((n_ticks, n_assets), dtype=np.int8)
        ticks = self._tick + np.arange(n_ticks)
        seconds = ticks * self.profile.reading_interval_s
        start_p = self._start_p
        for a, track in enumerate(self._tracks):
            load = 0.15 * np.sin(2 * math.pi * seconds / LOAD_CYCLE_S + track.phase)
            progress = np.zeros(n_ticks)
            for j, tick in enumerate(ticks):
                if (track.degrading_from is None and self._rng.random() < start_p
                        and tick >= self._from_tick):
                    track.degrading_from = int(tick)
                if track.degrading_from is not None and tick >= track.degrading_from:
                    ramp = (tick - track.degrading_from) / self._ramp_ticks
                    if ramp >= 1.0:  # failed, repaired: healthy again
                        track.degrading_from = None
                    else:
                        progress[j] = ramp
                        labels[j, a] = 1
            noise = self._rng.standard_normal((n_ticks, k)) * self._noise
            values[:, a, :] = (
                self._baseline * (1.0 + load[:, None] * 0.1)
                + noise * (1.0 + 2.0 * progress[:, None])
                + self._drift * progress[:, None] ** 2
            )
        np.clip(values, self._low, self._high, out=values)
        self._tick += n_ticks
        timestamps = self.start_ms + ticks * self._interval_ms
        return Block(self.asset_ids, timestamps, values, labels)

    def readings(self, n_ticks: int) -> Iterator[dict[str, Any]]:
        """The next ``n_ticks`` ticks as TelemetryReading records."""
        block = self.block(n_ticks)
        names = self.profile.sensor_names
        for t, ts in enumerate(block.timestamps.tolist()):
            for a, asset in enumerate(block.asset_ids):
                yield {
                    "event_id": f"{asset}-{ts}",
                    "asset_id": asset,
                    "asset_type": self.profile.name,
                    "timestamp": ts,
                    "sensors": dict(zip(names, block.values[t, a].tolist(), strict=True)),
                }


@dataclass(frozen=True)
class Fleet:
    """Labelled readings of a fleet, one row per reading (tick-major, then asset)."""

    asset_ids: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray
    """(rows, sensors), the profile's sensor order."""
    labels: np.ndarray


def synthetic_fleet(profile: Profile, n_assets: int, hours: float, seed: int) -> Fleet:
    """Labelled readings: half the assets go through degradation ramps that end in failure."""
    sim = TelemetrySimulator(
        profile, n_assets, START_MS, seed=seed, failure_rate_per_hour=0.9, ramp_s=1200.0
    )
    # Healthy assets never start a ramp: keep half the fleet as a clean reference.
    block = sim.block(int(hours * 3600 / profile.reading_interval_s))
    n_ticks, n = block.values.shape[:2]
    healthy = np.arange(n) % 2 == 0
    labels = block.labels.copy()
    values = block.values.copy()
    if healthy.any():
        clean = TelemetrySimulator(profile, n, START_MS, seed=seed + 1).block(n_ticks)
        values[:, healthy, :] = clean.values[:, healthy, :]
        labels[:, healthy] = 0
    return Fleet(np.tile(np.array(block.asset_ids), n_ticks), np.repeat(block.timestamps, n),
                 values.reshape(n_ticks * n, -1), labels.reshape(-1))

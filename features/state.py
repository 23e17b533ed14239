"""Per-asset feature state: windows, previous reading, baseline, and a compact byte form."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from assetwatch.errors import SerializationError
from assetwatch.features.baseline import Baseline
from assetwatch.features.profiles import Profile
from assetwatch.features.windows import BucketedWindow

_FORMAT_VERSION = 2.0
"""Bump when the layout of :meth:`AssetState.to_bytes` changes."""
NO_TIME = -1


@dataclass(slots=True)
class AssetState:
    """Everything needed to compute an asset's next feature row."""

    windows: list[BucketedWindow]
    baseline: Baseline
    watermark_ms: int = NO_TIME
    """Newest event time seen."""
    prev_ts_ms: int = NO_TIME
    """Event time of the previous in-order reading (rates of change are against it)."""
    prev_values: list[float] = field(default_factory=list)
    applied_partition: int = -1
    applied_offset: int = -1
    """Source partition and offset of the newest reading folded in (replays are not refolded)."""

    @classmethod
    def empty(cls, profile: Profile) -> AssetState:
        """The state of an asset before its first reading."""
        k = len(profile.sensors)
        return cls(windows=[BucketedWindow(spec, k) for spec in profile.windows],
                   baseline=Baseline.empty(profile))

    def to_bytes(self) -> bytes:
        """The state as table bytes, versioned; :meth:`from_bytes` reads them back."""
        floats = [
            _FORMAT_VERSION, float(self.watermark_ms), float(self.prev_ts_ms),
            float(self.applied_partition), float(self.applied_offset),
            float(len(self.prev_values)), *self.prev_values,
        ]
        for window in self.windows:
            floats.extend(window.to_floats())
        floats.extend(self.baseline.to_floats())
        return array("d", floats).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, profile: Profile) -> AssetState:
        """The state :meth:`to_bytes` wrote, or :class:`SerializationError` if ``data`` is not one.

        Every count in the layout is checked against what is there, and the data must be used
        up exactly, so a truncated or padded state fails here rather than in a later fold.
        """
        try:
            return cls._read(array("d", data), profile)
        except (ValueError, IndexError, OverflowError) as exc:
            raise SerializationError(f"feature state for profile {profile.name}: {exc}") from exc

    @classmethod
    def _read(cls, floats: array[float], profile: Profile) -> AssetState:
        if floats[0] != _FORMAT_VERSION:
            raise ValueError(f"state format {floats[0]} is not {_FORMAT_VERSION}")
        state = cls.empty(profile)
        state.watermark_ms, state.prev_ts_ms = int(floats[1]), int(floats[2])
        state.applied_partition, state.applied_offset = int(floats[3]), int(floats[4])
        n_prev = int(floats[5])
        if n_prev not in (0, len(profile.sensors)) or 6 + n_prev > len(floats):
            raise ValueError(f"{n_prev} previous values for {len(profile.sensors)} sensors")
        state.prev_values = list(floats[6 : 6 + n_prev])
        pos = 6 + n_prev
        for window in state.windows:
            pos = window.load_floats(floats, pos)
        pos = state.baseline.load_floats(floats, pos)
        if pos != len(floats):
            raise ValueError(f"{len(floats)} values where the layout holds {pos}")
        return state

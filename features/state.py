"""Per-asset feature state: windows, previous reading, baseline, and a compact byte form."""

from __future__ import annotations

import hashlib
import struct
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from assetwatch.errors import ForeignStateError, SerializationError
from assetwatch.features.baseline import Baseline
from assetwatch.features.profiles import Profile
from assetwatch.features.windows import BucketedWindow

_FORMAT_VERSION = 4.0
"""Bump when the layout of :meth:`AssetState.to_bytes` changes."""
_NO_PROFILE = 3.0
"""The previous layout, without the profile's digest; still read, so an upgrade keeps states."""
_NO_RECENT_EVENTS = 2.0
"""The layout before, without recent events either; still read."""
_READABLE = (_FORMAT_VERSION, _NO_PROFILE, _NO_RECENT_EVENTS)
NO_TIME = -1
RECENT_EVENTS = 16
"""Event ids an asset's state remembers (the newest folded in), with their content's digest."""
_DIGEST_BYTES = 6
"""48-bit digests: exact in a float64, and a chance collision among 16 ids is ~2^-44."""


_POSITION = struct.Struct("<5d")
"""The head of a stored state: format version, watermark, previous time, partition, offset."""


def source_position(data: bytes) -> tuple[int, int] | None:
    """(source partition, offset) of the newest reading stored state ``data`` holds.

    Read from the head of the bytes, without decoding the rest (any profile); None when
    ``data`` is not a state :meth:`AssetState.to_bytes` wrote.

    >>> source_position(AssetState([], Baseline(), applied_partition=2,
    ...                            applied_offset=41).to_bytes())
    (2, 41)
    >>> source_position(b"junk") is None
    True
    """
    if len(data) < _POSITION.size:
        return None
    version, _, _, partition, offset = _POSITION.unpack_from(data)
    if version not in _READABLE:
        return None
    return int(partition), int(offset)


def supersedes(new: bytes, old: bytes | None) -> bool:
    """True unless stored state ``old`` holds a newer reading of the same partition than ``new``.

    Every state is the fold of its asset's readings up to its source offset, so of two
    states the one further along its partition is the newer, whichever was written last
    (a worker that lost its partitions may write late). Unreadable or cross-partition
    pairs fall back to the last write winning.

    >>> def at(offset): return AssetState([], Baseline(), applied_partition=0,
    ...                                  applied_offset=offset).to_bytes()
    >>> supersedes(at(5), at(9)), supersedes(at(9), at(5)), supersedes(at(5), at(5))
    (False, True, True)
    >>> supersedes(at(5), None)
    True
    """
    if old is None:
        return True
    new_at, old_at = source_position(new), source_position(old)
    if new_at is None or old_at is None or new_at[0] != old_at[0]:
        return True
    return new_at[1] >= old_at[1]


def further_along(kept: bytes, stored: bytes | None) -> bool:
    """True when state ``kept`` holds readings of its partition that ``stored`` does not.

    A newer state kept aside (a batch in flight, not yet written) beats the stored one; a
    stored state as far along or further, or of another partition, is the one to use. No
    stored state at all: the kept one.

    >>> def at(offset): return AssetState([], Baseline(), applied_partition=0,
    ...                                  applied_offset=offset).to_bytes()
    >>> further_along(at(9), at(5)), further_along(at(5), at(5)), further_along(at(5), None)
    (True, False, True)
    """
    return stored is None or not supersedes(stored, kept)


def event_digest(event_id: str) -> float:
    """An event id as a float64-exact 48-bit digest (the state keeps digests, not ids)."""
    return float(int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=_DIGEST_BYTES)
                                .digest()))


def content_digest(ts_ms: int, values: Sequence[float]) -> float:
    """What a reading contributes to the features (time and values), as a 48-bit digest.

    An Avro and a JSON copy of one reading get the same digest: an exact re-send.
    """
    packed = _content_layout(len(values))(ts_ms, *values)
    return float(int.from_bytes(hashlib.blake2b(packed, digest_size=_DIGEST_BYTES).digest()))


@lru_cache(maxsize=256)
def profile_digest(name: str) -> float:
    """A profile's name as a stored state carries it (a 48-bit digest, as event ids are)."""
    return event_digest(name)


def stored_profile(data: bytes, names: Iterable[str]) -> str | None:
    """Which of the profiles ``names`` stored state ``data`` is, by its digest; None if unknown.

    A state written before the digest was kept (format 3 or 2) names no profile.

    >>> stored_profile(AssetState([], Baseline(), profile="pump").to_bytes(), ["cnc", "pump"])
    'pump'
    """
    if len(data) < _POSITION.size + 8 or _POSITION.unpack_from(data)[0] != _FORMAT_VERSION:
        return None
    (digest,) = struct.unpack_from("<d", data, _POSITION.size)
    return next((name for name in names if profile_digest(name) == digest), None)


@lru_cache(maxsize=64)
def _content_layout(k: int) -> Callable[..., bytes]:
    """Packs a time and ``k`` values as :func:`content_digest` hashes them (compiled once)."""
    return struct.Struct(f"<q{k}d").pack


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
    recent_events: list[float] = field(default_factory=list)
    """Event id digests of the newest :data:`RECENT_EVENTS` readings folded in, oldest first."""
    recent_contents: list[float] = field(default_factory=list)
    """Their content digests, in the same order."""
    profile: str = ""
    """The profile the state was made or read for (not stored: the bytes are the profile's)."""

    @classmethod
    def empty(cls, profile: Profile) -> AssetState:
        """The state of an asset before its first reading."""
        k = len(profile.sensors)
        return cls(windows=[BucketedWindow(spec, k) for spec in profile.windows],
                   baseline=Baseline.empty(profile), profile=profile.name)

    def seen(self, event: float) -> float | None:
        """The content digest of event id digest ``event`` if the state remembers it."""
        recent = self.recent_events
        # a membership test first: nearly every event is new, and a raised ValueError costs
        return self.recent_contents[recent.index(event)] if event in recent else None

    def remember(self, event: float, content: float) -> None:
        """Keep a folded event's id and content digests among the asset's recent ones."""
        self.recent_events.append(event)
        self.recent_contents.append(content)
        if len(self.recent_events) > RECENT_EVENTS:
            del self.recent_events[0], self.recent_contents[0]

    def to_bytes(self) -> bytes:
        """The state as table bytes, versioned; :meth:`from_bytes` reads them back."""
        floats = [
            _FORMAT_VERSION, float(self.watermark_ms), float(self.prev_ts_ms),
            float(self.applied_partition), float(self.applied_offset),
            profile_digest(self.profile),
            float(len(self.prev_values)), *self.prev_values,
            float(len(self.recent_events)),
            *(d for pair in zip(self.recent_events, self.recent_contents, strict=True)
              for d in pair),
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
        A state another profile wrote raises :class:`ForeignStateError`, even where the two
        layouts have the same size (states of format 3 and 2 carry no profile to check).
        """
        try:
            floats = array("d", data)
            if floats[0] == _FORMAT_VERSION and floats[5] != profile_digest(profile.name):
                raise ForeignStateError(f"the feature state is not of profile {profile.name}")
            return cls._read(floats, profile)
        except (ValueError, IndexError, OverflowError) as exc:
            raise SerializationError(f"feature state for profile {profile.name}: {exc}") from exc

    @classmethod
    def _read(cls, floats: array[float], profile: Profile) -> AssetState:
        version = floats[0]
        if version not in _READABLE:
            raise ValueError(f"state format {version} is not {_FORMAT_VERSION}")
        state = cls.empty(profile)
        state.watermark_ms, state.prev_ts_ms = int(floats[1]), int(floats[2])
        state.applied_partition, state.applied_offset = int(floats[3]), int(floats[4])
        pos = 6 if version == _FORMAT_VERSION else 5  # past the profile's digest
        n_prev = int(floats[pos])
        if n_prev not in (0, len(profile.sensors)) or pos + 1 + n_prev > len(floats):
            raise ValueError(f"{n_prev} previous values for {len(profile.sensors)} sensors")
        state.prev_values = list(floats[pos + 1 : pos + 1 + n_prev])
        pos += 1 + n_prev
        if version != _NO_RECENT_EVENTS:
            pos = state._read_recent(floats, pos)
        for window in state.windows:
            pos = window.load_floats(floats, pos)
        pos = state.baseline.load_floats(floats, pos)
        if pos != len(floats):
            raise ValueError(f"{len(floats)} values where the layout holds {pos}")
        return state

    def _read_recent(self, floats: array[float], pos: int) -> int:
        n = int(floats[pos])
        if not 0 <= n <= RECENT_EVENTS or pos + 1 + 2 * n > len(floats):
            raise ValueError(f"{n} recent events where at most {RECENT_EVENTS} are kept")
        pairs = floats[pos + 1 : pos + 1 + 2 * n]
        self.recent_events, self.recent_contents = list(pairs[::2]), list(pairs[1::2])
        return pos + 1 + 2 * n

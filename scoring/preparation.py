"""Reading preparation: decode, validate and fold each reading into its asset's state.

Readings are folded in arrival order, as the offline path does; a reading that cannot be
folded leaves as a dead letter with its reason. No I/O: the states come from a callable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assetwatch.errors import ForeignStateError, InvalidReadingError, SerializationError
from assetwatch.features.baseline import Baseline
from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.profiles import Profile
from assetwatch.features.state import (
    AssetState,
    content_digest,
    event_digest,
    stored_profile,
)
from assetwatch.features.validation import check_reading
from assetwatch.schemas.codecs import HEADER_LEN, MAGIC, codec
from assetwatch.schemas.telemetry_reader import check_schema as check_reader_schema
from assetwatch.schemas.telemetry_reader import decode_reading
from assetwatch.scoring.dead_letters import DeadLetterWriter, error_headers
from assetwatch.scoring.partitioner import PRODUCER_FIX, partition_for
from assetwatch.scoring.records import Inbound, Outbound
from assetwatch.scoring.state_cache import DecodedStates
from assetwatch.settings import Settings
from assetwatch.text import loggable

log = logging.getLogger(__name__)

IMPLAUSIBLE_AHEAD_MS = 86_400_000
"""A stored watermark this far past now (beyond the future skew a reading may have) is no
clock's skew but a damaged state: kept, it would make every reading of the asset late."""

LoadState = Callable[[bytes], bytes | None]
"""The stored bytes of an asset's state, or None if it has none."""

LogEnds = Mapping[int, int]
"""Per partition of a batch, the end of its log (the high watermark) when the batch was taken."""


@dataclass(slots=True)
class Scorable:
    """A reading folded into its asset's state, waiting for its batch's model call."""

    inbound: Inbound
    reading: dict[str, Any]


@dataclass(slots=True)
class _Unfolded:
    """An asset's readings taken so far in the batch, folded together when it is read."""

    state: AssetState
    profile: str
    newest_ms: int
    """The asset's watermark with these readings (a later one is late against it)."""
    timestamps: list[int] = field(default_factory=list)
    values: list[list[float]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    """Their places in the profile's scorable readings."""
    folded: list[tuple[list[int], np.ndarray]] = field(default_factory=list)
    """Readings folded already (before a baseline reset): their places and snapshots."""

    def folded_as(self, snapshots: np.ndarray) -> None:
        """The readings taken since the last fold are folded, to ``snapshots``."""
        self.folded.append((self.rows, snapshots))
        self.timestamps, self.values, self.rows = [], [], []


def _fold_taken(extractor: FeatureExtractor, assets: Sequence[_Unfolded]) -> None:
    """Fold the readings each of ``assets`` (of one profile) took since its last fold."""
    assets = [taken for taken in assets if taken.rows]
    if not assets:
        return
    snapshots = extractor.fold_many([taken.state for taken in assets],
                                    [taken.timestamps for taken in assets],
                                    [taken.values for taken in assets])
    start = 0
    for taken in assets:
        end = start + len(taken.rows)
        taken.folded_as(snapshots[start:end])
        start = end


@dataclass
class Prepared:
    """A batch after feature extraction, before scoring."""

    by_profile: dict[str, list[Scorable]] = field(default_factory=dict)
    snapshots: dict[str, np.ndarray] = field(default_factory=dict)
    """Per profile, the snapshot (:meth:`FeatureExtractor.fold`) of each scorable reading,
    row-aligned with ``by_profile``; rows are built from them per batch."""
    dead_letters: list[Outbound] = field(default_factory=list)
    dead_letter_reasons: list[str] = field(default_factory=list)
    states: dict[bytes, AssetState] = field(default_factory=dict)
    """States of the batch's assets, loaded once per batch."""
    loaded: dict[bytes, bytes | None] = field(default_factory=dict)
    """The stored bytes each state was loaded from."""
    changed: dict[bytes, int] = field(default_factory=dict)
    """Assets whose state changed, with the partition their readings came from."""
    replayed: int = 0
    """Readings folded (so also published) before a restart: skipped, not published twice."""
    resets: int = 0
    """BaselineReset orders applied."""
    now_ms: int = 0
    """The time the batch was taken (its readings' future and past limits)."""
    log_ends: LogEnds = field(default_factory=dict)
    """Where the batch's partitions ended when it was taken: no state applied an offset past."""


class Preparer:
    """Turns a batch's messages into scorable readings and dead letters, state by state."""

    def __init__(
        self,
        settings: Settings,
        profiles: Mapping[str, Profile],
        extractors: Mapping[str, FeatureExtractor],
        clock: Callable[[], float] = time.time,
        partitions: int | None = None,
    ) -> None:
        self._settings = settings
        self._partitions = partitions
        """The telemetry topic's partition count: readings on another partition than their
        key's murmur2 one are dead-lettered (None: unchecked, for inputs of unknown origin)."""
        self._profiles = dict(profiles)
        self._extractors = extractors
        self._clock = clock
        self._telemetry = codec("TelemetryReading")
        self._reading_header = self._telemetry.header
        check_reader_schema(self._reading_header)
        self._dead_letter = DeadLetterWriter(settings.max_message_bytes, clock)
        self._reset_header = codec("BaselineReset").header
        # the batches in flight and the one being taken: their states all stay decoded
        self._decoded = DecodedStates((settings.batches_in_flight + 1) * settings.batch_max_events,
                                      self._profiles)
        self._grace_ms = int(settings.late_grace_s * 1000)
        self._future_ms = int(settings.max_future_skew_s * 1000)
        self._past_ms = int(settings.max_past_age_s * 1000)

    def prepare(self, batch: Sequence[Inbound], load_state: LoadState,
                log_ends: LogEnds | None = None) -> Prepared:
        """Decode, validate and fold every reading into its asset's state, in order.

        ``log_ends``: where the batch's partitions ended (unknown ones are not checked).
        """
        now_ms = int(self._clock() * 1000)
        prepared = Prepared(now_ms=now_ms, log_ends=log_ends or {})
        unfolded: dict[bytes, _Unfolded] = {}
        for inbound in batch:
            if inbound.value is not None and inbound.value.startswith(self._reset_header):
                self._reset(prepared, inbound, load_state, unfolded)
                continue
            reading: dict[str, Any] | None = None
            try:
                reading = self._decode(inbound)
                profile, values = check_reading(reading, self._profiles, now_ms, self._future_ms,
                                                self._past_ms, self._settings.max_id_length)
                taken = self._take(prepared, inbound, reading, profile, values, load_state,
                                   unfolded)
            except InvalidReadingError as exc:
                self.reject(prepared, inbound, exc.reason, exc.detail, reading)
                continue
            if taken is None:
                prepared.replayed += 1
                continue
            scorable = prepared.by_profile.setdefault(profile.name, [])
            taken.rows.append(len(scorable))
            scorable.append(Scorable(inbound, reading))
        self._fold(prepared, unfolded.values())
        return prepared

    def forget(self) -> None:
        """Drop the states kept from earlier batches (one failed: see scoring/state_cache.py)."""
        self._decoded.clear()

    def encode_states(self, prepared: Prepared) -> dict[bytes, tuple[int, bytes]]:
        """The changed states as bytes; every state of the batch is kept decoded for the next."""
        changed = {}
        for asset, partition in prepared.changed.items():
            raw = prepared.states[asset].to_bytes()
            changed[asset] = (partition, raw)
            self._decoded.keep(asset, raw, prepared.states[asset])
        for asset, stored in prepared.loaded.items():
            if asset not in changed and stored is not None:
                self._decoded.keep(asset, stored, prepared.states[asset])
        return changed

    def reject(
        self, prepared: Prepared, inbound: Inbound, reason: str, detail: str,
        reading: Mapping[str, Any] | None,
    ) -> None:
        """Dead-letter ``inbound`` for ``reason``, with what its reading told of it."""
        key, value = self._dead_letter.build(
            inbound, reason, _utf8(detail) or detail.encode("utf-8", "backslashreplace").decode(),
            _utf8(reading.get("event_id")) if reading else None,
            _utf8(reading.get("asset_id")) if reading else None,
        )
        prepared.dead_letters.append(Outbound(key, value, None,
                                              error_headers(inbound, reason, detail)))
        prepared.dead_letter_reasons.append(reason)

    def _decode(self, inbound: Inbound) -> dict[str, Any]:
        value = inbound.value
        if value is None:
            raise InvalidReadingError("undecodable", "message has no value")
        if len(value) > self._settings.max_payload_bytes:
            raise InvalidReadingError(
                "oversized", f"{len(value)} bytes > limit {self._settings.max_payload_bytes}"
            )
        try:
            if value.startswith(self._reading_header):
                return decode_reading(value, HEADER_LEN)
            if value.startswith(MAGIC):  # an earlier schema's reading, or not a reading
                return self._telemetry.decode(value)
            if value.lstrip()[:1] == b"{":
                return self._telemetry.decode_json(value)
        except SerializationError as exc:
            reason = "schema_mismatch" if value.lstrip()[:1] == b"{" else "undecodable"
            raise InvalidReadingError(reason, str(exc)) from exc
        raise InvalidReadingError("undecodable", f"neither Avro nor JSON: {value[:16]!r}")

    def _take(
        self,
        prepared: Prepared,
        inbound: Inbound,
        reading: dict[str, Any],
        profile: Profile,
        values: list[float],
        load_state: LoadState,
        unfolded: dict[bytes, _Unfolded],
    ) -> _Unfolded | None:
        """Take the reading for folding with its asset's others; None if its state holds it.

        Outputs are delivered before states are written, so a state that holds a reading
        proves its prediction or dead letter was already published (a replay).
        """
        asset = reading["asset_id"].encode()
        if inbound.key != asset:
            # Feature state is partitioned by the message key: a reading keyed otherwise
            # could land beside another worker's copy of the asset's state.
            raise InvalidReadingError(
                "key_mismatch", f"message key {inbound.key!r} is not the asset id {asset!r}"
            )
        self._check_partition(inbound, asset)
        state = self._state(prepared, asset, profile, load_state)
        ts = reading["timestamp"]
        if _holds(state, inbound):
            return None
        event, content = event_digest(reading["event_id"]), content_digest(ts, values)
        _refuse_known(state, event, content, reading["event_id"])
        taken = unfolded.get(asset)
        if taken is None:
            taken = unfolded[asset] = _Unfolded(state, profile.name, state.watermark_ms)
        if self._extractors[profile.name].is_late(taken.newest_ms, ts, self._grace_ms):
            raise InvalidReadingError(
                "late", f"timestamp {ts} is {taken.newest_ms - ts} ms behind the asset's newest "
                f"reading (grace {self._grace_ms} ms)",
            )
        taken.newest_ms = max(taken.newest_ms, ts)
        taken.timestamps.append(ts)
        taken.values.append(values)
        state.remember(event, content)
        state.applied_partition, state.applied_offset = inbound.partition, inbound.offset
        prepared.changed[asset] = inbound.partition
        return taken

    def _fold(self, prepared: Prepared, unfolded: Iterable[_Unfolded]) -> None:
        """Fold each asset's taken readings into its state; place their snapshots by profile."""
        by_profile: dict[str, list[_Unfolded]] = {}
        for taken in unfolded:
            by_profile.setdefault(taken.profile, []).append(taken)
        for profile, assets in by_profile.items():
            extractor = self._extractors[profile]
            _fold_taken(extractor, assets)
            scorable = prepared.by_profile.get(profile)
            if not scorable:  # every reading of the profile was refused
                continue
            snapshots = prepared.snapshots[profile] = np.empty(
                (len(scorable), extractor.snapshot_width))
            for taken in assets:
                for rows, folded in taken.folded:
                    snapshots[rows] = folded

    def _check_partition(self, inbound: Inbound, asset: bytes) -> None:
        """Refuse a message off its asset's partition: its state would split in two."""
        if self._partitions is None:
            return
        expected = partition_for(asset, self._partitions)
        if inbound.partition != expected:
            raise InvalidReadingError(
                "wrong_partition", f"key {asset!r} belongs on partition {expected} of "
                f"{self._partitions} (murmur2), it arrived on {inbound.partition}: {PRODUCER_FIX}")

    def _state(self, prepared: Prepared, asset: bytes, profile: Profile,
               load_state: LoadState) -> AssetState:
        """The asset's state in this batch, loaded on its first reading.

        Raises :class:`InvalidReadingError` when the state is another served profile's: an
        asset's readings must keep one type, or they would fold into windows of other sensors.
        A stored state whose profile digest names no served profile (damaged, or of a profile
        this worker does not serve) is unreadable here, as is one whose newest reading is a
        day or more ahead of now: the asset starts afresh, logged. A state that claims to
        have applied an offset at or past its partition's end keeps its features but not
        that claim (logged), or every reading up to it would be skipped as a replay.
        """
        state = prepared.states.get(asset)
        if state is None:
            raw = load_state(asset)
            try:
                state = self._decoded.load(asset, profile, raw)
            except ForeignStateError:  # stored by another served profile (before a restart)
                raise _type_changed(asset, stored_profile(raw or b"", self._profiles) or "other",
                                    profile) from None
            if state.watermark_ms > prepared.now_ms + self._future_ms + IMPLAUSIBLE_AHEAD_MS:
                log.error("feature state of %s has its newest reading at %d ms, a day or more "
                          "ahead of now: damaged, starting it afresh", loggable(asset),
                          state.watermark_ms)
                state = AssetState.empty(profile)
            _drop_impossible_position(state, asset, prepared.log_ends)
            prepared.loaded[asset], prepared.states[asset] = raw, state
        if state.profile != profile.name:
            raise _type_changed(asset, state.profile, profile)
        return state

    def _reset(self, prepared: Prepared, inbound: Inbound, load_state: LoadState,
               unfolded: dict[bytes, _Unfolded]) -> None:
        """A BaselineReset: the asset calibrates afresh from its next reading."""
        try:
            order = codec("BaselineReset").decode(inbound.value or b"")
            profile = self._profiles.get(order["asset_type"])
            if profile is None:
                raise InvalidReadingError("unknown_asset_type",
                                          f"no profile {order['asset_type']!r} is served")
            asset = order["asset_id"].encode()
            if inbound.key != asset:
                raise InvalidReadingError("key_mismatch", f"message key {inbound.key!r} is not "
                                          f"the asset id {asset!r}")
            self._check_partition(inbound, asset)
            state = self._state(prepared, asset, profile, load_state)
        except SerializationError as exc:
            self.reject(prepared, inbound, "undecodable", str(exc), None)
            return
        except InvalidReadingError as exc:
            self.reject(prepared, inbound, exc.reason, exc.detail, None)
            return
        if _holds(state, inbound):
            return
        if asset in unfolded:  # its readings before the order fold into the old baseline
            _fold_taken(self._extractors[profile.name], [unfolded[asset]])
        state.baseline = Baseline.empty(profile)
        state.applied_partition, state.applied_offset = inbound.partition, inbound.offset
        prepared.changed[asset] = inbound.partition
        prepared.resets += 1
        log.info("baseline of %s %r reset: it calibrates afresh", profile.name, asset)


def _type_changed(asset: bytes, stored: str, profile: Profile) -> InvalidReadingError:
    """An asset's readings must keep one type, or they would fold into windows of other sensors."""
    return InvalidReadingError("asset_type_changed", f"asset {asset!r} has {stored} readings; "
                               f"this one says {profile.name}")


def _refuse_known(state: AssetState, event: float, content: float, event_id: str) -> None:
    """Dead-letter an event id the asset's state remembers.

    ``resent`` when the content is the same (an exact re-send, not folded twice),
    ``duplicate_event`` when it differs.
    """
    known = state.seen(event)
    if known is None:
        return
    if known == content:
        raise InvalidReadingError("resent", f"event {loggable(event_id)} was already folded "
                                  "in: an exact re-send")
    raise InvalidReadingError("duplicate_event", f"event id {loggable(event_id)} was already "
                              "used by another reading of this asset")


def _drop_impossible_position(state: AssetState, asset: bytes, log_ends: LogEnds) -> None:
    """Forget the offset ``state`` applied if its partition's log has not reached it.

    Every offset a worker applied was below the log's end then, and the end only grows; a
    state past it outlived its topic (deleted and created again: offsets start at 0 anew)
    or is damaged.
    """
    end = log_ends.get(state.applied_partition)
    if end is not None and state.applied_offset >= end:
        log.error("feature state of %s applied offset %d of partition %d, whose log ends at "
                  "%d: its topic was created again or the state is damaged; its readings are "
                  "taken as new from here (its features are kept)", loggable(asset),
                  state.applied_offset, state.applied_partition, end)
        state.applied_partition = state.applied_offset = -1


def _holds(state: AssetState, inbound: Inbound) -> bool:
    """True when the state already holds this message (a replay after a restart)."""
    return state.applied_partition == inbound.partition and state.applied_offset >= inbound.offset


def _utf8(value: object) -> str | None:
    """``value`` if it is a str a dead letter can carry (UTF-8 encodable), else None.

    The codecs already refuse such strings; this keeps a dead letter encodable whatever
    reached it, since a dead letter that fails to encode would take its batch down.
    """
    if not isinstance(value, str):
        return None
    if value.isascii():
        return value
    try:
        value.encode()
    except UnicodeEncodeError:
        return None
    return value

"""The broker-free core of the telemetry agent: raw messages in, encoded records out.

``prepare`` decodes, validates and folds each reading into its asset's feature state (in
arrival order, as the offline path does); ``score`` makes one model call per profile for the
whole batch. Every input leaves as exactly one prediction or one dead letter.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import partial
from typing import Any

import numpy as np

from assetwatch.errors import InvalidReadingError, SerializationError
from assetwatch.features.baseline import Baseline, BaselineScores
from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.profiles import Profile
from assetwatch.features.state import AssetState, content_digest, event_digest
from assetwatch.features.validation import check_reading
from assetwatch.models.bundle import BatchScores, ScoringModel
from assetwatch.schemas.codecs import HEADER_LEN, MAGIC, codec
from assetwatch.schemas.prediction_writer import check_schema, encode_prediction
from assetwatch.schemas.telemetry_reader import check_schema as check_reader_schema
from assetwatch.schemas.telemetry_reader import decode_reading
from assetwatch.schemas.wire import model_headers
from assetwatch.scoring.alerts import AssetAlerts
from assetwatch.scoring.dead_letters import DeadLetterWriter, error_headers
from assetwatch.scoring.drift import DriftAlerts
from assetwatch.scoring.guard import non_finite_rows
from assetwatch.scoring.outcome import RECENT_PREDICTIONS, Outcome
from assetwatch.scoring.partitioner import PRODUCER_FIX, partition_for
from assetwatch.scoring.records import Inbound, Outbound, Output
from assetwatch.scoring.shadow import Shadows, shadow_records
from assetwatch.settings import Settings
from assetwatch.text import loggable

log = logging.getLogger(__name__)

DECODED_STATES_KEPT = 4096
"""Assets whose decoded state a processor keeps between batches (~30 KB each)."""

_FLOAT32_MAX = float(np.finfo(np.float32).max)
"""sklearn estimators cast their input to float32 and reject it if any value overflows."""


@dataclass(slots=True)
class _Scorable:
    inbound: Inbound
    reading: dict[str, Any]
    features: list[float]
    """The reading's snapshot (:meth:`FeatureExtractor.fold`); rows are built per batch."""


@dataclass(frozen=True)
class _Rows:
    """One profile's scorable items and their snapshot and feature matrices, row-aligned."""

    items: list[_Scorable]
    snapshots: np.ndarray
    features: np.ndarray

    def keep(self, mask: np.ndarray) -> _Rows:
        """The rows ``mask`` selects."""
        items = [item for item, ok in zip(self.items, mask.tolist(), strict=True) if ok]
        return _Rows(items, self.snapshots[mask], self.features[mask])


@dataclass
class Prepared:
    """A batch after feature extraction, before scoring."""

    by_profile: dict[str, list[_Scorable]] = field(default_factory=dict)
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


def _scored(base: dict[str, Any], model: ScoringModel, scores: BatchScores,
            features: np.ndarray, i: int) -> dict[str, Any]:
    """A Prediction record: ``base`` (ids, times) with row ``i``'s scores from ``model``."""
    names, row = model.bundle.feature_names, features[i]
    top = [{"name": names[j], "value": float(row[j]), "z_score": z}
           for j, z in zip(scores.top_index[i].tolist(), scores.top_z[i].tolist(), strict=True)]
    return {
        **base,
        "anomaly_score": float(scores.anomaly_score[i]),
        "is_anomaly": bool(scores.is_anomaly[i]),
        "failure_probability": float(scores.failure_probability[i]),
        "model_name": model.name,
        "model_version": model.version,
        "top_features": top,
    }


class BatchProcessor:
    """Turns a batch of telemetry messages into predictions and dead letters."""

    def __init__(
        self,
        settings: Settings,
        profiles: Mapping[str, Profile],
        models: Callable[[str], ScoringModel],
        clock: Callable[[], float] = time.time,
        shadows: Shadows | None = None,
        partitions: int | None = None,
    ) -> None:
        self._settings = settings
        self._partitions = partitions
        """The telemetry topic's partition count: readings on another partition than their
        key's murmur2 one are dead-lettered (None: unchecked, for inputs of unknown origin)."""
        self._profiles = dict(profiles)
        self._extractors = {name: FeatureExtractor(p) for name, p in profiles.items()}
        self._models = models
        self._clock = clock
        self._shadows: Shadows = {} if shadows is None else shadows
        """The challenger of each shadow-scored profile (the scorer swaps entries)."""
        self._telemetry = codec("TelemetryReading")
        self._reading_header = self._telemetry.header
        check_reader_schema(self._reading_header)
        header = codec("Prediction").header
        check_schema(header)
        self._encode = partial(encode_prediction, header)
        self._drift = DriftAlerts(settings)
        self._asset_alerts = AssetAlerts(settings, clock)
        self._dead_letter = DeadLetterWriter(settings.max_message_bytes, clock)
        self._reset_header = codec("BaselineReset").header
        self._decoded: OrderedDict[bytes, tuple[bytes, AssetState]] = OrderedDict()
        """Recently used states, decoded, with the bytes they were stored as (LRU)."""
        self._grace_ms = int(settings.late_grace_s * 1000)
        self._future_ms = int(settings.max_future_skew_s * 1000)
        self._past_ms = int(settings.max_past_age_s * 1000)

    def process(
        self, batch: Sequence[Inbound], load_state: Callable[[bytes], bytes | None]
    ) -> Outcome:
        """:meth:`prepare` then :meth:`score`: the whole batch, one model call per profile."""
        return self.score(self.prepare(batch, load_state))

    def prepare(
        self, batch: Sequence[Inbound], load_state: Callable[[bytes], bytes | None]
    ) -> Prepared:
        """Decode, validate and fold every reading into its asset's state, in order."""
        prepared = Prepared()
        now_ms = int(self._clock() * 1000)
        for inbound in batch:
            if inbound.value is not None and inbound.value.startswith(self._reset_header):
                self._reset(prepared, inbound, load_state)
                continue
            reading: dict[str, Any] | None = None
            try:
                reading = self._decode(inbound)
                profile, values = check_reading(reading, self._profiles, now_ms, self._future_ms,
                                                self._past_ms, self._settings.max_id_length)
                features = self._fold(prepared, inbound, reading, profile, values, load_state)
            except InvalidReadingError as exc:
                self._reject(prepared, inbound, exc.reason, exc.detail, reading)
                continue
            if features is None:
                prepared.replayed += 1
                continue
            prepared.by_profile.setdefault(profile.name, []).append(
                _Scorable(inbound, reading, features)
            )
        return prepared

    def score(self, prepared: Prepared) -> Outcome:
        """One model call per profile for the batch; encode predictions."""
        out = Outcome(dead_letter_reasons=prepared.dead_letter_reasons,
                      replayed=prepared.replayed)
        out.records[Output.DEAD_LETTER] = prepared.dead_letters
        event_ms: list[np.ndarray] = []
        probabilities: list[np.ndarray] = []
        now_ms = int(self._clock() * 1000)
        for profile, all_items in prepared.by_profile.items():
            rows = self._scorable(prepared, profile, all_items)
            if rows.items and (scored := self._score_profile(prepared, out, profile, rows,
                                                             now_ms)) is not None:
                event_ms.append(scored[0])
                probabilities.append(scored[1])
        out.states = self._encode_states(prepared)
        out.event_timestamps = _joined(event_ms, np.int64)
        out.failure_probabilities = _joined(probabilities, float)
        out.drift = self._drift.status()
        return out

    def _score_profile(self, prepared: Prepared, out: Outcome, profile: str, rows: _Rows,
                       now_ms: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Score one profile's rows: the served models, then each asset's own baseline.

        Returns the event times and failure probabilities of the published rows.
        """
        try:
            model = self._models(profile)
            scores = model.bundle.score(rows.features)
        except Exception as exc:  # a model failing must not take the batch down
            log.exception("scoring %d %s readings failed", len(rows.items), profile)
            for item in rows.items:
                self._reject(prepared, item.inbound, "scoring_failed", repr(exc), item.reading)
            return None
        rows, scores = self._finite_only(prepared, model, rows, scores)
        if not rows.items:
            return None
        items, features = rows.items, rows.features
        baseline = self._extractors[profile].baseline(rows.snapshots)
        threshold = self._profiles[profile].baseline.threshold
        scores = replace(scores, is_anomaly=~baseline.calibrating & (baseline.score > threshold))
        out.anomalies += int(scores.is_anomaly.sum())
        event_ms = np.fromiter((item.reading["timestamp"] for item in items), np.int64,
                               len(items))
        # Drift compares rows like the training reference's: judged, every window complete.
        watched = ~baseline.calibrating & baseline.windows_complete
        if watched.any():
            out.records[Output.DRIFT_ALERT].extend(
                Outbound(key, value) for key, value in self._drift.observe(
                    profile, model, features[watched], _rows(scores, watched), event_ms[watched]))
        records = self._publish_rows(out, items, profile, model, scores, features, now_ms,
                                     baseline)
        self._shadow_score(out, profile, features, records, scores)
        return event_ms, np.asarray(scores.failure_probability, dtype=float)

    def _shadow_score(self, out: Outcome, profile: str, features: np.ndarray,
                      records: list[dict[str, Any]], scores: BatchScores) -> None:
        """The challenger's predictions of the same rows, if ``profile`` is shadow-scored."""
        challenger = self._shadows.get(profile)
        if challenger is None:
            return
        shadow = shadow_records(challenger, features, records, scores, _scored)
        if shadow is not None:
            out.records[Output.SHADOW_PREDICTION].extend(
                Outbound(r["asset_id"].encode(), self._encode(r), None,
                         model_headers(r["model_name"], r["model_version"]))
                for r in shadow[0])
            out.shadow[profile] = shadow[1]

    def _publish_rows(self, out: Outcome, items: list[_Scorable], profile: str,
                      model: ScoringModel, scores: BatchScores, features: np.ndarray,
                      now_ms: int, baseline: BaselineScores) -> list[dict[str, Any]]:
        """Each row's Prediction, published; its asset alert, unless it is calibrating."""
        headers = model_headers(model.name, model.version)
        calibrating = baseline.calibrating.tolist()
        baseline_score = baseline.score.tolist()
        newest: dict[str, int] = {}
        records = []
        predictions = out.records[Output.PREDICTION]
        asset_alerts = out.records[Output.ASSET_ALERT]
        for i, item in enumerate(items):
            reading = item.reading
            record = _scored({
                "asset_id": reading["asset_id"],
                "asset_type": profile,
                "event_id": reading["event_id"],
                "event_timestamp": reading["timestamp"],
                "processed_timestamp": now_ms,
                "calibrating": calibrating[i],
                "baseline_score": baseline_score[i],
            }, model, scores, features, i)
            records.append(record)
            asset, key = record["asset_id"], item.inbound.key
            out.seen[asset] = (item.inbound.partition, profile, record["event_timestamp"])
            encoded = self._encode(record)
            predictions.append(Outbound(key, encoded, item.inbound, headers))
            out.recent.setdefault(asset, []).append(encoded)
            newest[asset] = i
            if not calibrating[i]:
                alert = self._asset_alerts.observe(record, model, record["top_features"])
                if alert is not None:
                    asset_alerts.append(Outbound(key, alert))
        for asset, i in newest.items():
            del out.recent[asset][:-RECENT_PREDICTIONS]
            # a copy: a view would keep the whole batch's feature matrix alive in the index
            out.latest[asset] = (model.bundle.feature_names, features[i].copy())
        return records

    def _encode_states(self, prepared: Prepared) -> dict[bytes, tuple[int, bytes]]:
        """The changed states as bytes; every state of the batch is kept decoded for the next."""
        changed = {}
        for asset, partition in prepared.changed.items():
            raw = prepared.states[asset].to_bytes()
            changed[asset] = (partition, raw)
            self._keep(asset, raw, prepared.states[asset])
        for asset, stored in prepared.loaded.items():
            if asset not in changed and stored is not None:
                self._keep(asset, stored, prepared.states[asset])
        return changed

    def _keep(self, asset: bytes, raw: bytes, state: AssetState) -> None:
        self._decoded[asset] = (raw, state)
        self._decoded.move_to_end(asset)
        while len(self._decoded) > DECODED_STATES_KEPT:
            self._decoded.popitem(last=False)

    def _scorable(self, prepared: Prepared, profile: str, items: list[_Scorable]) -> _Rows:
        """The items whose feature rows the model can take, with their matrices.

        sklearn refuses a whole batch over one value beyond float32 range, so such rows are
        dead-lettered one by one and the rest still scored. Their readings stay folded into
        the asset state: each reading was valid, only the feature row derived from it is not.
        """
        extractor = self._extractors[profile]
        snapshots = extractor.snapshots([item.features for item in items])
        features = extractor.rows(snapshots)
        rows = _Rows(items, snapshots, features)
        # Two reductions, no temporary matrix, in the usual case; NaN propagates through
        # min/max and compares False, so it takes the slow path too.
        if features.min() > -_FLOAT32_MAX and features.max() < _FLOAT32_MAX:
            return rows
        # np.isfinite(x) & (np.abs(x) < max) in one test: NaN compares False, inf is not below.
        within = np.abs(features) < _FLOAT32_MAX
        fits = within.all(axis=1)
        names = extractor.names
        for i in np.flatnonzero(~fits).tolist():
            j = int(np.argmin(within[i]))
            self._reject(
                prepared, items[i].inbound, "non_finite_feature",
                f"feature {names[j]} is {float(features[i, j])}, beyond the float32 range "
                "the model takes",
                items[i].reading,
            )
        return rows.keep(fits)

    def _finite_only(self, prepared: Prepared, model: ScoringModel, rows: _Rows,
                     scores: BatchScores) -> tuple[_Rows, BatchScores]:
        """The rows with finite scores; the others are dead-lettered (:mod:`scoring.guard`)."""
        bad = non_finite_rows(model, scores)
        if not bad:
            return rows, scores
        for i, detail in bad.items():
            item = rows.items[i]
            self._reject(prepared, item.inbound, "scoring_failed", detail, item.reading)
        keep = np.array([i not in bad for i in range(len(rows.items))])
        return rows.keep(keep), scores.rows(keep)

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

    def _fold(
        self,
        prepared: Prepared,
        inbound: Inbound,
        reading: dict[str, Any],
        profile: Profile,
        values: list[float],
        load_state: Callable[[bytes], bytes | None],
    ) -> list[float] | None:
        """The reading's feature snapshot, or None if its state already holds it (a replay).

        Outputs are delivered before states are written, so a state that holds a reading
        proves its prediction or dead letter was already published.
        """
        extractor = self._extractors[profile.name]
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
        if extractor.is_late(state, ts, self._grace_ms):
            raise InvalidReadingError(
                "late", f"timestamp {ts} is {state.watermark_ms - ts} ms behind the asset's newest "
                f"reading (grace {self._grace_ms} ms)",
            )
        features = extractor.fold(state, ts, values)
        state.remember(event, content)
        state.applied_partition, state.applied_offset = inbound.partition, inbound.offset
        prepared.changed[asset] = inbound.partition
        return features

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
               load_state: Callable[[bytes], bytes | None]) -> AssetState:
        """The asset's state in this batch, loaded on its first reading."""
        state = prepared.states.get(asset)
        if state is None:
            raw = prepared.loaded[asset] = load_state(asset)
            state = prepared.states[asset] = self._load(asset, profile, raw)
        return state

    def _reset(self, prepared: Prepared, inbound: Inbound,
               load_state: Callable[[bytes], bytes | None]) -> None:
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
        except SerializationError as exc:
            self._reject(prepared, inbound, "undecodable", str(exc), None)
            return
        except InvalidReadingError as exc:
            self._reject(prepared, inbound, exc.reason, exc.detail, None)
            return
        state = self._state(prepared, asset, profile, load_state)
        if _holds(state, inbound):
            return
        state.baseline = Baseline.empty(profile)
        state.applied_partition, state.applied_offset = inbound.partition, inbound.offset
        prepared.changed[asset] = inbound.partition
        prepared.resets += 1
        log.info("baseline of %s %r reset: it calibrates afresh", profile.name, asset)

    def _load(self, asset: bytes, profile: Profile, raw: bytes | None) -> AssetState:
        """The asset's state: the decoded copy kept from the last batch if its bytes match.

        An entry leaves the cache while its batch runs and comes back only with the bytes
        the batch ended with, so a batch that fails half way cannot leave a folded copy behind.
        """
        if raw is None:
            return AssetState.empty(profile)
        kept = self._decoded.pop(asset, None)
        if kept is not None and kept[0] == raw:
            return kept[1]
        try:
            return AssetState.from_bytes(raw, profile)
        except SerializationError:
            log.exception("feature state of %s is unreadable: starting it afresh", loggable(asset))
            return AssetState.empty(profile)

    def _reject(
        self, prepared: Prepared, inbound: Inbound, reason: str, detail: str,
        reading: Mapping[str, Any] | None,
    ) -> None:
        key, value = self._dead_letter.build(
            inbound, reason, _utf8(detail) or detail.encode("utf-8", "backslashreplace").decode(),
            _utf8(reading.get("event_id")) if reading else None,
            _utf8(reading.get("asset_id")) if reading else None,
        )
        prepared.dead_letters.append(Outbound(key, value, None,
                                              error_headers(inbound, reason, detail)))
        prepared.dead_letter_reasons.append(reason)


def _joined(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def _rows(scores: BatchScores, mask: np.ndarray) -> BatchScores:
    """The scores of the rows ``mask`` selects."""
    return BatchScores(**{f.name: getattr(scores, f.name)[mask] for f in fields(scores)})


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

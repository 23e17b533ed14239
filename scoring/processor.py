"""The broker-free core of the telemetry agent: raw messages in, encoded records out.

``prepare`` decodes, validates and folds each reading into its asset's feature state (in
arrival order, as the offline path does); ``score`` makes one model call per profile for the
whole batch, publishes the predictions and hands the same rows to the observers
(:mod:`scoring.observers`). Every input leaves as exactly one prediction or one dead letter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from assetwatch.features.baseline import BaselineScores
from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import BatchScores, ScoringModel
from assetwatch.schemas.codecs import codec
from assetwatch.schemas.prediction_writer import check_schema, encode_predictions
from assetwatch.schemas.wire import model_headers
from assetwatch.scoring.guard import non_finite_rows
from assetwatch.scoring.observers import Observer, Scored, default_observers
from assetwatch.scoring.outcome import RECENT_PREDICTIONS, Outcome
from assetwatch.scoring.predictions import PredictionIds, PredictionRows, prediction_rows
from assetwatch.scoring.preparation import LoadState, LogEnds, Prepared, Preparer, Scorable
from assetwatch.scoring.records import Inbound, Outbound, Output
from assetwatch.scoring.shadow import Shadows
from assetwatch.settings import Settings

log = logging.getLogger(__name__)

_FLOAT32_MAX = float(np.finfo(np.float32).max)
"""sklearn estimators cast their input to float32 and reject it if any value overflows."""


@dataclass(frozen=True)
class _Rows:
    """One profile's scorable items and their snapshot and feature matrices, row-aligned."""

    items: list[Scorable]
    snapshots: np.ndarray
    features: np.ndarray

    def keep(self, mask: np.ndarray) -> _Rows:
        """The rows ``mask`` selects."""
        items = [item for item, ok in zip(self.items, mask.tolist(), strict=True) if ok]
        return _Rows(items, self.snapshots[mask], self.features[mask])


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
        observers: Sequence[Observer] = (),
    ) -> None:
        """``observers`` run after the default ones (drift, asset alerts, shadow), in order."""
        self._profiles = dict(profiles)
        self._extractors = {name: FeatureExtractor(p) for name, p in profiles.items()}
        self._preparer = Preparer(settings, profiles, self._extractors, clock, partitions)
        self._models = models
        self._clock = clock
        header = codec("Prediction").header
        check_schema(header)
        self._encode = partial(encode_predictions, header)
        self._observers = [*default_observers(settings, clock,
                                              {} if shadows is None else shadows, self._encode),
                           *observers]
        """What each profile's scored rows give rise to besides predictions, in order."""

    def process(self, batch: Sequence[Inbound], load_state: LoadState,
                log_ends: LogEnds | None = None) -> Outcome:
        """:meth:`prepare` then :meth:`score`: the whole batch, one model call per profile."""
        return self.score(self.prepare(batch, load_state, log_ends))

    def forget(self) -> None:
        """Drop what was kept from earlier batches: call it when a batch fails anywhere.

        A kept state may then hold readings whose outputs were never delivered.
        """
        self._preparer.forget()

    def prepare(self, batch: Sequence[Inbound], load_state: LoadState,
                log_ends: LogEnds | None = None) -> Prepared:
        """Decode, validate and fold every reading into its asset's state, in order.

        ``log_ends``: where the batch's partitions ended when it was taken (the states'
        applied offsets are checked against them: :class:`Preparer`).
        """
        return self._preparer.prepare(batch, load_state, log_ends)

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
        out.states = self._preparer.encode_states(prepared)
        out.event_timestamps = _joined(event_ms, np.int64)
        out.failure_probabilities = _joined(probabilities, float)
        for observer in self._observers:
            observer.finish(out)
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
                self._preparer.reject(prepared, item.inbound, "scoring_failed", repr(exc),
                                      item.reading)
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
        published = self._publish_rows(out, items, profile, model, scores, features, now_ms,
                                       baseline)
        scored = Scored(profile, model, items, features, scores, baseline, event_ms, published)
        for observer in self._observers:
            observer.observe(scored, out)
        return event_ms, np.asarray(scores.failure_probability, dtype=float)

    def _publish_rows(self, out: Outcome, items: list[Scorable], profile: str,
                      model: ScoringModel, scores: BatchScores, features: np.ndarray,
                      now_ms: int, baseline: BaselineScores) -> PredictionRows:
        """Each row's Prediction, published, with the asset's newest ones for the query API."""
        headers = model_headers(model.name, model.version)
        readings = [item.reading for item in items]
        ids = PredictionIds(profile, [r["asset_id"] for r in readings],
                            [r["event_id"] for r in readings],
                            [r["timestamp"] for r in readings], now_ms,
                            baseline.calibrating.tolist(), baseline.score.tolist())
        rows = prediction_rows(ids, model, scores, features)
        newest: dict[str, int] = {}
        predictions, recent, seen = out.records[Output.PREDICTION], out.recent, out.seen
        for i, (item, asset, ms, encoded) in enumerate(zip(
                items, ids.asset_ids, ids.event_ms, self._encode(rows), strict=True)):
            inbound = item.inbound
            seen[asset] = (inbound.partition, profile, ms)
            predictions.append(Outbound(inbound.key, encoded, inbound, headers))
            recent.setdefault(asset, []).append(encoded)
            newest[asset] = i
        for asset, i in newest.items():
            del recent[asset][:-RECENT_PREDICTIONS]
            # a copy: a view would keep the whole batch's feature matrix alive in the index
            out.latest[asset] = (model.bundle.feature_names, features[i].copy())
        return rows

    def _scorable(self, prepared: Prepared, profile: str, items: list[Scorable]) -> _Rows:
        """The items whose feature rows the model can take, with their matrices.

        sklearn refuses a whole batch over one value beyond float32 range, so such rows are
        dead-lettered one by one and the rest still scored. Their readings stay folded into
        the asset state: each reading was valid, only the feature row derived from it is not.
        """
        extractor = self._extractors[profile]
        snapshots = prepared.snapshots[profile]
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
            self._preparer.reject(
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
            self._preparer.reject(prepared, item.inbound, "scoring_failed", detail, item.reading)
        keep = np.array([i not in bad for i in range(len(rows.items))])
        return rows.keep(keep), scores.rows(keep)


def _joined(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts) if parts else np.empty(0, dtype)

"""Label feedback: maintenance outcomes judge the predictions before them, per model version.

Pure: no broker, no clock. A label says whether asset A failed (``failure``) at event time
T. It judges A's predictions whose event time lies in its horizon, ``[T - horizon, T]``
(both ends included). A prediction is *flagged* when ``is_anomaly`` or
``failure_probability >= threshold``:

=================  ==================  ======================
label              prediction flagged  prediction not flagged
=================  ==================  ======================
``failure=True``   ``tp``              ``fn``
``failure=False``  ``fp``              ``tn``
=================  ==================  ======================

Counts belong to the (model name, model version) that made the prediction. Rules:

- **Each prediction is judged at most once**, by the first label that reaches it, and is
  never re-judged. A label judges the kept predictions of its horizon not judged yet.
- **Arrival order of the two streams does not matter**: labels are kept too, so a
  prediction that arrives after a label covering it is judged on arrival, by the earliest
  kept label at or after its event time within the horizon (the first outcome after it).
  Only labels of one asset with overlapping horizons that arrive out of event-time order
  can judge a shared prediction differently than in order.
- **Duplicates are ignored** (same prediction ``event_id``, same ``label_id``: at-least-once
  redelivery) while the first copy is still kept.
- **Bounded**: per asset the ``buffer`` predictions with the newest event times and the
  ``labels_per_asset`` newest labels; the oldest go first, judged or not. A prediction
  evicted before any label judged it counts as ``expired``: a label only judges what is
  still kept, so it must arrive before ``buffer`` newer predictions of its asset do.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

Outcome = Literal["tp", "fp", "fn", "tn"]
OUTCOMES: tuple[Outcome, ...] = ("tp", "fp", "fn", "tn")
LABELS_PER_ASSET = 1000
"""Labels kept per asset for predictions that arrive after them (labels are rare)."""


class ModelVersion(NamedTuple):
    """A registered model version: the key performance is counted under."""

    name: str
    version: str


@dataclass(frozen=True, slots=True)
class PredictionEvent:
    """What the join needs of a ``Prediction`` record."""

    asset_id: str
    event_id: str
    event_ms: int
    flagged: bool
    model: ModelVersion

    @classmethod
    def from_record(cls, record: Mapping[str, Any], threshold: float) -> PredictionEvent:
        """Flagged when the record says anomaly or its failure probability reaches ``threshold``.

        >>> r = {"asset_id": "a", "event_id": "e", "event_timestamp": 5, "is_anomaly": False,
        ...      "failure_probability": 0.5, "model_name": "m", "model_version": "1"}
        >>> PredictionEvent.from_record(r, 0.5).flagged, PredictionEvent.from_record(r, 0.6).flagged
        (True, False)
        """
        flagged = bool(record["is_anomaly"]) or record["failure_probability"] >= threshold
        return cls(record["asset_id"], record["event_id"], record["event_timestamp"], flagged,
                   ModelVersion(record["model_name"], record["model_version"]))


@dataclass(frozen=True, slots=True)
class LabelEvent:
    """What the join needs of a ``MaintenanceLabel`` record."""

    asset_id: str
    label_id: str
    event_ms: int
    failure: bool

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LabelEvent:
        """The label of a decoded ``MaintenanceLabel`` record."""
        return cls(record["asset_id"], record["label_id"], record["event_timestamp"],
                   bool(record["failure"]))


def outcome(flagged: bool, failure: bool) -> Outcome:
    """The confusion cell of a prediction judged by a label."""
    if failure:
        return "tp" if flagged else "fn"
    return "fp" if flagged else "tn"


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


@dataclass
class Confusion:
    """Judged predictions of one model version, and the labels that judged any of them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    labels: int = 0

    @property
    def precision(self) -> float | None:
        """``tp / (tp + fp)``; None before any flagged prediction was judged."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        """``tp / (tp + fn)``; None before any prediction was judged by a failure."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        """Harmonic mean of precision and recall; 0 when both are 0, None if either is."""
        p, r = self.precision, self.recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0

    def add(self, cell: Outcome) -> None:
        """Count one judged prediction in its cell."""
        setattr(self, cell, getattr(self, cell) + 1)


@dataclass(slots=True)
class _Kept:
    """A kept prediction: only what judging needs (there may be millions)."""

    event_ms: int
    event_id: str
    flagged: bool
    model: ModelVersion
    """Shared by every prediction of the version."""
    judged: bool = False


@dataclass
class _KeptLabel:
    event: LabelEvent
    counted: set[ModelVersion] = field(default_factory=set)
    """Versions this label has judged a prediction of (each counts the label once)."""


@dataclass
class _Asset:
    predictions: list[_Kept] = field(default_factory=list)
    """Sorted by event time."""
    event_ids: set[str] = field(default_factory=set)
    labels: list[_KeptLabel] = field(default_factory=list)
    """Sorted by event time."""


@dataclass(frozen=True)
class Judgement:
    """One prediction judged by one label: which model, which cell."""

    model: ModelVersion
    outcome: Outcome
    label_id: str
    event_id: str


@dataclass
class FeedbackTotals:
    """Counts of the join as a whole, across model versions."""

    predictions: int = 0
    """Predictions taken (duplicates not included)."""
    labels: int = 0
    """Labels taken (duplicates not included)."""
    duplicates: int = 0
    expired: int = 0
    """Predictions evicted before any label judged them."""


def _prediction_ms(kept: _Kept) -> int:
    return kept.event_ms


def _label_ms(kept: _KeptLabel) -> int:
    return kept.event.event_ms


class FeedbackJoin:
    """The join of predictions and labels per asset; counts per model version."""

    def __init__(self, horizon_ms: int, buffer: int,
                 labels_per_asset: int = LABELS_PER_ASSET) -> None:
        if horizon_ms < 0 or buffer < 1 or labels_per_asset < 1:
            raise ValueError("need horizon_ms >= 0, buffer >= 1 and labels_per_asset >= 1")
        self.horizon_ms, self.buffer, self.labels_per_asset = horizon_ms, buffer, labels_per_asset
        self._assets: dict[str, _Asset] = {}
        self._confusion: dict[ModelVersion, Confusion] = {}
        self._models: dict[ModelVersion, ModelVersion] = {}
        self.totals = FeedbackTotals()

    def add_prediction(self, prediction: PredictionEvent) -> list[Judgement]:
        """Keep a prediction; judge it now if a kept label covers it."""
        asset = self._assets.setdefault(prediction.asset_id, _Asset())
        if prediction.event_id in asset.event_ids:
            self.totals.duplicates += 1
            return []
        self.totals.predictions += 1
        model = self._models.setdefault(prediction.model, prediction.model)
        kept = _Kept(prediction.event_ms, prediction.event_id, prediction.flagged, model)
        judgements = []
        at = bisect.bisect_left(asset.labels, prediction.event_ms, key=_label_ms)
        if at < len(asset.labels) and \
                asset.labels[at].event.event_ms - prediction.event_ms <= self.horizon_ms:
            judgements.append(self._judge(kept, asset.labels[at]))
        bisect.insort_right(asset.predictions, kept, key=_prediction_ms)
        asset.event_ids.add(prediction.event_id)
        self._evict(asset)
        return judgements

    def add_label(self, label: LabelEvent) -> list[Judgement]:
        """Keep a label; judge the kept, unjudged predictions of its horizon."""
        asset = self._assets.setdefault(label.asset_id, _Asset())
        if any(kept.event.label_id == label.label_id for kept in asset.labels):
            self.totals.duplicates += 1
            return []
        self.totals.labels += 1
        kept_label = _KeptLabel(label)
        bisect.insort_right(asset.labels, kept_label, key=_label_ms)
        if len(asset.labels) > self.labels_per_asset:
            del asset.labels[0]
        lo = bisect.bisect_left(asset.predictions, label.event_ms - self.horizon_ms,
                                key=_prediction_ms)
        hi = bisect.bisect_right(asset.predictions, label.event_ms, key=_prediction_ms)
        return [self._judge(kept, kept_label)
                for kept in asset.predictions[lo:hi] if not kept.judged]

    def performance(self) -> dict[ModelVersion, Confusion]:
        """A copy of the counts per model version."""
        return {model: dataclasses.replace(c) for model, c in sorted(self._confusion.items())}

    def _judge(self, kept: _Kept, label: _KeptLabel) -> Judgement:
        model = kept.model
        confusion = self._confusion.setdefault(model, Confusion())
        cell = outcome(kept.flagged, label.event.failure)
        confusion.add(cell)
        if model not in label.counted:
            label.counted.add(model)
            confusion.labels += 1
        kept.judged = True
        return Judgement(model, cell, label.event.label_id, kept.event_id)

    def _evict(self, asset: _Asset) -> None:
        excess = len(asset.predictions) - self.buffer
        if excess <= 0:
            return
        for gone in asset.predictions[:excess]:
            asset.event_ids.discard(gone.event_id)
            if not gone.judged:
                self.totals.expired += 1
        del asset.predictions[:excess]

"""The feedback service's state as HTTP answers: /performance, /health and Prometheus metrics.

:class:`FeedbackView` puts the pure :class:`models.feedback.FeedbackJoin` behind a lock: the
consumer thread feeds it records, HTTP threads read it. Records that do not decode are
counted (``undecodable``) and skipped; they are not dead-lettered, because the service
re-reads its topics from the beginning on every start.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from assetwatch.errors import SerializationError
from assetwatch.models.feedback import (
    OUTCOMES,
    Confusion,
    FeedbackJoin,
    FeedbackTotals,
    LabelEvent,
    ModelVersion,
    PredictionEvent,
)
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings

log = logging.getLogger(__name__)

Kind = Literal["prediction", "label"]


@dataclass(frozen=True)
class FeedbackConfig:
    """The join's settings: label horizon, flag threshold, predictions kept per asset."""

    horizon_s: float
    threshold: float
    buffer: int

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedbackConfig:
        """The ``ASSETWATCH_FEEDBACK_*`` settings."""
        return cls(settings.feedback_horizon_s, settings.feedback_threshold,
                   settings.feedback_buffer)


@dataclass(frozen=True)
class Snapshot:
    """A copy of the view's state taken under its lock, so one scrape is consistent."""

    models: dict[ModelVersion, Confusion]
    totals: FeedbackTotals
    undecodable: int
    unread: int
    """Assigned partitions that have not reached their end yet (None assigned: -1)."""


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def model_document(model: ModelVersion, confusion: Confusion) -> dict[str, Any]:
    """One model version's entry in /performance."""
    return {"model_name": model.name, "model_version": model.version,
            "tp": confusion.tp, "fp": confusion.fp, "fn": confusion.fn, "tn": confusion.tn,
            "labels": confusion.labels, "precision": _rounded(confusion.precision),
            "recall": _rounded(confusion.recall), "f1": _rounded(confusion.f1)}


class FeedbackView:
    """The join, fed by one consumer thread and read by HTTP threads."""

    def __init__(self, config: FeedbackConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._join = FeedbackJoin(round(config.horizon_s * 1000), config.buffer)
        self._lock = threading.Lock()
        self._undecodable = 0
        self._unread: set[tuple[str, int]] | None = None
        self._clock = clock
        self._started = clock()

    def take(self, kind: Kind, value: bytes | None) -> None:
        """Decode one record of the predictions or labels topic and join it."""
        try:
            event = self._decode(kind, value)
        except SerializationError as exc:
            log.warning("skipping an undecodable %s record: %s", kind, exc)
            with self._lock:
                self._undecodable += 1
            return
        with self._lock:
            if isinstance(event, PredictionEvent):
                self._join.add_prediction(event)
            else:
                self._join.add_label(event)

    def _decode(self, kind: Kind, value: bytes | None) -> PredictionEvent | LabelEvent:
        if value is None:
            raise SerializationError("the record has no value")
        if kind == "prediction":
            return PredictionEvent.from_record(codec("Prediction").decode(value),
                                               self.config.threshold)
        return LabelEvent.from_record(codec("MaintenanceLabel").decode(value))

    def assigned(self, partitions: Iterable[tuple[str, int]]) -> None:
        """The partitions the consumer was given; each is unread until :meth:`reached_end`."""
        with self._lock:
            self._unread = set(partitions)

    def reached_end(self, topic: str, partition: int) -> None:
        """A fetch reached the partition's high watermark: its history is read."""
        with self._lock:
            if self._unread is not None:
                self._unread.discard((topic, partition))

    def snapshot(self) -> Snapshot:
        """Copy the counts under the lock, so a reader never sees a half-joined record."""
        with self._lock:
            totals = dataclasses.replace(self._join.totals)
            unread = -1 if self._unread is None else len(self._unread)
            return Snapshot(self._join.performance(), totals, self._undecodable, unread)

    def performance(self) -> tuple[int, dict[str, Any]]:
        """The /performance answer: counts and ratios per model version."""
        snap = self.snapshot()
        return 200, {
            "horizon_s": self.config.horizon_s, "threshold": self.config.threshold,
            "caught_up": snap.unread == 0,
            "totals": {**vars(snap.totals), "undecodable": snap.undecodable},
            "models": [model_document(m, c) for m, c in snap.models.items()],
        }

    def check(self) -> tuple[bool, dict[str, Any]]:
        """Ready once every partition of both topics was read up to its end once."""
        unread = self.snapshot().unread
        reasons = (["no partitions assigned yet"] if unread < 0 else
                   [f"{unread} partitions not read to their end yet"] if unread else [])
        return not reasons, {"status": "not_ready" if reasons else "ready", "reasons": reasons,
                             "uptime_s": round(self.uptime_s(), 1)}

    def uptime_s(self) -> float:
        """Seconds since the view was built, reported by /live."""
        return self._clock() - self._started

    def failure(self) -> str | None:
        """The service has no fatal state of its own: /live is 200 while it serves."""
        return None


class FeedbackCollector(Collector):
    """The feedback metrics, read from the view when Prometheus scrapes."""

    def __init__(self, view: FeedbackView) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        """The feedback metrics, all from one snapshot."""
        snap = self._view.snapshot()
        yield CounterMetricFamily("assetwatch_feedback_labels",
                                  "Labels taken (a repeated label_id is not counted).",
                                  value=snap.totals.labels)
        yield CounterMetricFamily("assetwatch_feedback_predictions_read",
                                  "Predictions taken (a repeated event_id is not counted).",
                                  value=snap.totals.predictions)
        yield CounterMetricFamily("assetwatch_feedback_expired",
                                  "Predictions evicted before any label judged them.",
                                  value=snap.totals.expired)
        skipped = CounterMetricFamily("assetwatch_feedback_skipped",
                                      "Records skipped, by reason.", labels=["reason"])
        for reason, count in Counter(duplicate=snap.totals.duplicates,
                                     undecodable=snap.undecodable).items():
            skipped.add_metric([reason], count)
        yield skipped
        yield from self._per_model(snap.models)

    def _per_model(self, models: dict[ModelVersion, Confusion]) -> Iterator[Metric]:
        labels = ["model_name", "model_version"]
        judged = CounterMetricFamily(
            "assetwatch_feedback_predictions", "Predictions judged by a label, by outcome.",
            labels=[*labels, "outcome"])
        ratios = {name: GaugeMetricFamily(f"assetwatch_model_{name}", doc, labels=labels)
                  for name, doc in (("precision", "tp / (tp + fp) of judged predictions."),
                                    ("recall", "tp / (tp + fn) of judged predictions."),
                                    ("f1", "Harmonic mean of precision and recall."))}
        for model, confusion in models.items():
            for cell in OUTCOMES:
                judged.add_metric([*model, cell], getattr(confusion, cell))
            for name, family in ratios.items():
                value = getattr(confusion, name)
                if value is not None:  # undefined yet: no series rather than NaN
                    family.add_metric(list(model), value)
        yield judged
        yield from ratios.values()

    def describe(self) -> Iterator[Metric]:
        """No families up front: the model versions with series are known only at scrape time."""
        return iter(())

"""The worker's Prometheus metrics, created against an injected registry.

Per-reading figures are aggregated where the batch is processed (the scoring helper by
default) and cross back as a few counts and pre-bucketed histograms in the ``BatchReport``;
the worker's event loop only adds them up, once per batch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from assetwatch.models.bundle import ScoringModel
from assetwatch.scoring.buckets import (
    FAILURE_PROBABILITY_BUCKETS,
    LATENCY_BUCKETS_S,
    Buckets,
)
from assetwatch.scoring.records import Output
from assetwatch.scoring.shadow import ShadowStats

if TYPE_CHECKING:
    from assetwatch.scoring.outcome import BatchReport

BATCH_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000)
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
OUTCOMES = ("prediction", "dead_letter", "skipped_replay")


class BucketedHistogram(Collector):
    """A histogram fed whole batches of pre-bucketed observations (thread-safe)."""

    def __init__(self, name: str, documentation: str, bounds: tuple[float, ...]) -> None:
        self._name, self._documentation, self._bounds = name, documentation, bounds
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def add(self, buckets: Buckets) -> None:
        """Add a batch's bucket counts and sum; a different bucket count is a ValueError."""
        if len(buckets.counts) != len(self._counts):
            raise ValueError(f"{self._name}: {len(buckets.counts)} buckets, expected "
                             f"{len(self._counts)}")
        with self._lock:
            for i, count in enumerate(buckets.counts):
                self._counts[i] += count
            self._sum += buckets.total

    def collect(self) -> Iterator[Metric]:
        """The histogram as Prometheus reads it: cumulative buckets and the sum."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative = np.cumsum(counts).tolist()
        bounds = [*(str(float(b)) for b in self._bounds), "+Inf"]
        yield HistogramMetricFamily(self._name, self._documentation,
                                    buckets=list(zip(bounds, cumulative, strict=True)),
                                    sum_value=total)

    def describe(self) -> Iterator[Metric]:
        """The family without samples, so the registry knows its name."""
        yield HistogramMetricFamily(self._name, self._documentation)


class LagSource(Protocol):
    """Where consumer lag comes from: committed offset to high watermark, per partition."""

    topic: str

    def lag(self) -> Mapping[int, int]:
        """Records behind the committed offset, per assigned partition of ``topic``."""


class LagCollector(Collector):
    """``assetwatch_consumer_lag``, read from the stream when Prometheus scrapes."""

    def __init__(self, source: LagSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        """The lag of every assigned partition, read at scrape time."""
        family = GaugeMetricFamily(
            "assetwatch_consumer_lag",
            "Telemetry records behind the committed offset, per assigned partition.",
            labels=["topic", "partition"],
        )
        for partition, lag in sorted(self._source.lag().items()):
            family.add_metric([self._source.topic, str(partition)], lag)
        yield family

    def describe(self) -> Iterator[Metric]:
        """The family without samples, so the registry knows its name."""
        yield GaugeMetricFamily("assetwatch_consumer_lag", "", labels=["topic", "partition"])


@dataclass(frozen=True)
class Totals:
    """What this worker has processed since it started (for /health)."""

    readings: int = 0
    predictions: int = 0
    dead_letters: int = 0
    anomalies: int = 0
    skipped_replays: int = 0
    failure_probability_sum: float = 0.0

    @property
    def average_failure_probability(self) -> float | None:
        """Mean failure probability of the predictions; None before the first."""
        return self.failure_probability_sum / self.predictions if self.predictions else None


class Metrics:
    """Every metric of a worker, against one registry; the worker's event loop feeds it."""

    def __init__(self, registry: CollectorRegistry, lag: LagSource | None = None) -> None:
        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.registry = registry
        self._readings = counter("assetwatch_readings_consumed", "Telemetry messages consumed.")
        self._predictions = counter("assetwatch_predictions", "Predictions published.")
        self._outcomes = counter("assetwatch_outcomes", "Consumed readings by outcome.",
                                 ("outcome",))
        self._anomalies = counter("assetwatch_anomalies", "Predictions flagged is_anomaly.")
        self._dead_letters = counter("assetwatch_dead_letters", "Dead letters published.",
                                     ("reason",))
        self._swaps = counter("assetwatch_model_swaps", "Model versions swapped in while "
                              "running.", ("profile",))
        self._rejections = counter("assetwatch_model_rejections", "Model versions that failed "
                                   "the serving checks.", ("profile",))
        self._model_info = Gauge("assetwatch_model_info", "The served model version (1).",
                                 ("profile", "model_name", "version"), registry=registry)
        self._asset_alerts = counter("assetwatch_asset_alerts", "AssetAlert records published "
                                     "(failure risk and silent sensors, raised and recovered).")
        self._drift_alerts = counter("assetwatch_drift_alerts", "DriftAlert records published "
                                     "(raised and cleared).")
        self._published = {Output.DRIFT_ALERT: self._drift_alerts,
                           Output.ASSET_ALERT: self._asset_alerts}
        """The counter of each output kind counted as published (predictions and dead
        letters have their own, by outcome and reason)."""
        self._shadow_rows = counter("assetwatch_shadow_predictions", "Rows the challenger "
                                    "shadow-scored.", ("profile",))
        self._shadow_rate = Gauge(
            "assetwatch_shadow_flag_rate", "Share of shadow-scored rows flagged is_anomaly, "
            "by the champion and by the challenger (since the challenger came).",
            ("profile", "challenger_version", "model"), registry=registry)
        self._shadow_agreement = Gauge(
            "assetwatch_shadow_flag_agreement", "Share of shadow-scored rows on whose "
            "is_anomaly flag champion and challenger agree.",
            ("profile", "challenger_version"), registry=registry)
        self._shadow_correlation = Gauge(
            "assetwatch_shadow_score_correlation", "Pearson correlation of the champion's "
            "and the challenger's anomaly scores.",
            ("profile", "challenger_version"), registry=registry)
        self._shadow: dict[str, ShadowStats] = {}
        self._drift_divergence = Gauge(
            "assetwatch_drift_divergence", "Latest Jensen-Shannon divergence of a watched "
            "column from the served model's training reference.",
            ("profile", "model_version", "feature"), registry=registry)
        self._drift_detected = Gauge(
            "assetwatch_drift_detected", "1 while a drift alert is raised for the column.",
            ("profile", "model_version", "feature"), registry=registry)
        self._fenced = counter("assetwatch_fenced_readings", "Readings dropped unacked: "
                               "delivered before the latest rebalance, or of batches whose "
                               "partitions the worker had lost (by whether their outputs were "
                               "already published).", ("stage",))
        self._batch_seconds = Histogram(
            "assetwatch_batch_processing_seconds", "Batch taken from the queue to acked.",
            buckets=BATCH_SECONDS_BUCKETS, registry=registry)
        self._batch_size = Histogram("assetwatch_batch_size", "Readings per micro-batch.",
                                     buckets=BATCH_SIZE_BUCKETS, registry=registry)
        self._latency = BucketedHistogram(
            "assetwatch_prediction_latency_seconds",
            "Reading's event time to its prediction acknowledged by the broker.",
            LATENCY_BUCKETS_S)
        self._failure = BucketedHistogram(
            "assetwatch_failure_probability", "Failure probability of each prediction.",
            FAILURE_PROBABILITY_BUCKETS)
        registry.register(self._latency)
        registry.register(self._failure)
        if lag is not None:
            registry.register(LagCollector(lag))
        for outcome in OUTCOMES:
            self._outcomes.labels(outcome)
        self._lock = threading.Lock()
        self._totals = Totals()
        self._served: dict[str, ScoringModel] = {}

    def record_batch(self, size: int, report: BatchReport, seconds: float) -> None:
        """Add one acked batch of ``size`` readings (once per batch, never per reading)."""
        dead = sum(report.dead_letters.values())
        self._readings.inc(size)
        self._predictions.inc(report.predictions)
        self._anomalies.inc(report.anomalies)
        self._outcomes.labels("prediction").inc(report.predictions)
        self._outcomes.labels("dead_letter").inc(dead)
        self._outcomes.labels("skipped_replay").inc(report.replayed)
        for reason, count in report.dead_letters.items():
            self._dead_letters.labels(reason).inc(count)
        self._latency.add(report.latency)
        self._failure.add(report.failure_probability)
        self._batch_size.observe(size)
        self._batch_seconds.observe(seconds)
        for kind, published in self._published.items():
            published.inc(report.published.get(kind, 0))
        for profile, batch in report.shadow.items():
            self._record_shadow(profile, batch)
        for profile, status in report.drift.items():
            for feature, divergence in status.divergence.items():
                labels = (profile, status.model_version, feature)
                self._drift_divergence.labels(*labels).set(divergence)
                self._drift_detected.labels(*labels).set(feature in status.raised)
        with self._lock:
            t = self._totals
            self._totals = Totals(
                t.readings + size, t.predictions + report.predictions, t.dead_letters + dead,
                t.anomalies + report.anomalies, t.skipped_replays + report.replayed,
                t.failure_probability_sum + report.failure_probability.total,
            )

    def serve(self, model: ScoringModel) -> None:
        """``model`` is now the served version of its profile."""
        profile = model.bundle.profile
        with self._lock:
            previous = self._served.get(profile)
            self._served[profile] = model
        if previous is not None:
            self._model_info.remove(profile, previous.name, previous.version)
        self._model_info.labels(profile, model.name, model.version).set(1)

    def swapped(self, model: ScoringModel) -> None:
        """A hot swap: serve ``model`` and count it."""
        self.serve(model)
        self._swaps.labels(model.bundle.profile).inc()

    def _record_shadow(self, profile: str, batch: ShadowStats) -> None:
        previous = self._shadow.get(profile)
        tally = batch if previous is None else previous.plus(batch)
        self._shadow[profile] = tally
        self._shadow_rows.labels(profile).inc(batch.rows)
        version = tally.challenger_version
        if tally.rows:
            self._shadow_rate.labels(profile, version, "champion").set(
                tally.champion_flags / tally.rows)
            self._shadow_rate.labels(profile, version, "challenger").set(
                tally.challenger_flags / tally.rows)
            self._shadow_agreement.labels(profile, version).set(
                tally.agreeing_flags / tally.rows)
        correlation = tally.correlation()
        if correlation is not None:
            self._shadow_correlation.labels(profile, version).set(correlation)

    def fenced(self, stage: str, size: int) -> None:
        """``size`` readings dropped unacked at ``stage`` (a fenced batch, or a rebalance's)."""
        self._fenced.labels(stage).inc(size)

    def asset_alert(self) -> None:
        """One AssetAlert published by the worker itself (silent sensors)."""
        self._asset_alerts.inc()

    def rejected(self, profile: str) -> None:
        """One candidate model of ``profile`` passed over (it failed to load or the checks)."""
        self._rejections.labels(profile).inc()

    def totals(self) -> Totals:
        """What the worker has processed so far, for /health."""
        with self._lock:
            return self._totals

    def served(self) -> dict[str, ScoringModel]:
        """The served model of each profile, by profile name."""
        with self._lock:
            return dict(self._served)

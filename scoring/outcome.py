"""What a processed batch produced, and the small report that crosses back from the helper."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from assetwatch.scoring.buckets import (
    FAILURE_PROBABILITY_BUCKETS,
    LATENCY_BUCKETS_S,
    Buckets,
    bucketize,
)
from assetwatch.scoring.drift import DriftStatus
from assetwatch.scoring.records import Outbound, Output, Records
from assetwatch.scoring.shadow import ShadowStats

RECENT_PREDICTIONS = 10
"""Newest encoded predictions per asset a batch report carries back for the query API."""

Latest = dict[str, tuple[tuple[str, ...], np.ndarray]]
"""Per asset of a batch: the feature names and values of its newest scored reading."""


@dataclass
class Outcome:
    """What one batch produced: records to publish, states to write, counts for metrics.

    The processor fills it in while it scores; the publisher replaces records the broker
    refuses (a refused prediction by its dead letter).
    """

    records: Records = field(default_factory=dict)
    """The records to publish, by kind (every kind present, missing ones added empty)."""
    dead_letter_reasons: list[str] = field(default_factory=list)
    """The reason of each dead letter."""
    anomalies: int = 0
    states: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)
    """Changed asset states to write once per batch: key -> (partition, state bytes)."""
    event_timestamps: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    """Event time (epoch ms) of each prediction, for the latency histogram."""
    failure_probabilities: np.ndarray = field(default_factory=lambda: np.empty(0))
    replayed: int = 0
    drift: dict[str, DriftStatus] = field(default_factory=dict)
    seen: dict[str, tuple[int, str, int]] = field(default_factory=dict)
    """Assets with a valid reading: partition, asset type, newest event time (ms)."""
    shadow: dict[str, ShadowStats] = field(default_factory=dict)
    recent: dict[str, list[bytes]] = field(default_factory=dict)
    """Per asset: its newest encoded predictions of the batch (at most RECENT_PREDICTIONS)."""
    latest: Latest = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in Output:
            self.records.setdefault(kind, [])

    @property
    def predictions(self) -> list[Outbound]:
        """The batch's predictions: with its dead letters, one record per reading."""
        return self.records[Output.PREDICTION]

    @property
    def dead_letters(self) -> list[Outbound]:
        """The batch's dead letters."""
        return self.records[Output.DEAD_LETTER]

    def report(self, published_s: float) -> BatchReport:
        """What the worker needs back once the outputs are acknowledged at ``published_s``."""
        latency = np.maximum(published_s - self.event_timestamps / 1000.0, 0.0)
        return BatchReport(
            predictions=len(self.predictions),
            anomalies=self.anomalies,
            dead_letters=dict(Counter(self.dead_letter_reasons)),
            states=self.states,
            replayed=self.replayed,
            latency=bucketize(latency, LATENCY_BUCKETS_S),
            failure_probability=bucketize(self.failure_probabilities,
                                          FAILURE_PROBABILITY_BUCKETS),
            published={kind: len(records) for kind, records in self.records.items()},
            drift=self.drift,
            seen=self.seen,
            shadow=self.shadow,
            recent=self.recent,
            latest=self.latest,
        )


class BatchReport(NamedTuple):
    """A processed batch whose outputs are delivered: counts, histograms, states to write.

    Small on purpose: it crosses back from the scoring helper for every batch.
    """

    predictions: int
    anomalies: int
    dead_letters: dict[str, int]
    """Dead letters per reason."""
    states: dict[bytes, tuple[int, bytes]]
    replayed: int
    """Readings skipped because their state already holds them (replays after a restart)."""
    latency: Buckets
    """Event time to acknowledged, in seconds, of each prediction."""
    failure_probability: Buckets
    published: dict[Output, int] = {}  # noqa: RUF012 (a NamedTuple default)
    """Records published, by kind."""
    seen: dict[str, tuple[int, str, int]] = {}  # noqa: RUF012 (a NamedTuple default)
    """Assets with a valid reading in the batch: partition, asset type, newest event time."""
    shadow: dict[str, ShadowStats] = {}  # noqa: RUF012 (a NamedTuple default)
    """Per profile shadow-scored in the batch: agreement of champion and challenger."""
    drift: dict[str, DriftStatus] = {}  # noqa: RUF012 (a NamedTuple default, never mutated)
    """Per profile: latest divergence per watched column and the raised columns."""
    recent: dict[str, list[bytes]] = {}  # noqa: RUF012 (a NamedTuple default)
    """Per asset: its newest encoded Prediction records (bytes: cheap to send back)."""
    latest: Latest = {}  # noqa: RUF012 (a NamedTuple default)
    """Per asset: feature names and values of its newest scored reading."""


def merged(reports: Sequence[BatchReport]) -> BatchReport:
    """One report for a batch whose parts (disjoint partitions) were processed apart.

    Counts and histograms add up; per-asset maps join (an asset lives on one partition);
    per profile, shadow tallies add up and drift keeps each column's largest divergence.
    """
    if len(reports) == 1:
        return reports[0]
    dead: Counter[str] = Counter()
    published: Counter[Output] = Counter()
    shadow: dict[str, ShadowStats] = {}
    drift: dict[str, DriftStatus] = {}
    for report in reports:
        dead.update(report.dead_letters)
        published.update(report.published)
        for profile, stats in report.shadow.items():
            shadow[profile] = shadow[profile].plus(stats) if profile in shadow else stats
        for profile, status in report.drift.items():
            drift[profile] = _worse(drift[profile], status) if profile in drift else status
    return BatchReport(
        predictions=sum(r.predictions for r in reports),
        anomalies=sum(r.anomalies for r in reports),
        dead_letters=dict(dead),
        states={k: v for r in reports for k, v in r.states.items()},
        replayed=sum(r.replayed for r in reports),
        latency=_added([r.latency for r in reports]),
        failure_probability=_added([r.failure_probability for r in reports]),
        published=dict(published),
        seen={k: v for r in reports for k, v in r.seen.items()},
        shadow=shadow,
        drift=drift,
        recent={k: v for r in reports for k, v in r.recent.items()},
        latest={k: v for r in reports for k, v in r.latest.items()},
    )


def _added(parts: list[Buckets]) -> Buckets:
    counts = [sum(column) for column in zip(*(b.counts for b in parts), strict=True)]
    return Buckets(tuple(counts), sum(b.total for b in parts))


def _worse(a: DriftStatus, b: DriftStatus) -> DriftStatus:
    """Each column's larger divergence, the columns raised in either."""
    divergence = dict(a.divergence)
    for column, value in b.divergence.items():
        divergence[column] = max(value, divergence.get(column, value))
    version = max(a.model_version, b.model_version, key=lambda v: (len(v), v))  # "10" > "9"
    return DriftStatus(version, divergence, a.raised | b.raised)

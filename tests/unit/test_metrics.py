"""Per-reading figures aggregated in the processor, added up per batch against a registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from assetwatch.agents.worker.metrics import Metrics
from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import ScoringModel
from assetwatch.schemas.codecs import codec
from assetwatch.scoring.buckets import (
    FAILURE_PROBABILITY_BUCKETS,
    LATENCY_BUCKETS_S,
    Buckets,
    bucketize,
)
from assetwatch.scoring.outcome import BatchReport
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound
from assetwatch.settings import Settings

LATENCY = "assetwatch_prediction_latency_seconds"


def _empty(bounds: tuple[float, ...]) -> Buckets:
    return Buckets((0,) * (len(bounds) + 1), 0.0)


def _report(**fields: Any) -> BatchReport:
    values: dict[str, Any] = {
        "predictions": 0, "anomalies": 0, "dead_letters": {}, "states": {}, "replayed": 0,
        "latency": _empty(LATENCY_BUCKETS_S),
        "failure_probability": _empty(FAILURE_PROBABILITY_BUCKETS),
        **fields,
    }
    return BatchReport(**values)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry)


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


@pytest.mark.parametrize(
    ("values", "bounds", "counts"),
    [
        ([], (1.0, 2.0), (0, 0, 0)),
        ([0.0, 1.0], (1.0, 2.0), (2, 0, 0)),  # a value on a bound is in its bucket (le)
        ([1.0000001, 2.0], (1.0, 2.0), (0, 2, 0)),
        ([2.5, 1e9], (1.0, 2.0), (0, 0, 2)),  # above every bound: the +Inf bucket
        ([0.5, 1.5, 2.5, 1.5], (1.0, 2.0), (1, 2, 1)),
    ],
)
def test_bucketize_counts_values_into_le_buckets(
    values: list[float], bounds: tuple[float, ...], counts: tuple[int, ...]
) -> None:
    buckets = bucketize(np.array(values, dtype=float), bounds)
    assert buckets.counts == counts
    assert buckets.total == pytest.approx(sum(values))


def test_a_batch_report_adds_up_into_counters_and_totals(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    latency = bucketize(np.array([0.3, 0.3, 7.0]), LATENCY_BUCKETS_S)
    failure = bucketize(np.array([0.1, 0.2, 0.9]), FAILURE_PROBABILITY_BUCKETS)
    first = _report(predictions=3, anomalies=1, dead_letters={"late": 2, "undecodable": 1},
                    latency=latency, failure_probability=failure)
    second = _report(predictions=3, dead_letters={"late": 1}, replayed=4, latency=latency,
                     failure_probability=failure)

    metrics.record_batch(6, first, 0.02)
    metrics.record_batch(8, second, 0.3)

    expected = {
        ("assetwatch_readings_consumed_total", ()): 14,
        ("assetwatch_predictions_total", ()): 6,
        ("assetwatch_anomalies_total", ()): 1,
        ("assetwatch_outcomes_total", (("outcome", "prediction"),)): 6,
        ("assetwatch_outcomes_total", (("outcome", "dead_letter"),)): 4,
        ("assetwatch_outcomes_total", (("outcome", "skipped_replay"),)): 4,
        ("assetwatch_dead_letters_total", (("reason", "late"),)): 3,
        ("assetwatch_dead_letters_total", (("reason", "undecodable"),)): 1,
        (f"{LATENCY}_count", ()): 6,
        (f"{LATENCY}_bucket", (("le", "0.25"),)): 0,
        (f"{LATENCY}_bucket", (("le", "0.5"),)): 4,
        (f"{LATENCY}_bucket", (("le", "5.0"),)): 4,
        (f"{LATENCY}_bucket", (("le", "10.0"),)): 6,
        (f"{LATENCY}_bucket", (("le", "+Inf"),)): 6,
        ("assetwatch_batch_size_count", ()): 2,
        ("assetwatch_batch_size_sum", ()): 14,
        ("assetwatch_batch_processing_seconds_count", ()): 2,
        ("assetwatch_failure_probability_count", ()): 6,
    }
    got = {key: _value(registry, key[0], **dict(key[1])) for key in expected}
    assert got == expected
    assert _value(registry, f"{LATENCY}_sum") == pytest.approx(2 * 7.6)
    assert _value(registry, "assetwatch_failure_probability_sum") == pytest.approx(2 * 1.2)
    totals = metrics.totals()
    assert (totals.readings, totals.predictions, totals.dead_letters, totals.anomalies,
            totals.skipped_replays) == (14, 6, 4, 1, 4)
    assert totals.average_failure_probability == pytest.approx(0.4)


def test_outcomes_are_exported_before_the_first_batch(registry: CollectorRegistry) -> None:
    Metrics(registry)
    for outcome in ("prediction", "dead_letter", "skipped_replay"):
        assert _value(registry, "assetwatch_outcomes_total", outcome=outcome) == 0
    assert Metrics(CollectorRegistry()).totals().average_failure_probability is None


def test_buckets_of_another_layout_are_refused(metrics: Metrics) -> None:
    with pytest.raises(ValueError, match="buckets"):
        metrics.record_batch(1, _report(latency=Buckets((1, 0), 0.1)), 0.01)


def test_model_info_follows_the_served_version(
    metrics: Metrics, registry: CollectorRegistry, cnc_model: ScoringModel
) -> None:
    newer = ScoringModel(cnc_model.name, "8", cnc_model.bundle)
    metrics.serve(cnc_model)
    info = {"profile": "cnc", "model_name": cnc_model.name}
    assert _value(registry, "assetwatch_model_info", **info, version=cnc_model.version) == 1

    metrics.swapped(newer)
    metrics.rejected("cnc")

    assert _value(registry, "assetwatch_model_info", **info, version=cnc_model.version) is None
    assert _value(registry, "assetwatch_model_info", **info, version="8") == 1
    assert _value(registry, "assetwatch_model_swaps_total", profile="cnc") == 1
    assert _value(registry, "assetwatch_model_rejections_total", profile="cnc") == 1
    assert metrics.served() == {"cnc": newer}


class FixedLag:
    topic = "assetwatch.telemetry"

    def lag(self) -> dict[int, int]:
        return {1: 5, 0: 0}


def test_consumer_lag_is_read_at_scrape_time(registry: CollectorRegistry) -> None:
    Metrics(registry, lag=FixedLag())
    topic = FixedLag.topic
    assert _value(registry, "assetwatch_consumer_lag", topic=topic, partition="0") == 0
    assert _value(registry, "assetwatch_consumer_lag", topic=topic, partition="1") == 5


def test_the_processor_reports_counts_and_buckets_not_events(
    make_settings: Callable[..., Settings], cnc: Profile, cnc_model: ScoringModel,
    make_reading: Callable[..., dict[str, Any]], now_ms: int,
) -> None:
    processor = BatchProcessor(make_settings(), {"cnc": cnc}, lambda _: cnc_model,
                               clock=lambda: now_ms / 1000)
    readings = [make_reading(timestamp=now_ms - 60_000 + i * 1000) for i in range(5)]
    batch = [Inbound(b"cnc-001", codec("TelemetryReading").encode(r), "t", 0, i)
             for i, r in enumerate(readings)]
    batch += [Inbound(b"cnc-001", b"\x00garbage", "t", 0, 5),
              Inbound(None, None, "t", 0, 6),
              Inbound(b"cnc-001", codec("TelemetryReading").encode(readings[0]), "t", 0, 3)]
    outcome = processor.process(batch, {}.get)

    report = outcome.report(published_s=now_ms / 1000 + 0.5)

    assert (report.predictions, report.dead_letters, report.replayed) == (
        5, {"undecodable": 2}, 1)
    # event times 60.5, 59.5, ... 56.5 s before publication: all in the (30, 60] bucket
    # but the first, which is in (60, 300]
    latency = dict(zip([*LATENCY_BUCKETS_S, float("inf")], report.latency.counts, strict=True))
    assert latency[60.0] == 4 and latency[300.0] == 1 and sum(latency.values()) == 5
    assert report.latency.total == pytest.approx(sum(60.5 - i for i in range(5)))
    probabilities = [codec("Prediction").decode(p.value)["failure_probability"]
                     for p in outcome.predictions]
    assert sum(report.failure_probability.counts) == 5
    assert report.failure_probability.total == pytest.approx(sum(probabilities))
    assert report.anomalies == outcome.anomalies


def test_replayed_readings_are_reported_as_skipped(
    make_settings: Callable[..., Settings], cnc: Profile, cnc_model: ScoringModel,
    make_reading: Callable[..., dict[str, Any]], now_ms: int,
) -> None:
    processor = BatchProcessor(make_settings(), {"cnc": cnc}, lambda _: cnc_model,
                               clock=lambda: now_ms / 1000)
    batch = [Inbound(b"cnc-001", codec("TelemetryReading").encode(make_reading()), "t", 0, 7)]
    store: dict[bytes, bytes] = {}
    first = processor.process(batch, store.get)
    store.update({asset: raw for asset, (_, raw) in first.states.items()})

    again = processor.process(batch, store.get).report(now_ms / 1000)

    assert (again.predictions, again.replayed, sum(again.latency.counts)) == (0, 1, 0)

"""The query API's per-partition index: bounded, newest first, forgets revoked partitions."""

from __future__ import annotations

import numpy as np

from assetwatch.agents.worker.asset_index import AssetIndex
from assetwatch.schemas.codecs import codec
from assetwatch.scoring.buckets import LATENCY_BUCKETS_S, bucketize
from assetwatch.scoring.outcome import RECENT_PREDICTIONS, BatchReport


def _prediction(asset: str, n: int) -> bytes:
    return codec("Prediction").encode({
        "asset_id": asset, "asset_type": "cnc", "event_id": f"{asset}-{n}",
        "event_timestamp": 1_000 + n, "processed_timestamp": 2_000 + n, "calibrating": False,
        "baseline_score": 0.5, "anomaly_score": 0.1, "is_anomaly": False,
        "failure_probability": n / 100, "model_name": "assetwatch-cnc", "model_version": "3",
        "top_features": []})


def _report(partition: int, assets: dict[str, int]) -> BatchReport:
    """A batch in which each asset had ``n`` predictions, numbered 0..n-1."""
    empty = bucketize(np.empty(0), LATENCY_BUCKETS_S)
    return BatchReport(
        predictions=sum(assets.values()), anomalies=0, dead_letters={}, states={}, replayed=0,
        latency=empty, failure_probability=empty,
        seen={a: (partition, "cnc", 0) for a in assets},
        recent={a: [_prediction(a, i) for i in range(n)][-RECENT_PREDICTIONS:]
                for a, n in assets.items()},
        latest={a: (("f_mean", "f_max"), np.array([1.5, float(n)])) for a, n in assets.items()})


def test_an_asset_keeps_its_newest_predictions_newest_first_across_batches() -> None:
    index = AssetIndex()
    index.record(_report(2, {"cnc-1": 7}))
    index.record(_report(2, {"cnc-1": 6}))
    entry = index.get("cnc-1")
    assert entry is not None and entry.partition == 2
    ids = [p["event_id"] for p in entry.predictions()]
    assert ids == [f"cnc-1-{i}" for i in (5, 4, 3, 2, 1, 0, 6, 5, 4, 3)][:RECENT_PREDICTIONS]
    assert entry.feature_values() == {"f_mean": 1.5, "f_max": 6.0}


def test_each_partition_keeps_a_bounded_number_of_assets_dropping_the_stalest() -> None:
    index = AssetIndex(per_partition=3)
    for asset in ("a", "b", "c", "d"):
        index.record(_report(0, {asset: 1}))
    index.record(_report(1, {"e": 1}))
    assert sorted(a for a, _ in index.entries()) == ["b", "c", "d", "e"]


def test_a_revoked_partition_is_forgotten() -> None:
    index = AssetIndex()
    index.record(_report(0, {"a": 1}))
    index.record(_report(1, {"b": 1}))
    index.retain([1])
    assert index.get("a") is None and index.get("b") is not None

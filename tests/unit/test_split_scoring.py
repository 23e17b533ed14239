"""A batch split by partition among scoring helpers, and their reports merged into one.

The split test replaces the helper processes by recorders (starting real ones needs no
broker, but publishing a non-empty batch does; the integration tests run real ones).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from assetwatch.agents.worker.scoring import ProcessScorer
from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import ScoringModel
from assetwatch.scoring.buckets import LATENCY_BUCKETS_S, bucketize
from assetwatch.scoring.drift import DriftStatus
from assetwatch.scoring.outcome import BatchReport, merged
from assetwatch.scoring.records import Inbound, Output
from assetwatch.scoring.shadow import ShadowStats
from assetwatch.settings import Settings


def _report(predictions: int, asset: str, latency: list[float], **extra: Any) -> BatchReport:
    return BatchReport(
        predictions=predictions, anomalies=1, dead_letters={"late": 1},
        states={asset.encode(): (0, b"s")}, replayed=2,
        latency=bucketize(np.array(latency), LATENCY_BUCKETS_S),
        failure_probability=bucketize(np.array([0.5] * predictions), (0.5, 1.0)),
        published={Output.PREDICTION: predictions, Output.DEAD_LETTER: 1},
        seen={asset: (0, "cnc", 5)}, recent={asset: [b"p"]}, **extra)


def test_merged_reports_add_up_counts_and_histograms_and_join_per_asset_maps() -> None:
    a = _report(3, "a", [0.01, 0.2, 7.0],
                drift={"cnc": DriftStatus("9", {"x": 0.1, "y": 0.5}, frozenset({"y"}))},
                shadow={"cnc": ShadowStats("2", 3, 1, 1, 1, (1.0, 1.0, 1.0, 1.0, 1.0))})
    b = _report(2, "b", [0.02, 0.02],
                drift={"cnc": DriftStatus("10", {"x": 0.3}, frozenset({"x"}))},
                shadow={"cnc": ShadowStats("2", 2, 0, 1, 0, (2.0, 2.0, 2.0, 2.0, 2.0))})

    report = merged([a, b])

    assert (report.predictions, report.anomalies, report.replayed) == (5, 2, 4)
    assert report.dead_letters == {"late": 2}
    assert report.published == {Output.PREDICTION: 5, Output.DEAD_LETTER: 2}
    whole = bucketize(np.array([0.01, 0.2, 7.0, 0.02, 0.02]), LATENCY_BUCKETS_S)
    assert report.latency.counts == whole.counts
    assert abs(report.latency.total - whole.total) < 1e-12
    assert report.failure_probability.counts == (5, 0, 0)
    assert set(report.states) == {b"a", b"b"} and set(report.seen) == {"a", "b"}
    assert set(report.recent) == {"a", "b"}
    assert report.drift["cnc"] == DriftStatus("10", {"x": 0.3, "y": 0.5}, frozenset({"x", "y"}))
    assert report.shadow["cnc"].rows == 5 and report.shadow["cnc"].sums[0] == 3.0
    assert merged([a]) is a


class Recorder:
    """Stands in for a helper process: records the calls, answers with a small report."""

    def __init__(self) -> None:
        self.batches: list[list[Inbound]] = []
        self.states: list[dict[bytes, bytes | None]] = []
        self.ends: list[dict[int, int]] = []
        self.pid = None

    async def call(self, fn: Callable[..., BatchReport], batch: list[Inbound],
                   states: dict[bytes, bytes | None], ends: dict[int, int]) -> BatchReport:
        self.batches.append(batch)
        self.states.append(states)
        self.ends.append(ends)
        return _report(len(batch), batch[0].key.decode() if batch else "none", [])

    def close(self) -> None:
        pass


def _recorded(tmp_path: Any, cnc: Profile, cnc_model: ScoringModel
              ) -> tuple[ProcessScorer, list[Recorder]]:
    """A scorer of two helpers whose processes are replaced by recorders."""
    settings = Settings(_env_file=None, data_dir=tmp_path,  # type: ignore[call-arg]
                        kafka_bootstrap_servers="127.0.0.1:9", scoring_processes=2)
    recorders = [Recorder(), Recorder()]
    scorer = ProcessScorer(settings, {"cnc": cnc}, {"cnc": cnc_model},
                           helpers=recorders)  # type: ignore[arg-type]
    return scorer, recorders


def test_each_helper_gets_its_partitions_in_order_with_their_states_only(
    tmp_path: Any, cnc: Profile, cnc_model: ScoringModel,
) -> None:
    scorer, recorders = _recorded(tmp_path, cnc, cnc_model)
    batch = [Inbound(f"asset-{p}".encode(), b"v", "telemetry", p, offset)
             for offset, p in enumerate([0, 1, 2, 3, 0, 5, 4])]
    stored = {b"asset-0": b"zero", b"asset-3": b"three"}

    ends = {p: 100 + p for p in range(6)}

    report = asyncio.run(scorer.process(batch, stored.get, ends))

    even, odd = recorders
    assert [(m.partition, m.offset) for m in even.batches[0]] == [(0, 0), (2, 2), (0, 4), (4, 6)]
    assert [(m.partition, m.offset) for m in odd.batches[0]] == [(1, 1), (3, 3), (5, 5)]
    assert even.states[0] == {b"asset-0": b"zero", b"asset-2": None, b"asset-4": None}
    assert odd.states[0] == {b"asset-1": None, b"asset-3": b"three", b"asset-5": None}
    assert even.ends == odd.ends == [ends]
    assert report.predictions == len(batch)


def test_a_batch_of_one_helpers_partitions_does_not_call_the_other(
    tmp_path: Any, cnc: Profile, cnc_model: ScoringModel,
) -> None:
    scorer, recorders = _recorded(tmp_path, cnc, cnc_model)

    asyncio.run(scorer.process([Inbound(b"a", b"v", "telemetry", 3, 0)], lambda key: None))

    assert [len(r.batches) for r in recorders] == [0, 1]

"""Two batches in flight: folding on from kept states, in-order completion, in-order resends.

The processor tests use no broker; the pipeline and scorer tests pass fakes for the scoring
helper (tests/integration run the real ones under kill -9, rebalances and broker restarts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from assetwatch.agents.worker.helper_process import HelperDiedError
from assetwatch.agents.worker.metrics import Metrics
from assetwatch.agents.worker.pipeline import BatchPipeline, LogEndsOf
from assetwatch.agents.worker.scoring import ProcessScorer
from assetwatch.features.baseline import Baseline
from assetwatch.features.profiles import Profile
from assetwatch.features.state import AssetState
from assetwatch.models.bundle import ScoringModel
from assetwatch.schemas.codecs import codec
from assetwatch.scoring.buckets import FAILURE_PROBABILITY_BUCKETS, LATENCY_BUCKETS_S, bucketize
from assetwatch.scoring.outcome import BatchReport, Outcome
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound
from assetwatch.settings import Settings

PARTITION = 3


@pytest.fixture
def readings(make_reading: Callable[..., dict[str, Any]], now_ms: int) -> list[Inbound]:
    """Three assets' readings a second apart, interleaved, on one partition."""
    encode = codec("TelemetryReading").encode
    out = []
    for i in range(60):
        asset = f"cnc-00{i % 3}"
        reading = make_reading(asset_id=asset, timestamp=now_ms - 120_000 + i * 1000,
                               sensors={"temperature": 60.0 + i % 7})
        out.append(Inbound(asset.encode(), encode(reading), "telemetry", PARTITION, i))
    return out


@pytest.fixture
def make_processor(make_settings: Callable[..., Settings], cnc: Profile,
                   cnc_model: ScoringModel, now_ms: int) -> Callable[[], BatchProcessor]:
    settings = make_settings()
    return lambda: BatchProcessor(settings, {"cnc": cnc}, lambda _: cnc_model,
                                  clock=lambda: now_ms / 1000)


def _run(processor: BatchProcessor, batch: list[Inbound], store: dict[bytes, bytes],
         write: bool = True) -> Outcome:
    outcome = processor.process(batch, store.get)
    if write:
        store.update({asset: raw for asset, (_, raw) in outcome.states.items()})
    return outcome


def _predictions(*outcomes: Outcome) -> list[bytes]:
    return [p.value for outcome in outcomes for p in outcome.predictions]


@pytest.mark.parametrize("split", [1, 20, 31, 59])
def test_a_batch_sent_before_the_last_ones_states_were_written_folds_on_from_them(
    make_processor: Callable[[], BatchProcessor], readings: list[Inbound], split: int,
) -> None:
    straight = _run(make_processor(), readings, {})
    processor, table = make_processor(), {}

    first = _run(processor, readings[:split], table, write=False)  # still in flight
    second = _run(processor, readings[split:], table, write=False)

    assert _predictions(first, second) == _predictions(straight)
    assert {**first.states, **second.states} == straight.states


def test_after_a_failed_batch_its_readings_are_folded_again_not_taken_as_replays(
    make_processor: Callable[[], BatchProcessor], readings: list[Inbound],
) -> None:
    processor, table = make_processor(), {}
    first = _run(processor, readings[:30], table, write=False)
    assert _run(processor, readings[:30], table, write=False).predictions == []  # kept: replays

    processor.forget()  # the batch failed: its outputs may not have been delivered

    assert _predictions(_run(processor, readings[:30], table)) == _predictions(first)


def test_a_table_state_further_along_wins_over_the_kept_one(
    make_processor: Callable[[], BatchProcessor], readings: list[Inbound],
) -> None:
    straight = _run(make_processor(), readings, {})
    here, table = make_processor(), {}
    _run(here, readings[:10], table, write=False)  # then the partition moved away...
    _run(make_processor(), readings[:40], table)  # ...and its new owner went further

    back = _run(here, readings[40:], table)

    assert _predictions(back) == _predictions(straight)[40:]


class Queue:
    """The agent's channel queue: events put by the test, StopAsyncIteration at the end."""

    END = object()

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(self, item: Any) -> None:
        self._queue.put_nowait(item)

    async def get(self) -> Any:
        item = await self._queue.get()
        if item is Queue.END:
            raise StopAsyncIteration
        return item

    def empty(self) -> bool:
        return self._queue.empty()

    def get_nowait(self) -> Any:
        return self._queue.get_nowait()

    def size(self) -> int:
        return self._queue.qsize()


def _report(batch: list[Inbound]) -> BatchReport:
    return BatchReport(predictions=len(batch), anomalies=0, dead_letters={}, states={},
                       replayed=0, latency=bucketize(np.empty(0), LATENCY_BUCKETS_S),
                       failure_probability=bucketize(np.empty(0), FAILURE_PROBABILITY_BUCKETS))


class GatedScorer:
    """Holds each batch until the test releases it; notes what was acked when each came."""

    batches_in_flight = 2

    def __init__(self, acked: list[int], fail_first: bool = False) -> None:
        self.acked, self.fail_first = acked, fail_first
        self.calls: list[tuple[list[int], list[int]]] = []
        """(offsets of the batch, offsets acked when it was sent)."""
        self.gates: list[asyncio.Event] = []
        self.sent = asyncio.Event()
        self.ends: list[Any] = []
        """The log ends each batch came with."""

    async def process(self, batch: list[Inbound], load: Any, ends: Any = None) -> BatchReport:
        gate = asyncio.Event()
        self.gates.append(gate)
        self.calls.append(([m.offset for m in batch], list(self.acked)))
        self.ends.append(ends)
        self.sent.set()
        await gate.wait()
        if self.fail_first and len(self.calls) and batch[0].offset == 0:
            raise RuntimeError("the helper failed")
        return _report(batch)


def _event(offset: int) -> Any:
    return SimpleNamespace(key=b"a", value=b"{}", topic="telemetry", partition=PARTITION,
                           offset=offset, generation_id=1)


async def _two_in_flight(scorer: GatedScorer, queue: Queue, acked: list[int],
                         order: tuple[int, int]) -> None:
    """Batch [0, 1] sent, then [2, 3] while it is scored; released in ``order``."""
    for offset in (0, 1):
        queue.put(_event(offset))
    while len(scorer.calls) < 1:
        scorer.sent.clear()
        await scorer.sent.wait()
    for offset in (2, 3):
        queue.put(_event(offset))
    while len(scorer.calls) < 2:
        scorer.sent.clear()
        await scorer.sent.wait()
    for i in order:
        scorer.gates[i].set()
    queue.put(Queue.END)


def _pipeline(scorer: GatedScorer, log_ends: LogEndsOf | None = None) -> BatchPipeline:
    settings = Settings(_env_file=None, batch_max_wait_s=0)  # type: ignore[call-arg]
    table = SimpleNamespace(data={}, send_changelog=lambda *args: None)

    def ack(messages: Any) -> None:
        scorer.acked.extend(m.offset for m in messages)

    return BatchPipeline(settings, scorer, table, Metrics(CollectorRegistry()), ack,  # type: ignore[arg-type]
                         log_ends=log_ends)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_the_next_batch_is_sent_while_one_is_scored_and_they_complete_in_order(
    order: tuple[int, int],
) -> None:
    acked: list[int] = []
    scorer = GatedScorer(acked)

    async def run() -> None:
        queue = Queue()
        await asyncio.gather(_pipeline(scorer).run(queue),
                             _two_in_flight(scorer, queue, acked, order))

    asyncio.run(run())

    assert scorer.calls == [([0, 1], []), ([2, 3], [])]  # the second before the first's acks
    assert acked == [0, 1, 2, 3]


def test_each_batch_goes_to_the_scorer_with_its_partitions_log_ends_when_it_was_taken(
) -> None:
    acked: list[int] = []
    scorer = GatedScorer(acked)
    asked: list[list[int]] = []

    def log_ends(messages: Any) -> dict[int, int]:
        asked.append([m.offset for m in messages])
        return {PARTITION: 100 + len(asked)}

    async def run() -> None:
        queue = Queue()
        await asyncio.gather(_pipeline(scorer, log_ends).run(queue),
                             _two_in_flight(scorer, queue, acked, (0, 1)))

    asyncio.run(run())
    assert asked == [[0, 1], [2, 3]]
    assert scorer.ends == [{PARTITION: 101}, {PARTITION: 102}]


def test_with_batches_in_flight_no_more_than_a_batch_is_taken_from_the_queue() -> None:
    """The rest stays queued: the queue fills, so the consumer's pump holds back."""
    acked: list[int] = []
    scorer = GatedScorer(acked)
    settings = Settings(_env_file=None, batch_max_wait_s=0, batch_max_events=2)  # type: ignore[call-arg]
    table = SimpleNamespace(data={}, send_changelog=lambda *args: None)
    pipeline = BatchPipeline(settings, scorer, table, Metrics(CollectorRegistry()),  # type: ignore[arg-type]
                             lambda messages: acked.extend(m.offset for m in messages))

    async def feed(queue: Queue) -> None:
        queue.put(_event(0))
        while not scorer.calls:
            scorer.sent.clear()
            await scorer.sent.wait()
        for offset in range(1, 9):
            queue.put(_event(offset))
        while len(scorer.calls) < 2:
            scorer.sent.clear()
            await scorer.sent.wait()
        for _ in range(50):  # turns of the loop in which the pipeline could take them all
            await asyncio.sleep(0)
        left = queue.size()
        released = 0
        while released < len(scorer.gates):
            scorer.gates[released].set()
            released += 1
            while len(scorer.calls) == released and sum(map(len, (c[0] for c in scorer.calls))) < 9:
                scorer.sent.clear()
                await scorer.sent.wait()
        queue.put(Queue.END)
        assert left == 4  # [0] and [1, 2] in flight, [3, 4] taken, four still queued

    async def run() -> None:
        queue = Queue()
        await asyncio.gather(pipeline.run(queue), feed(queue))

    asyncio.run(run())

    assert [offsets for offsets, _ in scorer.calls] == [[0], [1, 2], [3, 4], [5, 6], [7, 8]]
    assert acked == list(range(9))


def test_a_failed_batch_leaves_the_one_after_it_unacked() -> None:
    acked: list[int] = []
    scorer = GatedScorer(acked, fail_first=True)

    async def run() -> None:
        queue = Queue()
        await asyncio.gather(_pipeline(scorer).run(queue),
                             _two_in_flight(scorer, queue, acked, (1, 0)))

    with pytest.raises(RuntimeError, match="the helper failed"):
        asyncio.run(run())
    assert acked == []


def _at(offset: int) -> bytes:
    """A state that holds its partition's readings up to ``offset``."""
    return AssetState([], Baseline(), applied_partition=PARTITION,
                      applied_offset=offset).to_bytes()


class DyingHelper:
    """A helper whose process dies with every call it has the first time; then it answers."""

    def __init__(self) -> None:
        self.died: set[int] = set()
        self.gate = asyncio.Event()
        self.resent: list[tuple[list[int], dict[bytes, bytes | None]]] = []
        self.pid = None

    async def call(self, fn: Any, part: list[Inbound], states: dict[bytes, bytes | None],
                   ends: dict[int, int]) -> BatchReport:
        first = part[0].offset
        if first not in self.died:
            self.died.add(first)
            if first == 0:
                await self.gate.wait()  # the older batch learns of the death last
            self.gate.set()
            raise HelperDiedError("scoring helper")
        self.resent.append(([m.offset for m in part], states))
        return _report(part)._replace(states={m.key: (PARTITION, _at(m.offset))
                                              for m in part if m.key is not None})

    def close(self) -> None:
        pass


def test_after_a_helper_death_the_batches_in_flight_go_again_in_order_with_their_states(
    tmp_path: Any, cnc: Profile, cnc_model: ScoringModel,
) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path,  # type: ignore[call-arg]
                        kafka_bootstrap_servers="127.0.0.1:9")
    helper = DyingHelper()
    scorer = ProcessScorer(settings, {"cnc": cnc}, {"cnc": cnc_model},
                           helpers=[helper])  # type: ignore[list-item]
    older = [Inbound(b"a", b"v", "telemetry", PARTITION, 0)]
    newer = [Inbound(b"a", b"v", "telemetry", PARTITION, 1)]
    table = {b"a": _at(-1)}

    async def run() -> None:
        first = asyncio.ensure_future(scorer.process(older, table.get))
        second = asyncio.ensure_future(scorer.process(newer, table.get))
        await asyncio.gather(first, second)

    asyncio.run(run())

    # the newer batch learnt of the death first, yet went again after the older one, and
    # with the state the older one reported (not yet in the table)
    assert helper.resent == [([0], {b"a": _at(-1)}), ([1], {b"a": _at(0)})]

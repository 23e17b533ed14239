"""The telemetry agent's loop: micro-batches taken from the agent's channel queue.

Faust's conductor keeps filling the queue while a batch is scored (in the scoring helper).
A batch's events are acked only after its outputs are delivered (by the scorer) and its
states written: a crash can repeat a reading's prediction, never lose it, and a state never
holds a reading whose output is missing. Before it is published, and again before its
states and acks, a batch passes the ownership fence (agents/worker/fence.py): a worker that
lost its partitions (frozen past the session timeout) drops it unacked instead. A state is
never replaced by an older one (``supersedes``).

Events delivered under an earlier assignment generation than the consumer's current one are
given up unacked when a batch is formed, as Faust's own streams skip them: the seek to the
committed offsets that follows every assignment reads them again if they are still this
worker's, and their new owner does otherwise. (Faust would clear them from the queue when
flow resumes; faust_internals.AgentFlowControl says why it must not.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from faust.types import EventT

from assetwatch.agents.worker.asset_index import AssetIndex
from assetwatch.agents.worker.fence import Membership, OwnershipFence
from assetwatch.agents.worker.metrics import Metrics
from assetwatch.agents.worker.progress import AgentProgress
from assetwatch.agents.worker.scoring import Scorer
from assetwatch.agents.worker.silence import SilenceWatch
from assetwatch.features.state import supersedes
from assetwatch.scoring.outcome import BatchReport
from assetwatch.scoring.records import Inbound
from assetwatch.settings import Settings

log = logging.getLogger(__name__)

Events = list[EventT[bytes]]


async def next_batch(queue: Any, max_events: int, max_wait_s: float,
                     first: Any = None) -> Events:
    """Up to ``max_events`` events: wait for one (or take ``first``), then what comes in time."""
    events = [await queue.get() if first is None else first]
    deadline = time.monotonic() + max_wait_s
    while len(events) < max_events:
        if not queue.empty():
            events.append(queue.get_nowait())
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            events.append(await asyncio.wait_for(queue.get(), remaining))
        except TimeoutError:
            break
    return events


Abandon = Callable[[Sequence[EventT[bytes]]], None]
"""Gives up a fenced batch's events unacked (faust_internals.abandon)."""


@dataclass(frozen=True)
class Ownership:
    """How the pipeline checks that events and partitions are still this worker's."""

    fence: OwnershipFence
    abandon: Abandon
    generation: Callable[[], int | None]
    """The consumer's assignment generation now (each message carries the one it came under)."""


class BatchPipeline:
    """Runs the agent: score and publish a batch, write its states, ack it; repeat."""

    def __init__(self, settings: Settings, scorer: Scorer, table: Any, metrics: Metrics,
                 silence: SilenceWatch | None = None,
                 progress: AgentProgress | None = None,
                 index: AssetIndex | None = None,
                 ownership: Ownership | None = None) -> None:
        self._settings = settings
        self._ownership = ownership
        self._progress = progress or AgentProgress()
        self._index = index
        self._scorer = scorer
        self._table = table
        self._metrics = metrics
        self._silence = silence

    async def run(self, queue: Any) -> None:
        """Until the app stops; a crash is recorded for /health (Faust restarts the agent)."""
        try:
            await self._run(queue)
        except Exception as exc:
            self._progress.crashed(exc)
            raise

    async def _run(self, queue: Any) -> None:
        settings = self._settings
        while True:
            try:
                first = await queue.get()
                begun = self._ownership.fence.begin() if self._ownership is not None else None
                events = self._current(await next_batch(
                    queue, settings.batch_max_events, settings.batch_max_wait_s, first
                ))
            except StopAsyncIteration:  # stopping: unacked events are re-read by the next owner
                return
            if not events:
                continue
            started = time.perf_counter()
            if not await self._owned(events, begun, "before_publish"):
                continue
            report = await self._score(events)
            if not await self._owned(events, begun, "after_publish"):
                continue
            self._finish(events, report)
            self._metrics.record_batch(len(events), report, time.perf_counter() - started)
            self._progress.batch_done()
            if self._silence is not None:
                self._silence.seen(report.seen)
            if self._index is not None:
                self._index.record(report)

    async def _score(self, events: Sequence[EventT[bytes]]) -> BatchReport:
        batch = [
            Inbound(e.message.key, e.message.value, e.message.topic, e.message.partition,
                    e.message.offset)
            for e in events
        ]
        return await self._scorer.process(batch, self._table.data.get)

    def _current(self, events: Events) -> Events:
        """The events delivered under the current assignment; the others are given up."""
        if self._ownership is None:
            return events
        generation = self._ownership.generation()
        current = [e for e in events if e.message.generation_id == generation]
        if len(current) < len(events):
            stale = [e for e in events if e.message.generation_id != generation]
            self._ownership.abandon(stale)
            self._metrics.fenced("before_rebalance", len(stale))
            log.info("%d readings delivered before the latest rebalance left unacked: the "
                     "seek to the committed offsets delivers them again", len(stale))
        return current

    async def _owned(self, events: Sequence[EventT[bytes]], begun: Membership | None,
                     stage: str) -> bool:
        """True if the worker still owns the batch's partitions; else the batch is dropped."""
        if self._ownership is None:
            return True
        if await self._ownership.fence.confirm(begun):
            return True
        self._ownership.abandon(events)
        self._metrics.fenced(stage, len(events))
        log.warning("batch of %d dropped unacked %s: this worker lost its partitions "
                    "(frozen past the session timeout?); their new owner reads them again",
                    len(events), stage.replace("_", " "))
        return False

    def _finish(self, events: Sequence[EventT[bytes]], report: BatchReport) -> None:
        """With the outputs delivered: write the states, then ack the events.

        No await from the fence's check to here: nothing else runs on the loop in between.
        """
        data = self._table.data
        for asset, (partition, raw) in report.states.items():
            if not supersedes(raw, data.get(asset)):  # a newer state arrived meanwhile
                continue
            data[asset] = raw
            self._table.send_changelog(partition, asset, raw)
        for event in events:
            event.ack()
        if report.dead_letters:
            log.info("batch of %d: %d dead letters (%s)", len(events),
                     sum(report.dead_letters.values()), ", ".join(sorted(report.dead_letters)))

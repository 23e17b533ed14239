"""The telemetry agent's loop: micro-batches taken from the agent's channel queue.

Faust's conductor keeps filling the queue while a batch is scored (in the scoring helper).
A batch's events are acked only after its outputs are delivered (by the scorer) and its
states written: a crash can repeat a reading's prediction, never lose it, and a state never
holds a reading whose output is missing. Before it is published, and again before its
states and acks, a batch passes the ownership fence (agents/worker/fence.py): a worker that
lost its partitions (frozen past the session timeout) drops it unacked instead. A state is
never replaced by an older one (``supersedes``).

With ``batches_in_flight`` 2 (the default with a scoring helper), the next batch is sent
while one is scored, so the helper does not wait while the worker writes states and acks;
the helper folds on from the states it kept for the batch before (scoring/state_cache.py),
and batches complete (fence, states, acks) strictly in the order they were taken.

The queue holds the telemetry topic's messages as fetched: the consumer's pump puts them
there past Faust's conductor (faust_internals.AssetwatchConsumer), so no Event is made.
Messages delivered under an earlier assignment generation than the consumer's current one are
given up unacked when a batch is formed, as Faust's own streams skip them: the seek to the
committed offsets that follows every assignment reads them again if they are still this
worker's, and their new owner does otherwise. (Faust would clear them from the queue when
flow resumes; faust_internals.AgentFlowControl says why it must not.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from faust.types import Message

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

Messages = list[Message]


async def next_batch(queue: Any, max_events: int, max_wait_s: float,
                     first: Any = None) -> Messages:
    """Up to ``max_events``: ``first`` (one or a list) or the next, then what comes in time."""
    events = first if isinstance(first, list) else [
        await queue.get() if first is None else first]
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


Abandon = Callable[[Sequence[Message]], None]
"""Gives up a fenced batch's messages unacked (faust_internals.abandon)."""

Ack = Callable[[Sequence[Message]], None]
"""Acks a finished batch's messages: their offsets may be committed (faust_internals.ack)."""

LogEndsOf = Callable[[Sequence[Message]], dict[int, int]]
"""Where the partitions of a batch's messages end (faust_internals.log_ends)."""


@dataclass(frozen=True)
class Ownership:
    """How the pipeline checks that events and partitions are still this worker's."""

    fence: OwnershipFence
    abandon: Abandon
    generation: Callable[[], int | None]
    """The consumer's assignment generation now (each message carries the one it came under)."""


@dataclass
class _InFlight:
    """A batch sent to the scorer and not yet acked."""

    events: Messages
    begun: Membership | None
    started: float
    report: asyncio.Future[BatchReport]


class _Taker:
    """The events of the next batch, taken from the queue while earlier batches are scored."""

    def __init__(self, queue: Any, max_events: int,
                 begin: Callable[[], Membership | None]) -> None:
        self._queue, self._max_events, self._begin = queue, max_events, begin
        self._get: asyncio.Future[Any] | None = None
        self.events: Messages = []
        self.begun: Membership | None = None
        """The membership when the first of ``events`` was taken (the fence's start)."""

    async def wait(self, other: asyncio.Future[BatchReport] | None) -> None:
        """Until an event comes (then what else is queued, to the bound) or ``other`` is done.

        With the bound reached only ``other`` is waited for: the rest stays queued, so the
        queue fills and the consumer's pump holds back (and pauses fetching), instead of
        one event being taken per wakeup past the bound.

        Raises StopAsyncIteration when the queue does (the agent stops).
        """
        if len(self.events) >= self._max_events and other is not None:
            await asyncio.wait({other})
            return
        if self._get is None:
            self._get = asyncio.ensure_future(self._queue.get())
        waits: set[asyncio.Future[Any]] = {self._get} if other is None else {self._get, other}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if not self._get.done():
            return
        get, self._get = self._get, None
        event = get.result()
        if not self.events:
            self.begun = self._begin()
        self.events.append(event)
        queue = self._queue
        while len(self.events) < self._max_events and not queue.empty():
            self.events.append(queue.get_nowait())

    def take(self) -> Messages:
        """The events taken so far, as a batch; the next batch starts empty."""
        events, self.events = self.events, []
        return events

    def close(self) -> None:
        """Stop waiting for an event (stopping: events not taken stay queued)."""
        if self._get is not None:
            self._get.cancel()


class BatchPipeline:
    """Runs the agent: score and publish a batch, write its states, ack it; repeat.

    With ``batches_in_flight`` above 1 (the scorer says how many it takes), the next batch
    is sent while one is scored, once as many events are queued as the last batch had (or
    when nothing is left in flight), so the helper need not wait for the worker to write
    and ack. Batches complete strictly in order.
    """

    def __init__(self, settings: Settings, scorer: Scorer, table: Any, metrics: Metrics,
                 ack: Ack, silence: SilenceWatch | None = None,
                 progress: AgentProgress | None = None,
                 index: AssetIndex | None = None,
                 ownership: Ownership | None = None,
                 log_ends: LogEndsOf | None = None) -> None:
        """``log_ends``: handed to the scorer with each batch, against impossible states."""
        self._settings = settings
        self._log_ends = log_ends or (lambda messages: {})
        self._ack = ack
        self._ownership = ownership
        self._progress = progress or AgentProgress()
        self._index = index
        self._scorer = scorer
        self._depth: int = getattr(scorer, "batches_in_flight", 1)  # fakes: one at a time
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
        inflight: deque[_InFlight] = deque()
        taker = _Taker(queue, settings.batch_max_events, self._begin)
        try:
            while True:
                try:
                    await taker.wait(inflight[0].report if inflight else None)
                except StopAsyncIteration:  # stopping: what was taken is still scored
                    if taker.events:
                        await self._submit(taker.take(), taker.begun, inflight)
                    while inflight:
                        await self._complete(inflight.popleft())
                    return
                if inflight and inflight[0].report.done():
                    await self._complete(inflight.popleft())
                if taker.events and self._ready(taker.events, inflight):
                    begun, events = taker.begun, taker.take()
                    if not inflight and settings.batch_max_wait_s > 0:
                        events = await next_batch(queue, settings.batch_max_events,
                                                  settings.batch_max_wait_s, events)
                    await self._submit(events, begun, inflight)
        finally:
            taker.close()
            for item in inflight:  # a batch failed: the rest stay unacked, read again later
                item.report.cancel()

    def _ready(self, events: Messages, inflight: deque[_InFlight]) -> bool:
        """Send the taken events now? At once when idle; else when as many as the last batch."""
        if not inflight:
            return True
        return (len(inflight) < self._depth
                and len(events) >= min(self._settings.batch_max_events,
                                       len(inflight[-1].events)))

    def _begin(self) -> Membership | None:
        return self._ownership.fence.begin() if self._ownership is not None else None

    async def _submit(self, events: Messages, begun: Membership | None,
                      inflight: deque[_InFlight]) -> None:
        events = self._current(events)
        if not events or not await self._owned(events, begun, "before_publish"):
            return
        batch = [
            Inbound(m.key, m.value, m.topic, m.partition, m.offset)
            for m in events
        ]
        report = asyncio.ensure_future(
            self._scorer.process(batch, self._table.data.get, self._log_ends(events)))
        inflight.append(_InFlight(events, begun, time.perf_counter(), report))

    async def _complete(self, item: _InFlight) -> None:
        report = await item.report
        if not await self._owned(item.events, item.begun, "after_publish"):
            return
        self._finish(item.events, report)
        self._metrics.record_batch(len(item.events), report, time.perf_counter() - item.started)
        self._progress.batch_done()
        if self._silence is not None:
            self._silence.seen(report.seen)
        if self._index is not None:
            self._index.record(report)

    def _current(self, events: Messages) -> Messages:
        """The events delivered under the current assignment; the others are given up."""
        if self._ownership is None:
            return events
        generation = self._ownership.generation()
        current = [m for m in events if m.generation_id == generation]
        if len(current) < len(events):
            stale = [m for m in events if m.generation_id != generation]
            self._ownership.abandon(stale)
            self._metrics.fenced("before_rebalance", len(stale))
            log.info("%d readings delivered before the latest rebalance left unacked: the "
                     "seek to the committed offsets delivers them again", len(stale))
        return current

    async def _owned(self, events: Sequence[Message], begun: Membership | None,
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

    def _finish(self, events: Sequence[Message], report: BatchReport) -> None:
        """With the outputs delivered: write the states, then ack the events.

        No await from the fence's check to here: nothing else runs on the loop in between.
        """
        data = self._table.data
        for asset, (partition, raw) in report.states.items():
            if not supersedes(raw, data.get(asset)):  # a newer state arrived meanwhile
                continue
            data[asset] = raw
            self._table.send_changelog(partition, asset, raw)
        self._ack(events)
        if report.dead_letters:
            log.info("batch of %d: %d dead letters (%s)", len(events),
                     sum(report.dead_letters.values()), ", ".join(sorted(report.dead_letters)))

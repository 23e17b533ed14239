"""Where a batch is processed and its outputs delivered: helper processes, or inline.

Profiling a worker here showed ~65% of its main thread in feature folding, scoring and
encoding, all pure Python under the GIL, beside Faust's fetching and delivery. So by default
helper processes do that work (``scoring_processes``, each its share of the partitions): the
worker sends each its part of a batch of raw messages and the current states of the part's
assets; a helper publishes the predictions and dead letters and, once the broker has them
all, answers with counts and the changed states, while Faust keeps filling the agent's
queue. A helper keeps nothing between batches that a rebalance or a restart would need (only
decoded copies of the states it was sent). Messages cross as named tuples of bytes (about
2 µs per message; slotted dataclasses cost 12 µs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from assetwatch.agents.worker.collector import tune_for_batches
from assetwatch.agents.worker.helper_process import HelperDiedError, HelperProcess
from assetwatch.agents.worker.outputs import OutputPublisher
from assetwatch.agents.worker.progress import AgentProgress
from assetwatch.errors import ScoringHelperError
from assetwatch.features.profiles import Profile
from assetwatch.features.state import further_along
from assetwatch.models.bundle import ScoringModel
from assetwatch.scoring.outcome import BatchReport, merged
from assetwatch.scoring.preparation import LoadState, LogEnds
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound
from assetwatch.settings import Settings

log = logging.getLogger(__name__)

@dataclass
class Served:
    """The models a processor scores with; a scorer changes them between two batches."""

    champions: dict[str, ScoringModel]
    shadows: dict[str, ScoringModel] = field(default_factory=dict)
    """The challenger of each shadow-scored profile."""

    def put(self, profile: str, model: ScoringModel | None, shadow: bool) -> None:
        """Serve ``model`` for ``profile`` as champion or shadow; a None shadow stops shadowing."""
        if shadow:
            if model is None:
                self.shadows.pop(profile, None)
            else:
                self.shadows[profile] = model
        elif model is not None:
            self.champions[profile] = model

    def processor(self, settings: Settings, profiles: Mapping[str, Profile]) -> BatchProcessor:
        """A processor that looks the models up at every batch, so :meth:`put` takes effect."""
        return BatchProcessor(settings, profiles, self.champions.__getitem__,
                              shadows=self.shadows, partitions=settings.partitions)


_helper: tuple[BatchProcessor, OutputPublisher, Served] | None = None
"""The helper process's processor, publisher and models (built by :func:`start_in_helper`)."""


PARENT_CHECK_S = 1.0


def _exit_with_parent(parent: int) -> None:
    """Exit once the worker that started this helper is gone (a kill -9 leaves no goodbye)."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)  # a watchdog's period, not a wait for other work
    os._exit(1)


def start_in_helper(settings: Settings, profiles: Mapping[str, Profile], served: Served) -> None:
    """Build the helper's processor, publisher and models (run by the pool's initializer)."""
    global _helper
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s [scoring]: %(message)s")
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="parent-watch",
                     daemon=True).start()
    _helper = (served.processor(settings, profiles), OutputPublisher(settings), served)
    tune_for_batches()


def _process_in_helper(
    batch: Sequence[Inbound], states: Mapping[bytes, bytes | None], log_ends: LogEnds
) -> BatchReport:
    if _helper is None:
        raise RuntimeError("the scoring helper was not initialised")
    processor, publisher, _ = _helper
    try:
        outcome = processor.process(batch, states.get, log_ends)
        publisher.deliver(outcome)
    except Exception as exc:  # only plain data crosses back: the cause may not pickle
        processor.forget()
        raise ScoringHelperError(f"{type(exc).__name__}: {exc}") from None
    return outcome.report(time.time())


def _put_in_helper(profile: str, model: ScoringModel | None, shadow: bool) -> None:
    if _helper is None:
        raise RuntimeError("the scoring helper was not initialised")
    _helper[2].put(profile, model, shadow)


class InlineScorer:
    """Processes batches on the worker's own thread (ASSETWATCH_SCORING_PROCESS=false)."""

    def __init__(
        self, settings: Settings, profiles: Mapping[str, Profile],
        models: Mapping[str, ScoringModel],
    ) -> None:
        self._served = Served(dict(models))
        self._processor = self._served.processor(settings, profiles)
        self._publisher = OutputPublisher(settings)

    batches_in_flight = 1
    """One batch at a time: the next is processed on this thread only once this one is out."""

    async def process(self, batch: Sequence[Inbound], load_state: LoadState,
                      log_ends: LogEnds | None = None) -> BatchReport:
        """Score ``batch``, publish its outputs, report once they are acknowledged."""
        try:
            outcome = self._processor.process(batch, load_state, log_ends)
            await asyncio.to_thread(self._publisher.deliver, outcome)
        except Exception:
            self._processor.forget()
            raise
        return outcome.report(time.time())

    async def swap(self, model: ScoringModel) -> None:
        """Serve ``model`` for its profile from the next batch on."""
        self._served.put(model.bundle.profile, model, shadow=False)

    async def shadow(self, profile: str, model: ScoringModel | None) -> None:
        """Shadow-score ``profile`` with ``model`` (None: stop) from the next batch on."""
        self._served.put(profile, model, shadow=True)

    def close(self) -> None:
        """Flush the outputs still queued."""
        self._publisher.close()


class ProcessScorer:
    """Processes batches in ``scoring_processes`` helper processes, split by partition.

    Each helper (:class:`HelperProcess`) takes the partitions whose number modulo the count
    is its index, so an asset is always folded in the same helper, in order, and the helpers
    of one batch never share a state; their reports are merged into the batch's.

    Up to ``batches_in_flight`` batches may be in a helper at once: the worker sends a batch
    while the one before is still scored, with the states its table holds, and the helper
    folds on from the newer states it kept (scoring/state_cache.py). A helper that dies is
    replaced and its parts of the batches in flight are sent again one after the other, in
    their order, each with the states the ones before it reported. Outputs a dead helper had
    published are then published twice (at-least-once), never none.
    """

    def __init__(
        self, settings: Settings, profiles: Mapping[str, Profile],
        models: Mapping[str, ScoringModel], progress: AgentProgress | None = None,
        helpers: Sequence[HelperProcess] | None = None,
    ) -> None:
        """``helpers``: instead of starting ``scoring_processes`` (tests pass stand-ins)."""
        self._served = Served(dict(models))
        args = (settings, dict(profiles), self._served)
        count = settings.scoring_processes if helpers is None else len(helpers)
        self._helpers = list(helpers) if helpers is not None else [
            HelperProcess(settings, start_in_helper, args, progress,
                          "scoring helper" if count == 1 else f"scoring helper {i + 1}/{count}")
            for i in range(count)
        ]
        self.batches_in_flight = settings.batches_in_flight
        self._calls: list[deque[object]] = [deque() for _ in range(count)]
        """Each helper's calls not yet returned, oldest first."""
        self._returned = asyncio.Event()
        self._reported = ReportedStates((settings.batches_in_flight + 1)
                                        * settings.batch_max_events)

    @property
    def helper_pids(self) -> list[int | None]:
        """Each helper's process id (None while it starts)."""
        return [helper.pid for helper in self._helpers]

    async def process(self, batch: Sequence[Inbound], load_state: LoadState,
                      log_ends: LogEnds | None = None) -> BatchReport:
        """Score ``batch`` in the helpers, each its own partitions, and merge their reports.

        Every part is finished (delivered or failed) before this returns or raises.
        ``log_ends``: where the batch's partitions ended when it was taken.
        """
        count = len(self._helpers)
        parts: list[list[Inbound]] = [[] for _ in range(count)]
        for inbound in batch:
            parts[inbound.partition % count].append(inbound)
        busy = [i for i, part in enumerate(parts) if part] or [0]
        ends = dict(log_ends or {})
        results = await asyncio.gather(
            *(self._part(i, parts[i], load_state, ends) for i in busy), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return merged([r for r in results if not isinstance(r, BaseException)])

    async def _part(self, index: int, part: list[Inbound], load_state: LoadState,
                    log_ends: dict[int, int]) -> BatchReport:
        """One helper's part of a batch; after a helper death, sent again in its turn."""
        calls, ticket = self._calls[index], object()
        calls.append(ticket)
        try:
            while True:
                try:
                    report = await self._helpers[index].call(
                        _process_in_helper, part, self._reported.states(part, load_state),
                        log_ends)
                except HelperDiedError:
                    while calls[0] is not ticket:  # the calls before it go again first
                        await self._returned.wait()
                    continue
                self._reported.record(report.states)
                return report
        finally:
            calls.remove(ticket)
            returned, self._returned = self._returned, asyncio.Event()
            returned.set()

    async def swap(self, model: ScoringModel) -> None:
        """Serve ``model`` for its profile from the next batch on.

        Each helper runs one call at a time in submission order, so the swap lands between
        two batches; a replacement helper starts with the new model too.
        """
        await self._put(model.bundle.profile, model, shadow=False)

    async def shadow(self, profile: str, model: ScoringModel | None) -> None:
        """Shadow-score ``profile`` with ``model`` (None: stop) from the next batch on."""
        await self._put(profile, model, shadow=True)

    async def _put(self, profile: str, model: ScoringModel | None, shadow: bool) -> None:
        self._served.put(profile, model, shadow)  # what a replacement helper starts with
        await asyncio.gather(*(helper.call_once(_put_in_helper, profile, model, shadow)
                               for helper in self._helpers))

    def close(self) -> None:
        """Stop the helpers, waiting for them to exit."""
        for helper in self._helpers:
            helper.close()


class ReportedStates:
    """The states batches reported lately, which the worker's table may not hold yet.

    A batch sent after a helper died goes to a helper that kept nothing: it must be sent the
    states the batches before it ended with, written to the table or not.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._states: OrderedDict[bytes, bytes] = OrderedDict()

    def record(self, states: Mapping[bytes, tuple[int, bytes]]) -> None:
        """Note a report's changed states (key -> (partition, bytes))."""
        kept = self._states
        for key, (_, raw) in states.items():
            kept[key] = raw
            kept.move_to_end(key)
        while len(kept) > self._capacity:
            kept.popitem(last=False)

    def states(self, batch: Sequence[Inbound], load_state: LoadState
               ) -> dict[bytes, bytes | None]:
        """The newest state of each asset ``batch`` has a reading of: stored, or reported."""
        out = {}
        for key in {m.key for m in batch if m.key is not None}:
            raw, reported = load_state(key), self._states.get(key)
            out[key] = reported if reported is not None and further_along(reported, raw) else raw
        return out


Scorer = InlineScorer | ProcessScorer


def make_scorer(
    settings: Settings, profiles: Mapping[str, Profile], models: Mapping[str, ScoringModel],
    progress: AgentProgress | None = None,
) -> Scorer:
    """The scorer the settings ask for."""
    if settings.scoring_process:
        return ProcessScorer(settings, profiles, models, progress)
    return InlineScorer(settings, profiles, models)

"""Where a batch is processed and its outputs delivered: a helper process, or inline.

Profiling a worker here showed ~65% of its main thread in feature folding, scoring and
encoding, all pure Python under the GIL, beside Faust's fetching and delivery. So by default
one helper process does that work: the worker sends it a batch of raw messages and the
current states of the batch's assets; the helper publishes the predictions and dead letters
and, once the broker has them all, answers with counts and the changed states, while Faust
keeps filling the agent's queue. The helper keeps no state between batches, so a rebalance
or a restart needs nothing from it. Messages cross as named tuples of bytes (about 2 µs per
message; slotted dataclasses cost 12 µs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field

from assetwatch.agents.worker.collector import tune_for_batches
from assetwatch.agents.worker.helper_start import start_ignoring_interrupts
from assetwatch.agents.worker.outputs import OutputPublisher
from assetwatch.agents.worker.progress import AgentProgress
from assetwatch.errors import ScoringHelperError, ScoringHelperLostError
from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import ScoringModel
from assetwatch.scoring.outcome import BatchReport
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound
from assetwatch.settings import Settings

log = logging.getLogger(__name__)

LoadState = Callable[[bytes], bytes | None]

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
    batch: Sequence[Inbound], states: Mapping[bytes, bytes | None]
) -> BatchReport:
    if _helper is None:
        raise RuntimeError("the scoring helper was not initialised")
    processor, publisher, _ = _helper
    try:
        outcome = processor.process(batch, states.get)
        publisher.deliver(outcome)
    except Exception as exc:  # only plain data crosses back: the cause may not pickle
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

    async def process(self, batch: Sequence[Inbound], load_state: LoadState) -> BatchReport:
        """Score ``batch``, publish its outputs, report once they are acknowledged."""
        outcome = self._processor.process(batch, load_state)
        await asyncio.to_thread(self._publisher.deliver, outcome)
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
    """Processes batches in one helper process, replaced when it dies.

    A replacement is spawned on a daemon thread (:func:`start_helper`) and awaited with
    ``scoring_start_timeout_s``: the spawn writes the pickled settings and models into the
    child's pipe, and that write blocks for good if the child dies before reading it all;
    on the loop it stopped heartbeats, commits and /health. Failed starts and batches that
    kill the helper are retried with back-off; after ``scoring_helper_attempts`` failures
    in a row the worker fails loudly (:meth:`AgentProgress.fail`: /live down, exit status 3)
    and :class:`ScoringHelperLostError` is raised.

    A batch retried on a new helper may publish some outputs twice (at-least-once), never
    none.
    """

    def __init__(
        self, settings: Settings, profiles: Mapping[str, Profile],
        models: Mapping[str, ScoringModel], progress: AgentProgress | None = None,
    ) -> None:
        self._served = Served(dict(models))
        self._args = (settings, dict(profiles), self._served)
        self._progress = progress
        self._timeout_s = settings.scoring_start_timeout_s
        self._attempts = settings.scoring_helper_attempts
        self._backoff_s = settings.scoring_restart_backoff_s
        self._failures = 0
        self._pool: ProcessPoolExecutor | None = None
        self._starting: Starting | None = start_helper(self._args)  # models load from now on
        self._lock = asyncio.Lock()
        self.helper_pid: int | None = None

    async def process(self, batch: Sequence[Inbound], load_state: LoadState) -> BatchReport:
        """Score ``batch`` in the helper; a helper that died is replaced and the batch retried."""
        states = {key: load_state(key) for key in {m.key for m in batch} if key is not None}
        loop = asyncio.get_running_loop()
        while True:
            pool = await self._helper()
            try:
                report = await loop.run_in_executor(pool, _process_in_helper, batch, states)
            except BrokenProcessPool:
                self._lost(pool, "the scoring helper died during a batch")
                continue
            self._failures = 0
            return report

    async def _helper(self) -> ProcessPoolExecutor:
        """The running helper, or a new one (raises :class:`ScoringHelperLostError`)."""
        async with self._lock:
            while self._pool is None:
                await self._start_one()
            return self._pool

    async def _start_one(self) -> None:
        if self._starting is None:
            delay = min(self._backoff_s * 2 ** (self._failures - 1), MAX_BACKOFF_S)
            await asyncio.sleep(delay)  # back-off before a respawn, not a synchronisation
            self._starting = start_helper(self._args)
        starting, self._starting = self._starting, None
        wrapped = asyncio.wrap_future(starting)
        done, _ = await asyncio.wait({wrapped}, timeout=self._timeout_s)
        if not done:
            starting.add_done_callback(_shut_late_pool)
            self._failed(f"the new scoring helper did not start within {self._timeout_s}s")
        elif wrapped.exception() is not None:
            self._failed(f"the new scoring helper failed to start: {wrapped.exception()!r}")
        else:
            self._pool, self.helper_pid = wrapped.result()
            log.info("scoring helper %d started", self.helper_pid)

    def _lost(self, pool: ProcessPoolExecutor, why: str) -> None:
        if self._pool is pool:
            self._pool = None
            pool.shutdown(wait=False, cancel_futures=True)
        self._failed(why)

    def _failed(self, why: str) -> None:
        self._failures += 1
        if self._failures >= self._attempts:
            lost = ScoringHelperLostError(f"{why}; {self._failures} failures in a row")
            if self._progress is not None:
                self._progress.fail(f"scoring helper lost: {lost}")  # exits the worker
            raise lost
        log.error("%s: starting a new one (failure %d of %d)", why, self._failures,
                  self._attempts)

    async def swap(self, model: ScoringModel) -> None:
        """Serve ``model`` for its profile from the next batch on.

        The helper runs one call at a time in submission order, so the swap lands between
        two batches; a replacement helper starts with the new model too.
        """
        await self._put(model.bundle.profile, model, shadow=False)

    async def shadow(self, profile: str, model: ScoringModel | None) -> None:
        """Shadow-score ``profile`` with ``model`` (None: stop) from the next batch on."""
        await self._put(profile, model, shadow=True)

    async def _put(self, profile: str, model: ScoringModel | None, shadow: bool) -> None:
        self._served.put(profile, model, shadow)  # what a replacement helper starts with
        pool = await self._helper()  # a start under way may have pickled the old models
        try:
            await asyncio.get_running_loop().run_in_executor(
                pool, _put_in_helper, profile, model, shadow)
        except BrokenProcessPool:
            self._lost(pool, "the scoring helper died during a model swap")

    def close(self) -> None:
        """Stop the helper, waiting for it to exit."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._starting is not None:
            self._starting.add_done_callback(_shut_late_pool)


MAX_BACKOFF_S = 30.0

Starting = concurrent.futures.Future[tuple[ProcessPoolExecutor, int]]
"""A helper being started: its pool and process id once it answered."""


def start_helper(args: tuple[Settings, dict[str, Profile], Served]) -> Starting:
    """Start a helper on a daemon thread; the future has its pool and pid once it answers.

    A daemon thread, not the loop's executor: a spawn stuck on a dead child's pipe never
    returns, and an executor thread would hold up the interpreter's exit.
    """
    starting: Starting = concurrent.futures.Future()

    def run() -> None:
        try:
            # spawn, not fork: the worker already runs Kafka client threads.
            pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=start_ignoring_interrupts,
                                       initargs=(pickle.dumps((start_in_helper, args)),))
            starting.set_result((pool, pool.submit(os.getpid).result()))
        except BaseException as exc:  # handed to the awaiting loop as data
            starting.set_exception(exc)

    threading.Thread(target=run, name="scoring-spawn", daemon=True).start()
    return starting


def _shut_late_pool(starting: Starting) -> None:
    """A helper that answered after it was given up on is shut down, not leaked."""
    if not starting.cancelled() and starting.exception() is None:
        starting.result()[0].shutdown(wait=False, cancel_futures=True)


Scorer = InlineScorer | ProcessScorer


def make_scorer(
    settings: Settings, profiles: Mapping[str, Profile], models: Mapping[str, ScoringModel],
    progress: AgentProgress | None = None,
) -> Scorer:
    """The scorer the settings ask for."""
    if settings.scoring_process:
        return ProcessScorer(settings, profiles, models, progress)
    return InlineScorer(settings, profiles, models)

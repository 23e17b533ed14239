"""Where a batch is processed: in a helper process on the machine's other core, or inline.

Profiling a worker here showed ~65% of its main thread in feature folding, scoring and
encoding, all pure Python under the GIL, beside Faust's fetching and delivery. So by default
one helper process does that work: the worker sends it a batch of raw messages and the
current states of the batch's assets, and gets back encoded outputs and the changed states,
while Faust keeps filling the agent's queue. The helper keeps no state between batches, so a
rebalance or a restart needs nothing from it. Messages and outputs cross as named tuples of
bytes (about 2 µs per message both ways; slotted dataclasses cost 12 µs).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from agents.processor import BatchProcessor, Inbound, Outcome
from assetwatch.settings import Settings
from features.profiles import Profile
from models.bundle import ScoringModel

log = logging.getLogger(__name__)

LoadState = Callable[[bytes], bytes | None]

_helper_processor: BatchProcessor | None = None
"""The helper process's processor, built by :func:`_start_helper` (never at import)."""


def _start_helper(
    settings: Settings, profiles: Mapping[str, Profile], models: Mapping[str, ScoringModel]
) -> None:
    global _helper_processor
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s [scoring]: %(message)s")
    _helper_processor = BatchProcessor(settings, profiles, dict(models).__getitem__)


def _process_in_helper(batch: Sequence[Inbound], states: Mapping[bytes, bytes | None]) -> Outcome:
    if _helper_processor is None:
        raise RuntimeError("the scoring helper was not initialised")
    return _helper_processor.process(batch, states.get)


class InlineScorer:
    """Processes batches on the worker's own thread (ASSETWATCH_SCORING_PROCESS=false)."""

    def __init__(
        self, settings: Settings, profiles: Mapping[str, Profile],
        models: Mapping[str, ScoringModel],
    ) -> None:
        self._processor = BatchProcessor(settings, profiles, dict(models).__getitem__)

    async def process(self, batch: Sequence[Inbound], load_state: LoadState) -> Outcome:
        return self._processor.process(batch, load_state)

    def close(self) -> None:
        return None


class ProcessScorer:
    """Processes batches in one helper process; a helper that dies is replaced once per batch."""

    def __init__(
        self, settings: Settings, profiles: Mapping[str, Profile],
        models: Mapping[str, ScoringModel],
    ) -> None:
        self._args = (settings, dict(profiles), dict(models))
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the worker already runs Kafka client threads.
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_helper, initargs=self._args)

    async def process(self, batch: Sequence[Inbound], load_state: LoadState) -> Outcome:
        states = {key: load_state(key) for key in {m.key for m in batch} if key is not None}
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, _process_in_helper, batch, states)
        except BrokenProcessPool:
            log.error("the scoring helper died: starting a new one and retrying the batch")
            self._pool = self._new_pool()
            return await loop.run_in_executor(self._pool, _process_in_helper, batch, states)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


Scorer = InlineScorer | ProcessScorer


def make_scorer(
    settings: Settings, profiles: Mapping[str, Profile], models: Mapping[str, ScoringModel]
) -> Scorer:
    """The scorer the settings ask for."""
    kind = ProcessScorer if settings.scoring_process else InlineScorer
    return kind(settings, profiles, models)

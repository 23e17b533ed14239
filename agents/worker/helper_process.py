"""One scoring helper process: started off the event loop, replaced when it dies.

A replacement is spawned on a daemon thread (:func:`start_helper`) and awaited with
``scoring_start_timeout_s``: the spawn writes the pickled settings and models into the
child's pipe, and that write blocks for good if the child dies before reading it all; on the
loop it stopped heartbeats, commits and /health. Failed starts and calls that kill the helper
are retried with back-off; after ``scoring_helper_attempts`` failures in a row the worker
fails loudly (:meth:`AgentProgress.fail`: /live down, exit status 3) and
:class:`ScoringHelperLostError` is raised. A call whose helper exited is failed even when
the pool does not notice (agents/worker/process_exit.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from assetwatch.agents.worker.helper_start import start_ignoring_interrupts
from assetwatch.agents.worker.process_exit import ExitWatch, result_unless_gone, unstick
from assetwatch.agents.worker.progress import AgentProgress
from assetwatch.errors import ScoringHelperLostError
from assetwatch.settings import Settings

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0

T = TypeVar("T")

Starting = concurrent.futures.Future[tuple[ProcessPoolExecutor, int]]
"""A helper being started: its pool and process id once it answered."""


class HelperDiedError(Exception):
    """The helper process died during a call (a replacement starts on the next one)."""


class HelperProcess:
    """Runs calls in one helper process, in submission order; replaces it when it dies."""

    def __init__(self, settings: Settings, start: Callable[..., None], args: tuple[Any, ...],
                 progress: AgentProgress | None = None, name: str = "scoring helper") -> None:
        """``start(*args)`` runs first in every new helper (it builds what calls use).

        ``args`` are pickled at each start, so a replacement starts with what they hold then
        (the models served at that moment).
        """
        self._start, self._args = start, args
        self._name = name
        self._progress = progress
        self._timeout_s = settings.scoring_start_timeout_s
        self._attempts = settings.scoring_helper_attempts
        self._backoff_s = settings.scoring_restart_backoff_s
        self._failures = 0
        self._pool: ProcessPoolExecutor | None = None
        self._watch: ExitWatch | None = None
        self._starting: Starting | None = self._spawn()  # loads from now on
        self._lock = asyncio.Lock()
        self.pid: int | None = None

    def _spawn(self) -> Starting:
        return start_helper(pickle.dumps((self._start, self._args)))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the helper; :class:`HelperDiedError` if the helper died meanwhile.

        The caller decides when to call again (a new helper starts on the next call): calls
        that depend on each other's order must be repeated in that order.
        """
        pool = await self._helper()
        try:
            result = await self._run(pool, fn, *args)
        except BrokenProcessPool:
            self._lost(pool, f"the {self._name} died during a batch")
            raise HelperDiedError(self._name) from None
        self._failures = 0
        return result

    async def call_once(self, fn: Callable[..., object], *args: Any) -> None:
        """``fn(*args)`` in the helper; not retried if it dies (its replacement starts anew)."""
        pool = await self._helper()  # a start under way may have pickled the old models
        try:
            await self._run(pool, fn, *args)
        except BrokenProcessPool:
            self._lost(pool, f"the {self._name} died during a model swap")

    async def _run(self, pool: ProcessPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in ``pool``; BrokenProcessPool once its helper is gone.

        Also when the pool never notices the exit (agents/worker/process_exit.py).
        """
        exited = self._watch.exited if self._watch is not None else None
        return await result_unless_gone(
            asyncio.get_running_loop().run_in_executor(pool, fn, *args), exited,
            lambda: unstick(pool))

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
            self._starting = self._spawn()
        starting, self._starting = self._starting, None
        wrapped = asyncio.wrap_future(starting)
        done, _ = await asyncio.wait({wrapped}, timeout=self._timeout_s)
        if not done:
            starting.add_done_callback(_shut_late_pool)
            self._failed(f"the new {self._name} did not start within {self._timeout_s}s")
        elif wrapped.exception() is not None:
            self._failed(f"the new {self._name} failed to start: {wrapped.exception()!r}")
        else:
            self._pool, self.pid = wrapped.result()
            self._watch = ExitWatch(self.pid)
            log.info("%s %d started", self._name, self.pid)

    def _lost(self, pool: ProcessPoolExecutor, why: str) -> None:
        """``pool``'s helper died: counted once, however many calls it had."""
        if self._pool is pool:
            self._pool = None
            if self._watch is not None:
                self._watch.close()
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

    def close(self) -> None:
        """Stop the helper, waiting for it to exit."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._starting is not None:
            self._starting.add_done_callback(_shut_late_pool)


def start_helper(payload: bytes) -> Starting:
    """Start a helper on a daemon thread; the future has its pool and pid once it answers.

    ``payload`` is the pickled ``(start, args)`` the helper runs first. A daemon thread, not
    the loop's executor: a spawn stuck on a dead child's pipe never returns, and an executor
    thread would hold up the interpreter's exit.
    """
    starting: Starting = concurrent.futures.Future()

    def run() -> None:
        try:
            # spawn, not fork: the worker already runs Kafka client threads.
            pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=start_ignoring_interrupts,
                                       initargs=(payload,))
            starting.set_result((pool, pool.submit(os.getpid).result()))
        except BaseException as exc:  # handed to the awaiting loop as data
            starting.set_exception(exc)

    threading.Thread(target=run, name="scoring-spawn", daemon=True).start()
    return starting


def _shut_late_pool(starting: Starting) -> None:
    """A helper that answered after it was given up on is shut down, not leaked."""
    if not starting.cancelled() and starting.exception() is None:
        starting.result()[0].shutdown(wait=False, cancel_futures=True)

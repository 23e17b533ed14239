"""Noticing a helper process's exit on the event loop, for calls its pool may never fail.

A ``ProcessPoolExecutor`` fails the calls of a worker process that died, except when the
process died halfway through writing a result: the pool's manager thread then waits for the
rest of that result for good (the pool holds the pipe's write end too, so no end-of-file
comes), and the call never returns: reproduced here with a 1.5 GB result, killed 6-8 s into
its transfer, 3 times in 7 (CPython 3.11.7). :func:`result_unless_gone` bounds that wait, and
:func:`unstick` ends it by closing this process's copy of the write end.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")

UNNOTICED_EXIT_S = 5.0
"""How long after a helper's exit its pool may take to fail its calls (it takes
milliseconds); past that the pool is taken as stuck and the call as failed."""


class ExitWatch:
    """A future done when process ``pid`` exits (Linux pidfd; None where there is none)."""

    def __init__(self, pid: int) -> None:
        self.exited: asyncio.Future[None] | None = None
        self._fd: int | None = None
        try:
            self._fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # not Linux, an old kernel, or already reaped
            return
        self._loop = asyncio.get_running_loop()
        self.exited = self._loop.create_future()
        self._loop.add_reader(self._fd, self._on_exit)

    def _on_exit(self) -> None:
        if self.exited is not None and not self.exited.done():
            self.exited.set_result(None)
        self.close()

    def close(self) -> None:
        """Stop watching (the process exited, or its pool is given up)."""
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None


def unstick(pool: ProcessPoolExecutor) -> None:
    """End the pool's wait for a result cut off mid-write: its reader then gets end-of-file.

    Closes this process's copy of the result pipe's write end (``_result_queue._writer`` of
    CPython 3.11's ``ProcessPoolExecutor``); the helper, the only other writer, is dead. The
    pool's manager thread then fails the pool's calls itself and exits, so it cannot hold up
    the interpreter's exit. Without that attribute nothing is done.
    """
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    if writer is not None:
        writer.close()


async def result_unless_gone(result: asyncio.Future[T], exited: asyncio.Future[None] | None,
                             unstuck: Callable[[], None] = lambda: None,
                             grace_s: float = UNNOTICED_EXIT_S) -> T:
    """``result``'s value, or BrokenProcessPool once the process exited, whatever the pool does.

    When the pool has not failed the call ``grace_s`` after the exit, ``unstuck`` is called
    (:func:`unstick`) and the pool gets another ``grace_s``; then the call is failed here.
    ``grace_s`` is a bound on the pool noticing, not a synchronisation: a pool that noticed
    fails the call with its own BrokenProcessPool at once.
    """
    if exited is not None and not result.done():
        either: set[asyncio.Future[Any]] = {result, exited}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not result.done():
            await asyncio.wait({result}, timeout=grace_s)
        if not result.done():
            unstuck()
            await asyncio.wait({result}, timeout=grace_s)
        if not result.done():  # left as it is: cancelling it would break the pool's thread
            raise BrokenProcessPool(f"the helper exited and its pool did not fail the call "
                                    f"within {2 * grace_s}s (a result cut off mid-write)")
    return await result

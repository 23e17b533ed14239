"""A helper's exit noticed on the loop, for a call its pool never fails (process_exit.py)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import struct
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

from assetwatch.agents.worker.process_exit import ExitWatch, result_unless_gone, unstick


def test_a_process_exit_is_noticed_on_the_loop() -> None:
    async def watch() -> bool:
        child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                 stdin=subprocess.PIPE)
        watched = ExitWatch(child.pid)
        assert watched.exited is not None and not watched.exited.done()
        assert child.stdin is not None
        child.stdin.close()  # the child exits
        await asyncio.wait_for(watched.exited, 30)
        child.wait()
        return watched.exited.done()

    assert asyncio.run(watch())


def test_a_call_whose_process_exited_unnoticed_fails_instead_of_hanging() -> None:
    async def call() -> None:
        loop = asyncio.get_running_loop()
        never: asyncio.Future[int] = loop.create_future()  # the stuck pool's call
        exited: asyncio.Future[None] = loop.create_future()
        exited.set_result(None)
        await result_unless_gone(never, exited, grace_s=0.05)

    with pytest.raises(BrokenProcessPool, match="did not fail the call"):
        asyncio.run(call())


def test_a_result_or_the_pools_own_failure_comes_through() -> None:
    async def call(fail: bool) -> int:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[int] = loop.create_future()
        exited: asyncio.Future[None] = loop.create_future()
        if fail:
            result.set_exception(BrokenProcessPool("the pool noticed"))
            exited.set_result(None)
        else:
            result.set_result(7)
        return await result_unless_gone(result, exited, grace_s=60)

    assert asyncio.run(call(False)) == 7
    with pytest.raises(BrokenProcessPool, match="the pool noticed"):
        asyncio.run(call(True))


def _pool_stuck_on_a_cut_off_result() -> tuple[ProcessPoolExecutor, int]:
    """A real pool whose manager thread reads a result that never ends.

    As a helper killed mid-write leaves it: a length header and a few bytes in its pipe.
    """
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    pid = pool.submit(os.getpid).result()
    writer = pool._result_queue._writer  # type: ignore[attr-defined]
    os.write(writer.fileno(), struct.pack("!i", 1 << 20) + b"cut off")
    return pool, pid


@pytest.mark.parametrize("unstuck", [False, True])
def test_a_pool_waiting_for_a_cut_off_result_is_unstuck_or_the_call_failed(
    unstuck: bool,
) -> None:
    pool, pid = _pool_stuck_on_a_cut_off_result()

    async def call() -> None:
        result = asyncio.get_running_loop().run_in_executor(pool, os.getpid)
        watched = ExitWatch(pid)
        os.kill(pid, signal.SIGKILL)
        try:
            await result_unless_gone(result, watched.exited,
                                     (lambda: unstick(pool)) if unstuck else (lambda: None),
                                     grace_s=0.5)
        finally:  # either way the manager thread must end, or this process cannot exit
            unstick(pool)
            await asyncio.wait({result}, timeout=30)

    with pytest.raises(BrokenProcessPool) as raised:
        asyncio.run(call())
    # Unstuck, the pool fails the call itself; else only the bound here does.
    assert ("did not fail the call" in str(raised.value)) is not unstuck
    closing = threading.Thread(target=pool.shutdown, kwargs={"wait": True})
    closing.start()
    closing.join(30)
    assert not closing.is_alive()

"""A helper's exit noticed on the loop, for a call its pool never fails (process_exit.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from concurrent.futures.process import BrokenProcessPool

import pytest

from assetwatch.agents.worker.process_exit import ExitWatch, result_unless_gone


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

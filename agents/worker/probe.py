"""What the Faust app knows about its stream, read on the app's event loop for /health.

Faust exposes no public status API: :func:`assetwatch.agents.worker.faust_internals.read_status`
reads a few of its (and aiokafka's) attributes; this module runs it on the app's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from typing import Any

from assetwatch.agents.worker.faust_internals import read_status
from assetwatch.agents.worker.status import StreamStatus

PROBE_TIMEOUT_S = 2.0
"""A loop that cannot run a few attribute reads in this long counts as unresponsive."""


class FaustProbe:
    """Reads :func:`read_status` on the app's loop for threads that serve HTTP."""

    def __init__(self, topic: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self.topic = topic
        self._timeout_s = timeout_s
        self._attached: tuple[Any, asyncio.AbstractEventLoop] | None = None

    def attach(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        """Called from a task of the started app, on its loop."""
        self._attached = (app, loop)

    def status(self) -> StreamStatus:
        """Never call it on the app's own loop: it waits for that loop."""
        if self._attached is None:
            return StreamStatus("starting")
        app, loop = self._attached

        async def read() -> StreamStatus:
            return read_status(app, self.topic)

        coroutine = read()
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        except RuntimeError:  # the loop is closed: the worker is shutting down
            coroutine.close()
            return StreamStatus("stopped")
        try:
            return future.result(self._timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return StreamStatus("unresponsive")

    def lag(self) -> Mapping[int, int]:
        """Lag per partition from :meth:`status` (so, never on the app's loop either)."""
        return self.status().lag

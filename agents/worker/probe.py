"""What the Faust app knows about its stream, read on the app's event loop for /health.

Faust exposes no public status API, so this module, and only this one, reads a few of its
(and aiokafka's) attributes: the assignment, the group coordinator, open broker connections,
rebalance and recovery flags, fetch high watermarks and Faust's committed offsets.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROBE_TIMEOUT_S = 2.0
"""A loop that cannot run a few attribute reads in this long counts as unresponsive."""


@dataclass(frozen=True)
class StreamStatus:
    """The worker's place in the consumer group, as far as readiness is concerned."""

    broker: str
    """``starting``, ``connected`` (open connection and known group coordinator),
    ``disconnected``, ``unresponsive`` (the event loop did not answer) or ``stopped``."""
    rebalancing: bool = False
    recovering: bool = False
    partitions: tuple[int, ...] = ()
    """Assigned partitions of the telemetry topic."""
    lag: Mapping[int, int] = field(default_factory=dict)
    """Fetch high watermark minus committed offset, where both are known yet."""


def read_status(app: Any, topic: str) -> StreamStatus:
    """The status of a started Faust ``app`` (call on its event loop)."""
    consumer = app.consumer
    client = getattr(getattr(consumer, "_thread", None), "_consumer", None)
    if client is None:  # aiokafka consumer not created yet
        return StreamStatus("starting")
    connected = any(conn.connected() for conn in list(client._client._conns.values()))
    coordinator = getattr(client._coordinator, "coordinator_id", None)
    assigned = sorted((tp for tp in consumer.assignment() if tp.topic == topic),
                      key=lambda tp: tp.partition)
    committed = consumer._committed_offset  # next offset to read, per Faust's last commit
    lag = {}
    for tp in assigned:
        high, done = _highwater(consumer, tp), committed.get(tp)
        if high is not None and done is not None:
            lag[tp.partition] = max(high - done, 0)
    return StreamStatus(
        broker="connected" if connected and coordinator is not None else "disconnected",
        rebalancing=bool(app.rebalancing),
        recovering=bool(app.tables.recovery.in_recovery),
        partitions=tuple(tp.partition for tp in assigned),
        lag=lag,
    )


def _highwater(consumer: Any, tp: Any) -> int | None:
    """The high watermark of the last fetch response, if there was one yet."""
    try:
        high = consumer.highwater(tp)
    except (AssertionError, AttributeError):  # revoked meanwhile, or never fetched
        return None
    return int(high) if high is not None else None


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
        return self.status().lag

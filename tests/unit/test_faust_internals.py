"""What agents/worker/faust_internals.py changes in Faust, checked on the objects Faust builds."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from prometheus_client import CollectorRegistry

from assetwatch.agents.worker.app import create_app
from assetwatch.agents.worker.faust_internals import channel_queue
from assetwatch.agents.worker.metrics import Metrics
from assetwatch.agents.worker.scoring import Scorer
from assetwatch.settings import Settings


@pytest.mark.parametrize("compat", ["none", "tansu"])
def test_the_worker_consumer_holds_fetches_as_long_as_the_settings_say(compat: str) -> None:
    settings = Settings(_env_file=None, fetch_max_wait_ms=20,  # type: ignore[call-arg]
                        broker_compat=compat, kafka_bootstrap_servers="127.0.0.1:9")
    app = create_app(settings, cast(Scorer, object()), Metrics(CollectorRegistry()))

    async def built() -> int:
        thread = app.consumer._new_consumer_thread()  # what Faust starts, not started here
        consumer = thread._create_worker_consumer(app.transport)
        wait: int = consumer._fetch_max_wait_ms  # read by aiokafka when the consumer starts
        return wait

    assert asyncio.run(built()) == 20


def test_the_agent_queue_is_cleared_at_revocations_but_not_when_flow_resumes() -> None:
    """Faust clears channel queues at every flow-control resume; the agent's is kept then.

    The end of a recovery seeks *before* it resumes, so an event cleared there is never read
    again; at a revocation (``flow_control.clear()``) a seek follows, so the agent's goes too.
    """
    settings = Settings(_env_file=None,  # type: ignore[call-arg]
                        kafka_bootstrap_servers="127.0.0.1:9")
    app = create_app(settings, cast(Scorer, object()), Metrics(CollectorRegistry()))

    async def left() -> tuple[tuple[int, int], tuple[int, int]]:
        plain = app.channel().stream().channel.queue
        queue = channel_queue(app, app.channel().stream())
        for each in (plain, queue):
            each.put_nowait("event")
        app.flow_control.resume()
        after_resume = plain.qsize(), queue.qsize()
        for each in (plain, queue):
            each.put_nowait("event")
        app.flow_control.clear()
        return after_resume, (plain.qsize(), queue.qsize())

    assert asyncio.run(left()) == ((0, 1), (0, 0))

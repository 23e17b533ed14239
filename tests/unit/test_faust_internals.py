"""What agents/worker/faust_internals.py changes in Faust, checked on the objects Faust builds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka import TopicPartition as AiokafkaTP
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from prometheus_client import CollectorRegistry

from assetwatch.agents.worker.app import create_app
from assetwatch.agents.worker.faust_internals import ack, channel_queue
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


def _telemetry_app() -> tuple[Any, Settings]:
    settings = Settings(_env_file=None,  # type: ignore[call-arg]
                        kafka_bootstrap_servers="127.0.0.1:9")
    return create_app(settings, cast(Scorer, object()), Metrics(CollectorRegistry())), settings


def _messages(topic: str, offsets: range) -> list[ConsumerMessage]:
    return [ConsumerMessage(topic, 2, offset, 0.0, 0, None, b"a", b"v", None,
                            tp=AiokafkaTP(topic, 2))  # aiokafka's partition tuple, as fetched
            for offset in offsets]


async def _pump(app: Any, messages: list[ConsumerMessage], queue_size: int,
                agent: Callable[[Any], Awaitable[None]]) -> Any:
    """Run the consumer's pump over ``messages`` into a direct queue that ``agent`` reads."""
    app.flow_control.resume()  # as the worker does once started
    consumer = app.consumer
    channel = app.channel(maxsize=queue_size)
    app.topics._topic_name_index[messages[0].topic] = {channel}  # the agent's subscription
    fetcher = SimpleNamespace(_stopped=asyncio.Event())

    async def getmany(timeout: float) -> AsyncIterator[tuple[Any, ConsumerMessage]]:
        for message in messages:
            yield message.tp, message
        fetcher._stopped.set()

    consumer.getmany = getmany
    reader = asyncio.ensure_future(agent(channel.queue))
    await consumer._drain_messages(fetcher)
    await reader
    return consumer


def test_telemetry_messages_reach_the_agent_queue_as_fetched_and_a_full_queue_holds_back(
) -> None:
    """No Event is made; a full queue is waited for, and it pauses fetching the partition."""
    app, settings = _telemetry_app()
    messages = _messages(settings.telemetry_topic, range(10, 22))
    taken: list[Any] = []
    paused: list[set[Any]] = []

    async def agent(queue: Any) -> None:
        while len(taken) < len(messages):
            taken.append(await queue.get())
            paused.append(set(app.consumer._buffered_partitions))

    consumer = asyncio.run(_pump(app, messages, 4, agent))

    assert taken == messages and all(a is b for a, b in zip(taken, messages, strict=True))
    assert {tp for each in paused for tp in each} == {TP(settings.telemetry_topic, 2)}
    assert all(type(tp) is TP for each in paused for tp in each)  # Faust's, which it asserts
    assert consumer._read_offset[messages[0].tp] == 21


def test_a_delivery_waiting_on_a_full_queue_is_given_up_when_a_rebalance_begins() -> None:
    """As Faust's pump does: the seek to the committed offsets reads it again."""
    app, settings = _telemetry_app()
    messages = _messages(settings.telemetry_topic, range(0, 4))
    left: list[Any] = []

    async def agent(queue: Any) -> None:
        return None

    async def run() -> Any:
        app.consumer.suspend_flow.set()  # a rebalance began
        consumer = await _pump(app, messages, 2, agent)
        queue = next(iter(app.topics._topic_name_index[settings.telemetry_topic])).queue
        for _ in range(2):
            while not queue.empty():
                left.append(queue.get_nowait())
            for _ in range(10):  # loop turns in which a put left waiting for room would land
                await asyncio.sleep(0)
        return consumer

    consumer = asyncio.run(run())

    assert left == messages[:2]  # put while there was room; the two waiting ones given up
    assert consumer._read_offset[messages[0].tp] == 3


def test_getmany_yields_what_faust_s_does_reading_each_high_water_mark_once() -> None:
    """Same records in the same round-robin order; the mark read per partition, not record."""
    app, settings = _telemetry_app()
    consumer = app.consumer
    topic = settings.telemetry_topic
    records = {TP(topic, 0): ["a0", "a1", "a2"], TP(topic, 1): ["b0", "b1"]}
    marks: list[TP] = []
    tracked: list[tuple[TP, int]] = []

    async def next_records(timeout: float) -> tuple[dict[TP, list[str]], None]:
        return records, None

    def highwater(tp: TP) -> int:
        marks.append(tp)
        return 100 + tp.partition

    consumer._wait_next_records = next_records
    consumer.highwater = highwater
    consumer._to_message = lambda tp, record: (tp.partition, record)
    app.monitor.track_tp_end_offset = lambda tp, mark: tracked.append((tp, mark))
    app.flow_control.resume()

    async def drained(getmany: Callable[..., AsyncIterator[Any]]) -> list[Any]:
        marks.clear()
        tracked.clear()
        return [message async for _, message in getmany(consumer, 1.0)]

    faust_order = asyncio.run(drained(FaustConsumer.getmany))
    assert len(marks) == 5  # Faust: once per record
    ours = asyncio.run(drained(type(consumer).getmany))

    assert ours == faust_order and len(ours) == 5
    assert marks == [TP(topic, 0), TP(topic, 1)]
    assert tracked == [(TP(topic, 0), 100), (TP(topic, 1), 101)]


def test_a_batch_ack_keeps_the_books_faust_s_per_message_ack_keeps() -> None:
    """Committable offsets, the commit counter and the acked flags.

    With a message acked twice and two below the committed offset.
    """
    books = []
    for bulk in (False, True):
        app, settings = _telemetry_app()
        app.topics._acking_topics.add(settings.telemetry_topic)  # as the agent's subscription
        consumer = app.consumer
        consumer._committed_offset[TP(settings.telemetry_topic, 2)] = 12
        messages = [message for message in _messages(settings.telemetry_topic, range(10, 16))]
        for message in messages:
            message.tp = TP(message.topic, message.partition)
            consumer._unacked_messages.add(message)
        batches = [messages[:4], messages[3:]]
        for batch in batches:
            if bulk:
                ack(app, batch)
            else:
                for message in batch:
                    FaustConsumer.ack(consumer, message)
        books.append((dict(consumer._acked), dict(consumer._acked_index), consumer._n_acked,
                      [m.acked for m in messages], len(consumer._unacked_messages)))
    assert books[0] == books[1]
    assert books[1][2] == 4  # 12..15: below the committed offset counts once acked, not more

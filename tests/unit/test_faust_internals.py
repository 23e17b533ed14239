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

from assetwatch.agents.worker import faust_internals
from assetwatch.agents.worker.app import create_app
from assetwatch.agents.worker.faust_internals import BUFFERED_FETCH_WAIT_S, ack, channel_queue
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


class _Fetches:
    """Stands in for the consumer thread's fetch and for Faust's sleep, recording both."""

    def __init__(self, consumer: Any, records: dict[TP, list[str]]) -> None:
        self.calls: list[tuple[set[TP], float]] = []
        self.slept: list[float] = []
        self._records = records
        consumer._getmany = self._getmany
        consumer.sleep = self._sleep

    async def _getmany(self, active_partitions: set[TP], timeout: float) -> dict[TP, list[str]]:
        self.calls.append((set(active_partitions), timeout))
        return {tp: r for tp, r in self._records.items() if tp in active_partitions}

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def _buffered_consumer(buffered: int) -> tuple[Any, list[TP]]:
    """The worker's consumer holding two telemetry partitions, ``buffered`` of them full."""
    app, settings = _telemetry_app()
    consumer = app.consumer
    tps = [TP(settings.telemetry_topic, 0), TP(settings.telemetry_topic, 1)]
    consumer._active_partitions = set(tps)
    for tp in tps[:buffered]:
        consumer.on_buffer_full(tp)
    return consumer, tps


def test_with_every_buffer_full_faust_sleeps_a_second_and_the_pump_waits_for_a_drop() -> None:
    """Faust's pump sleeps 1 s whatever happens meanwhile; ours fetches at the first drop."""
    consumer, tps = _buffered_consumer(buffered=2)
    fetches = _Fetches(consumer, {tps[0]: ["a0"], tps[1]: ["b0"]})
    assert asyncio.run(FaustConsumer._wait_next_records(consumer, 1.0)) == ({}, set())
    assert fetches.slept == [1] and fetches.calls == []

    async def run() -> tuple[Any, bool]:
        waiting = asyncio.ensure_future(consumer._wait_next_records(1.0))
        for _ in range(10):  # loop turns in which a wait that should not end would end
            await asyncio.sleep(0)
        before_drop = waiting.done()
        consumer.on_buffer_drop(tps[0])  # the agent took from its queue
        return await waiting, before_drop

    (records, active), done_before_drop = asyncio.run(run())

    assert not done_before_drop
    assert records == {tps[0]: ["a0"]} and active == {tps[0]}
    # tps[1] is still full: the fetch waits briefly, so it is fetched soon after its drop
    assert fetches.calls == [({tps[0]}, BUFFERED_FETCH_WAIT_S)] and fetches.slept == [1]


def test_with_no_drop_the_pump_gives_up_its_wait_as_faust_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faust_internals, "PAUSED_WAIT_S", 0.01)
    consumer, _ = _buffered_consumer(buffered=2)
    fetches = _Fetches(consumer, {})

    assert asyncio.run(consumer._wait_next_records(1.0)) == ({}, set())
    assert fetches.calls == [] and fetches.slept == []


@pytest.mark.parametrize(("buffered", "wait"), [(0, 1.0), (1, BUFFERED_FETCH_WAIT_S)])
def test_a_fetch_waits_briefly_only_while_a_buffer_is_full(buffered: int, wait: float) -> None:
    consumer, tps = _buffered_consumer(buffered)
    fetches = _Fetches(consumer, {tps[1]: ["b0"]})

    records, active = asyncio.run(consumer._wait_next_records(1.0))

    assert records == {tps[1]: ["b0"]} and active == set(tps[buffered:])
    assert fetches.calls == [(set(tps[buffered:]), wait)] and fetches.slept == []


def test_fetches_wait_briefly_while_records_come_and_as_set_once_idle() -> None:
    """The wrapped fetcher: 10 ms after a fetch with records, doubling up to the setting."""
    brought = iter([True, False, False, False, False, True])
    waits: list[int] = []

    class Fetcher:  # aiokafka's Fetcher, the two members the wrap uses
        _fetch_max_wait_ms = 50

        async def _proc_fetch_request(self, *args: Any) -> bool:
            waits.append(self._fetch_max_wait_ms)  # the wait this request was built with
            return next(brought)

    fetcher = Fetcher()
    faust_internals._adapt_fetch_wait(fetcher, 50)

    async def fetch_six() -> None:
        for _ in range(6):
            await fetcher._proc_fetch_request("assignment", 0, "request")

    asyncio.run(fetch_six())
    assert waits == [50, 10, 20, 40, 50, 50]
    assert fetcher._fetch_max_wait_ms == 10


def test_aiokafka_still_builds_fetches_with_the_wait_the_wrap_sets() -> None:
    """Fails if aiokafka moves its fetcher, stops reading the wait or returning what came."""
    import inspect

    from aiokafka import AIOKafkaConsumer
    from aiokafka.consumer.fetcher import Fetcher

    assert "self._fetcher = Fetcher(" in inspect.getsource(AIOKafkaConsumer.start)
    assert "self._fetch_max_wait_ms," in inspect.getsource(Fetcher._get_actions_per_node)
    assert "self._proc_fetch_request(" in inspect.getsource(Fetcher._fetch_requests_routine)
    processing = inspect.getsource(Fetcher._proc_fetch_request)
    assert "needs_wakeup = True" in processing and "return needs_wakeup" in processing

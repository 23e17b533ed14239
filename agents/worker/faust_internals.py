"""Everything that leans on Faust's (and aiokafka's) internals, fenced in one module.

:data:`VERIFIED_FAUST_VERSIONS` lists the faust-streaming releases this code was read against
and tested with; a worker on another one logs a warning, and a unit test fails, so an
upgrade is a deliberate step: re-read the copied and private pieces below, then add it.

Broker compatibility layer (switch: ``ASSETWATCH_BROKER_COMPAT``).

tansu 0.6.0 answers ListOffsets(LATEST) with the base offset of the newest record batch plus
one instead of the high watermark. Faust sizes changelog recovery with that answer, so a
restarted worker would silently miss the last updates of its tables. With ``tansu`` on, the
end offsets Faust asks for are corrected from the high watermark that a Fetch response
carries (which tansu reports right). With ``tansu`` on, outputs are also delivered without
idempotence, which tansu 0.6.0 does not keep across a broker crash (see agents/worker/outputs.py).
On Apache Kafka leave it ``none``: nothing changes.

Whatever the broker, :class:`AssetwatchConsumer` delivers fetched messages without Faust's
per-message ``wait_first`` when delivery cannot block, and puts the telemetry agent's as they
are on its queue, past the conductor (see its docstring), and fetches a partition again as
soon as its full buffer drops (Faust waits up to a second); its thread holds fetches briefly
while records come (agents/worker/fetch_wait.py) and records when the group coordinator last
confirmed this member (:func:`membership`), which the ownership fence of
agents/worker/fence.py reads. :class:`NewestStateTable` makes changelog recovery keep each
key's newest state rather than its last written one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, cast
from weakref import WeakSet

import faust
from confluent_kafka import Consumer, KafkaError, TopicPartition
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, AppT, EventT, Message
from mode import ServiceT
from mode.utils.futures import notify
from mode.utils.queues import FlowControlEvent

from assetwatch.agents.worker.fence import Membership
from assetwatch.agents.worker.fetch_wait import FetchWait
from assetwatch.agents.worker.status import StreamStatus
from assetwatch.errors import BrokerError
from assetwatch.settings import ClientValue

VERIFIED_FAUST_VERSIONS = frozenset({"0.15.3"})
"""faust-streaming releases whose internals this module was checked against."""

FETCH_TIMEOUT_S = 15.0
PAUSED_WAIT_S = 1.0
"""Longest wait of the pump with every partition's buffer full (Faust's own sleep then)."""
BUFFERED_FETCH_WAIT_S = 0.05
"""Longest fetch wait while a partition's buffer is full: it is fetched again this soon."""


def fetched_high_watermarks(
    client_config: Mapping[str, ClientValue],
    reported: Mapping[TP, int],
    timeout_s: float = FETCH_TIMEOUT_S,
) -> dict[TP, int]:
    """True end offsets: fetch from just below each reported end and read the fetch's watermark.

    A partition reported empty (0) needs no fetch: tansu answers 0 only when it holds nothing.
    """
    result = dict(reported)
    pending = {tp for tp, end in reported.items() if end and end > 0}
    if not pending:
        return result
    consumer = Consumer({
        **client_config,
        "group.id": "assetwatch-end-offsets",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 50,
    })
    try:
        consumer.assign(
            [TopicPartition(tp.topic, tp.partition, reported[tp] - 1) for tp in pending]
        )
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            error = msg.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                raise BrokerError(f"end-offset fetch failed: {error}")
            topic, partition = msg.topic(), msg.partition()
            assert topic is not None and partition is not None  # set on every fetched message
            tp = TP(topic, partition)
            if tp in pending:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), cached=True
                )
                result[tp] = max(int(high), reported[tp])
                pending.discard(tp)
    finally:
        consumer.close()
    if pending:
        raise BrokerError(f"no fetch answer within {timeout_s}s for {sorted(pending)}")
    return result


YIELD_EVERY = 100
"""Messages delivered between two yields to the event loop (Faust's own figure)."""


def _gate_open(app: AppT) -> bool:
    """True when nothing would hold a delivery back now, queues aside.

    Faust's conductor waits while flow control is off (a rebalance), while the producer
    buffer is over its limit, and while a subscription change holds its lock.
    """
    buffer = app.producer.buffer
    return (
        app.flow_control.is_active()
        and buffer.size <= buffer.max_messages
        and not cast(Any, app.topics)._tp_to_callback_lock.locked()
    )


def _delivers_at_once(app: AppT, topic: str) -> bool:
    """True when the conductor's callback for ``topic`` cannot suspend right now."""
    channels = cast(Any, app.topics)._topic_name_index.get(topic, ())
    return _gate_open(app) and not any(chan.queue.full() for chan in channels)


class _Configured(Protocol):
    assetwatch_client_config: Mapping[str, ClientValue]
    assetwatch_fetch_max_wait_ms: int
    assetwatch_direct_topics: frozenset[str]


def _direct_queue(app: AppT, topic: str) -> Any | None:
    """The queue that takes ``topic``'s messages as they are, past the conductor, or None.

    Only for the topics the app names direct (the telemetry agent reads raw messages, not
    Events), and only while exactly one channel, the agent's, subscribes to the topic.
    """
    if topic not in cast(_Configured, app).assetwatch_direct_topics:
        return None
    channels = cast(Any, app.topics)._topic_name_index.get(topic, ())
    if len(channels) != 1:
        return None
    (channel,) = channels
    queue = channel.queue
    cast(AgentFlowControl, app.flow_control).keep_on_resume(queue)
    return queue


class _Pressure:
    """Per partition, the callbacks the conductor gives a queue filling up (fetch pausing)."""

    def __init__(self, consumer: faust_aiokafka.Consumer) -> None:
        self._consumer = consumer
        self._callbacks: dict[TP, tuple[Callable[[], None], Callable[[], None]]] = {}

    def callbacks(self, tp: TP) -> tuple[Callable[[], None], Callable[[], None]]:
        """``on_pressure_high`` and ``on_pressure_drop`` for ``tp`` (the same objects each time)."""
        found = self._callbacks.get(tp)
        if found is None:
            consumer, faust_tp = self._consumer, TP(tp.topic, tp.partition)  # not aiokafka's
            sensors = consumer.app.sensors

            def high() -> None:
                sensors.on_topic_buffer_full(faust_tp)
                consumer.on_buffer_full(faust_tp)

            found = self._callbacks[tp] = (high, lambda: consumer.on_buffer_drop(faust_tp))
        return found


async def _put_when_free(app: AppT, queue: Any, message: Message) -> None:
    """Put ``message`` on ``queue`` once flow control, the producer and the queue allow.

    A put cancelled by a revocation's clear ends quietly, as the conductor's does; a
    cancelled delivery (a rebalance began) takes its put with it.
    """
    await app.flow_control.acquire()
    await app.producer.buffer.wait_until_ebb()
    async with cast(Any, app.topics)._tp_to_callback_lock:
        pass
    put = asyncio.ensure_future(queue.put(message))
    try:
        await asyncio.wait([put])
    except asyncio.CancelledError:
        put.cancel()
        raise


class AssetwatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with a cheaper message pump.

    Faust hands every fetched message to the conductor inside ``wait_first(callback,
    suspend_flow.wait())``: four tasks per message, so that a rebalance can abandon a
    delivery stuck on flow control or a full queue. Profiled here that was ~15% of a
    worker's CPU, and a no-op agent topped out near 4,400 messages/s. This pump awaits the
    callback directly when it cannot suspend (:func:`_delivers_at_once`) and falls back to
    ``wait_first`` otherwise, so delivery order, read offsets, gaps and commits follow
    Faust's pump exactly.

    Messages of a direct topic (:func:`_direct_queue`: the telemetry agent's) skip the
    conductor, its Event and its decoding too: they go onto the agent's queue as they are,
    with the conductor's pressure callbacks. Whether anything would hold a delivery back
    (:func:`_gate_open`) is checked once per run of messages without an await in between,
    since only an await lets it change; a full queue, or a closed gate, is waited for in
    ``wait_first`` as Faust does.
    """

    _buffer_dropped: asyncio.Event | None = None
    """Set when a full partition buffer drops, while the pump waits for one to (else None)."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return AssetwatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def on_buffer_drop(self, tp: TP) -> None:
        """Faust's: the partition is fetched again; and a pump waiting for that goes on."""
        super().on_buffer_drop(tp)
        if self._buffer_dropped is not None:
            self._buffer_dropped.set()

    async def _wait_next_records(self, timeout: float) -> tuple[Any, set[TP] | None]:
        """Faust's, but a partition whose buffer drops is fetched again at once.

        Faust fetches only the partitions whose buffer is not full, for up to ``timeout``
        (1 s), and sleeps 1 s when there are none; a partition freed meanwhile waits for
        that. The agent's queue holds every partition's messages, so it fills them all at
        once and drains in a few hundred ms: measured here, the helper idled ~0.6 s in
        every ~1.5 s at full load. While any buffer is full, each fetch now waits at most
        :data:`BUFFERED_FETCH_WAIT_S`, and with none active the pump waits for the first
        drop (at most :data:`PAUSED_WAIT_S`, Faust's sleep). A fetch under way is not cut
        short: it runs on the consumer's thread, and one given up would drop its records.
        """
        if self._buffered_partitions and self.flow_active and not self.app.client_only:
            if not self._get_active_partitions():
                dropped = self._buffer_dropped = asyncio.Event()
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(dropped.wait(), PAUSED_WAIT_S)
                finally:
                    self._buffer_dropped = None
                if not self._get_active_partitions():
                    return {}, set()
            timeout = min(timeout, BUFFERED_FETCH_WAIT_S)
        return cast(tuple[Any, set[TP] | None], await super()._wait_next_records(timeout))

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's ``Consumer.getmany``, each partition's high-water mark read once per fetch.

        Faust reads the mark (through two delegating consumers, ~1.5 µs) and hands it to the
        monitor for every record. It only feeds the monitor's end-offset gauge, which a
        fetch's worth of records cannot make stale, so it is read at a partition's first
        record of each fetch. Everything else is Faust's: round-robin order, the flow and
        generation checks per record, the seek back when flow is off.
        """
        records, active = await self._wait_next_records(timeout)
        generation, app = self.app.consumer_generation_id, self.app
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            try:
                await self.perform_seek()
            except Exception as exc:  # as Faust: a failed seek is logged, the pump goes on
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return
        to_message, buffered = self._to_message, self._buffered_partitions
        track, tracked = app.monitor.track_tp_end_offset, set()
        for tp, record in self.scheduler.iterate(records):
            if not self.flow_active or app.consumer_generation_id != generation:
                break
            if active is None or tp in active or tp in buffered:
                if tp not in tracked:
                    tracked.add(tp)
                    track(tp, self.highwater(tp))
                yield tp, to_message(tp, record)

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        deliver, app = self.callback, self.app
        read_offset = self._read_offset
        commit_every = self._commit_every
        acks_enabled_for = app.topics.acks_enabled_for
        suspend_flow = self.suspend_flow
        stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set  # type: ignore[attr-defined]
        pressure = _Pressure(self)
        since_yield = 0
        try:
            while not (stopped() or fetcher_stopped()):
                await asyncio.sleep(0)
                if self.should_stop:
                    continue
                direct: dict[str, Any] = {}  # per topic, found again after every await
                gate_open = False
                async for tp, message in self.getmany(timeout=1.0):
                    since_yield += 1
                    if since_yield > YIELD_EVERY:
                        since_yield = 0
                        await asyncio.sleep(0)
                        direct, gate_open = {}, False
                    offset, last = message.offset, read_offset[tp]
                    if last is not None and offset < last:
                        continue  # read before a seek back: it comes again
                    if last and offset - last > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, last + 1, offset)
                        direct, gate_open = {}, False
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                        direct, gate_open = {}, False
                    topic = message.topic
                    queue = direct[topic] if topic in direct else direct.setdefault(
                        topic, _direct_queue(app, topic))
                    if queue is None:
                        if not suspend_flow.is_set() and _delivers_at_once(app, topic):
                            await deliver(message)
                        else:
                            await self.wait_first(deliver(message), suspend_flow.wait())
                        direct, gate_open = {}, False
                    else:
                        gate_open = gate_open or _gate_open(app)
                        if gate_open and not queue.full():
                            high, drop = pressure.callbacks(tp)
                            queue.put_nowait_enhanced(message, on_pressure_high=high,
                                                      on_pressure_drop=drop)
                        else:
                            await self.wait_first(_put_when_free(app, queue, message),
                                                  suspend_flow.wait())
                            direct, gate_open = {}, False
                    read_offset[tp] = offset
        except self.consumer_stopped_errors:
            if not app.should_stop:
                raise
        except asyncio.CancelledError:
            if not app.should_stop:
                raise


class AssetwatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread: fetches held as the settings say, membership noted.

    Faust creates the worker's consumer with ``fetch_max_wait_ms=1500``: with no new data the
    broker holds each fetch up to that long, and tansu holds it about half of that even when
    data arrives, which was most of an event's latency at low rates. aiokafka reads the
    value when the consumer starts, after :meth:`_create_worker_consumer` sets it; from
    then on each fetch waits as agents/worker/fetch_wait.py says (short while records come,
    the setting once idle).

    ``member_alive_at`` is the monotonic time a heartbeat that the coordinator answered as a
    member's (no error, or a rebalance in progress) was *sent*, or an assignment arrived: the
    broker keeps the member until at least that time plus the session timeout. aiokafka keeps
    this only in a local variable of its heartbeat routine, so the coordinator's
    ``_do_heartbeat`` is wrapped once the client has created it.
    """

    member_alive_at: float | None = None

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = cast(_Configured, self.app).assetwatch_fetch_max_wait_ms
        return consumer

    async def on_start(self) -> None:
        """Start the aiokafka client, then wrap its fetches and its coordinator's heartbeat."""
        await super().on_start()
        _adapt_fetch_wait(getattr(self._consumer, "_fetcher", None),
                          cast(_Configured, self.app).assetwatch_fetch_max_wait_ms)
        coordinator = getattr(self._consumer, "_coordinator", None)
        heartbeat = getattr(coordinator, "_do_heartbeat", None)
        if heartbeat is None:  # no group (never here): nothing to confirm membership with
            return

        async def timed_heartbeat() -> bool:
            sent = time.monotonic()
            ok = bool(await heartbeat())
            if ok:
                self.member_alive_at = sent
            return ok

        coordinator._do_heartbeat = timed_heartbeat  # type: ignore[union-attr]

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        """An assignment is the coordinator's answer to this member: it confirms membership."""
        self.member_alive_at = time.monotonic()
        await super().on_partitions_assigned(assigned, generation_id)


def _adapt_fetch_wait(fetcher: Any, idle_ms: int) -> None:
    """Hold each fetch as :class:`FetchWait` says from what the one before it brought.

    aiokafka's fetcher reads ``_fetch_max_wait_ms`` whenever it builds a fetch request, and
    its ``_proc_fetch_request`` answers True when a response added records (or an error for
    the consumer to raise): both are pinned by a unit test.
    """
    if fetcher is None:  # no fetcher (never here): fetches keep the setting's wait
        return
    wait, fetch = FetchWait(idle_ms), fetcher._proc_fetch_request

    async def adapting(*args: Any) -> bool:
        brought = bool(await fetch(*args))
        fetcher._fetch_max_wait_ms = wait.after(brought)
        return brought

    fetcher._proc_fetch_request = adapting


class AssetwatchTransport(faust_aiokafka.Transport):
    """The aiokafka transport with :class:`AssetwatchConsumer`."""

    Consumer = AssetwatchConsumer


class _TansuConsumerThread(AssetwatchConsumerThread):
    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        reported = await super()._highwaters(partitions)
        config = cast(_Configured, self.app).assetwatch_client_config
        return await asyncio.to_thread(fetched_high_watermarks, config, reported)


class _TansuConsumer(AssetwatchConsumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _TansuConsumerThread(self, loop=self.loop, beacon=self.beacon)


class TansuTransport(AssetwatchTransport):
    """The aiokafka transport with end offsets corrected for tansu."""

    Consumer = _TansuConsumer


def membership(app: Any) -> Membership | None:
    """This worker's group membership as its consumer sees it (None before the client starts).

    Read from the worker's event loop while the consumer thread updates it: single
    attribute reads, each consistent on its own.
    """
    thread = getattr(app.consumer, "_thread", None)
    coordinator = getattr(getattr(thread, "_consumer", None), "_coordinator", None)
    if coordinator is None:
        return None
    return Membership(int(coordinator.generation), str(coordinator.member_id),
                      getattr(thread, "member_alive_at", None))


def generation(app: Any) -> int | None:
    """The consumer's assignment generation, which Faust stamps on every message it fetches."""
    value = app.consumer_generation_id
    return None if value is None else int(value)


def abandon(app: Any, messages: Sequence[Message]) -> None:
    """Give up ``messages`` unacked: their offsets stay uncommitted, for the next owner.

    Faust waits at a revocation until every tracked message is acked
    (``Consumer.wait_empty``); a fenced batch's messages are taken off that list, if there,
    and the new owner reads them again from the committed offset.
    """
    unacked = app.consumer._unacked_messages
    for message in messages:
        unacked.discard(message)


def ack(app: Any, messages: Sequence[Message]) -> None:
    """Ack ``messages``, as an Event's ack does once its last reference is gone.

    Messages of a direct topic carry no Event and no reference count: the consumer's own
    bookkeeping (committable offsets, the commit counter) is all there is to do. That is
    Faust's ``Consumer.ack`` for each message, under its ``ack_lock`` taken once for the
    batch, and waking whoever waits for acks once.
    """
    consumer = app.consumer
    acks_enabled_for = app.topics.acks_enabled_for
    committed, indexes, acked = (consumer._committed_offset, consumer._acked_index,
                                 consumer._acked)
    unacked, counted = consumer._unacked_messages, 0
    with faust_consumer.ack_lock:  # type: ignore[attr-defined]
        for message in messages:
            if message.acked:
                continue
            message.acked = True
            if not acks_enabled_for(message.topic):
                continue
            tp, offset = message.tp, message.offset
            done, index = committed[tp], indexes[tp]
            if (done is None or offset >= done) and offset not in index:
                unacked.discard(message)
                index.add(offset)
                acked[tp].append(offset)
                counted += 1
        consumer._n_acked += counted
    notify(consumer._waiting_for_ack)


Supersedes = Callable[[bytes, bytes | None], bool]
"""``supersedes(new, current)``: may stored value ``new`` replace ``current``."""


class NewestStateTable(faust.Table):  # type: ignore[type-arg]
    """A table whose changelog recovery keeps, per key, the value ``supersedes`` prefers.

    Faust applies changelog records in log order, so the last written wins: a late write of
    a worker that lost the partition (a stale state) would replace a newer one at the next
    recovery. Here a record is applied only when ``supersedes(record, current)`` holds;
    deletions (None) always apply. Overrides ``Table.apply_changelog_batch`` of faust-streaming
    0.15.3 (base ``Collection``: hand the batch to ``self.data``, the store).
    """

    def __init__(self, app: AppT, *, supersedes: Supersedes, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._supersedes = supersedes

    def apply_changelog_batch(self, batch: Iterable[EventT[Any]]) -> None:
        """Apply the records that supersede their key's value (earlier ones in the batch too)."""
        pending: dict[Any, bytes | None] = {}
        keep = []
        for event in batch:
            key, value = event.key, cast("bytes | None", event.value)
            if event.message.value is None or value is None:
                value = None
            else:
                current = pending[key] if key in pending else self.data.get(key)
                if not self._supersedes(value, current):
                    continue
            pending[key] = value
            keep.append(event)
        super().apply_changelog_batch(keep)


def newest_state_table(app: AppT, name: str, supersedes: Supersedes,
                       **kwargs: Any) -> NewestStateTable:
    """``app.Table(name, **kwargs)``, as a :class:`NewestStateTable` (what ``App.Table`` does)."""
    table = NewestStateTable(app, name=name, supersedes=supersedes,
                             beacon=app.tables.beacon, **kwargs)
    app.tables.add(table)
    return table


def faust_version_verified() -> bool:
    """True when the installed faust-streaming is one :data:`VERIFIED_FAUST_VERSIONS` lists."""
    return faust.__version__ in VERIFIED_FAUST_VERSIONS


class AgentFlowControl(FlowControlEvent):
    """Faust's flow control, except that resuming leaves the agent's queue alone.

    Faust clears every channel queue at a revocation, at shutdown, and whenever flow
    control resumes, trusting a seek to the committed offsets to deliver the dropped events
    again. At the end of a recovery (``Recovery._resume_streams``) that seek comes *before*
    the resume while the stream partitions are already fetching, so events delivered between
    the two were dropped with their read offset past them, never read again until a restart
    (seen: 1 to 592 of 2,400 readings unscored after a restart). The agent's queue is still
    cleared where a seek follows (:meth:`clear`: revocation, shutdown), not at a resume.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._not_on_resume: WeakSet[Any] = WeakSet()

    def keep_on_resume(self, queue: Any) -> None:
        """Clear ``queue`` only at revocations and shutdown, not when flow resumes."""
        self._queues.discard(queue)
        self._not_on_resume.add(queue)

    def resume(self) -> None:
        """Resume production into queues; clear those Faust manages, not the agent's."""
        self._suspend.clear()
        self._resume.set()
        super().clear()

    def clear(self) -> None:
        """Clear every queue, the agent's too (Faust calls this at revocations and shutdown)."""
        super().clear()
        for queue in self._not_on_resume:
            queue.clear()


def channel_queue(app: AppT, stream: Any) -> Any:
    """The queue behind an agent's stream, which Faust's conductor fills.

    It is cleared at revocations and at shutdown but not when flow resumes
    (:class:`AgentFlowControl`, which ``app.flow_control`` must be).
    """
    queue = cast(faust.ChannelT[bytes], stream.channel).queue
    cast(AgentFlowControl, app.flow_control).keep_on_resume(queue)
    return queue


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


def log_ends(app: Any, messages: Sequence[Message]) -> dict[int, int]:
    """The high watermark of each partition of ``messages`` at its last fetch, where known."""
    ends = {}
    for tp in {message.tp for message in messages}:
        high = _highwater(app.consumer, tp)
        if high is not None:
            ends[tp.partition] = high
    return ends


def _highwater(consumer: Any, tp: Any) -> int | None:
    """The high watermark of the last fetch response, if there was one yet."""
    try:
        high = consumer.highwater(tp)
    except (AssertionError, AttributeError):  # revoked meanwhile, or never fetched
        return None
    return int(high) if high is not None else None

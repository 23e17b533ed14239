"""Broker compatibility layer (switch: ``ASSETWATCH_BROKER_COMPAT``).

tansu 0.6.0 answers ListOffsets(LATEST) with the base offset of the newest record batch plus
one instead of the high watermark. Faust sizes changelog recovery with that answer, so a
restarted worker would silently miss the last updates of its tables. With ``tansu`` on, the
end offsets Faust asks for are corrected from the high watermark that a Fetch response
carries (which tansu reports right). On Apache Kafka leave it ``none``: nothing changes.

(A leaner replacement of Faust's per-message ``wait_first`` in ``_drain_messages`` was tried
and measured ~+70% on a no-op agent, but a worker restarted with it lost a partition's
readings; it was removed. See the README's performance notes.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Protocol, cast

from confluent_kafka import Consumer, KafkaError, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from assetwatch.errors import BrokerError
from assetwatch.settings import ClientValue

FETCH_TIMEOUT_S = 15.0


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


class _ClientConfigured(Protocol):
    assetwatch_client_config: Mapping[str, ClientValue]


class _TansuConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        reported = await super()._highwaters(partitions)
        config = cast(_ClientConfigured, self.app).assetwatch_client_config
        return await asyncio.to_thread(fetched_high_watermarks, config, reported)


class _TansuConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _TansuConsumerThread(self, loop=self.loop, beacon=self.beacon)


class TansuTransport(faust_aiokafka.Transport):
    """The aiokafka transport with end offsets corrected for tansu."""

    Consumer = _TansuConsumer

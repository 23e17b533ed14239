"""Reading output topics with confluent-kafka: the consume verb, the demo view, tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError

from assetwatch.agents.kafka.registry import id_resolver
from assetwatch.errors import BrokerError, SerializationError
from assetwatch.schemas.codecs import decode_any
from assetwatch.settings import Settings


@dataclass(frozen=True)
class Record:
    """One record a :class:`RecordReader` read, decoded, with its place in the topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    kind: str
    """Record name (Prediction, DeadLetter, ...) or 'undecodable'."""
    fields: dict[str, Any]
    timestamp_ms: int | None = None
    """The record's broker or producer timestamp."""
    headers: tuple[tuple[str, bytes | None], ...] = ()


class RecordReader:
    """Reads topics from the beginning with a throw-away group; decodes every record.

    Single-object, Confluent-framed through the configured registry, or JSON.
    """

    def __init__(self, settings: Settings, topics: list[str], group: str | None = None) -> None:
        self._consumer = Consumer({
            **settings.kafka_client_config(),
            "group.id": group or f"assetwatch-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        })
        self._consumer.subscribe(topics)
        self._resolve = id_resolver(settings)

    def poll(self, timeout_s: float) -> list[Record]:
        """What arrives within ``timeout_s`` (up to a few thousand records)."""
        records = []
        for msg in self._consumer.consume(5000, timeout_s):
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise BrokerError(f"consume failed: {error}")
            value = msg.value() or b""
            try:
                kind, fields = decode_any(value, self._resolve)
            except SerializationError as exc:
                kind, fields = "undecodable", {"error": str(exc), "value": value.hex()}
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            assert topic is not None and partition is not None and offset is not None
            stamp_type, stamp = msg.timestamp()
            raw = msg.headers() or []
            pairs = raw.items() if isinstance(raw, dict) else raw
            headers = tuple((k, v.encode() if isinstance(v, str) else v) for k, v in pairs)
            records.append(Record(topic, partition, offset, msg.key(), kind, fields,
                                  stamp if stamp_type else None, headers))
        return records

    def iterate(self, idle_timeout_s: float) -> Iterator[Record]:
        """Records until nothing arrives for ``idle_timeout_s``."""
        while batch := self.poll(idle_timeout_s):
            yield from batch

    def close(self) -> None:
        """Close the consumer (its throw-away group has committed nothing)."""
        self._consumer.close()

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

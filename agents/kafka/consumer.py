"""Reading output topics with confluent-kafka: the consume verb, the demo view, tests."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError

from assetwatch.agents.kafka import clients
from assetwatch.agents.kafka.offsets import end_positions
from assetwatch.agents.kafka.registry import id_resolver
from assetwatch.errors import BrokerError, SerializationError
from assetwatch.schemas.codecs import decode_any, to_json_safe
from assetwatch.schemas.wire import Framing, framing
from assetwatch.settings import Settings

FOLLOW_POLL_S = 0.5
"""Longest wait of a following reader between two looks at its stop flag."""
JOIN_TIMEOUT_S = 60.0
"""Longest wait for the group to assign partitions (tansu: half the session timeout)."""


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
    framing: Framing = "unknown"
    """How the value was framed: Confluent (schema id), single-object Avro or JSON."""

    def as_line(self) -> dict[str, Any]:
        """The record as ``assetwatch consume`` prints it: Kafka's metadata, then the value.

        The decoded fields sit under ``value``, so a field never hides the record's own
        ``timestamp`` or ``key`` (a TelemetryReading has a ``timestamp`` field too).
        """
        return to_json_safe({
            "topic": self.topic, "partition": self.partition, "offset": self.offset,
            "timestamp": self.timestamp_ms, "key": self.key, "headers": dict(self.headers),
            "format": self.framing, "kind": self.kind, "value": self.fields,
        })


class RecordReader:
    """Reads topics from the beginning with a throw-away group; decodes every record.

    Single-object, Confluent-framed through the configured registry, or JSON. With
    ``from_end`` it assigns every partition at its end offset as of opening instead (no
    group join, so nothing written before is read; ends corrected on tansu, see
    :mod:`assetwatch.agents.kafka.offsets`).
    """

    def __init__(self, settings: Settings, topics: list[str], group: str | None = None,
                 from_end: bool = False) -> None:
        self._consumer = clients.consumer(
            settings, group or f"assetwatch-reader-{uuid.uuid4().hex[:8]}",
            {"auto.offset.reset": "earliest", "session.timeout.ms": 6000,
             "heartbeat.interval.ms": 1000})
        self._assigned = threading.Event()
        """Set once partitions are assigned: idle time counts from then on."""
        try:
            if from_end:
                self._consumer.assign(end_positions(self._consumer, settings, topics))
                self._assigned.set()
            else:
                self._consumer.subscribe(topics, on_assign=lambda *_: self._assigned.set())
            self._resolve = id_resolver(settings)
        except BaseException:
            self._consumer.close()
            raise

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
                                  stamp if stamp_type else None, headers, framing(value)))
        return records

    def iterate(self, idle_timeout_s: float) -> Iterator[Record]:
        """Records until nothing arrives for ``idle_timeout_s`` once partitions are assigned.

        The group join (seconds on tansu) does not count as idle.
        """
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while not self._assigned.is_set():
            if time.monotonic() > deadline:
                raise BrokerError(f"no partitions assigned within {JOIN_TIMEOUT_S:g}s")
            yield from self.poll(FOLLOW_POLL_S)
        while batch := self.poll(idle_timeout_s):
            yield from batch

    def follow(self, stop: threading.Event) -> Iterator[Record]:
        """Records as they arrive, idle or not, until ``stop`` is set (looked at per record)."""
        while not stop.is_set():
            for record in self.poll(FOLLOW_POLL_S):
                if stop.is_set():
                    return
                yield record

    def close(self) -> None:
        """Close the consumer (its throw-away group has committed nothing)."""
        self._consumer.close()

    def __enter__(self) -> RecordReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

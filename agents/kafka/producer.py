"""Publishing readings with confluent-kafka: simulator, CSV replay and tests share this."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, Message

from assetwatch.agents.kafka import clients
from assetwatch.errors import BrokerError
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings

log = logging.getLogger(__name__)


LINGER_MS = 5
"""How long a reading publisher gathers readings into one produce request, by default."""


class ReadingPublisher:
    """Keyed by asset id with the Java/Faust partitioner, so Faust tables stay co-partitioned."""

    def __init__(self, settings: Settings, topic: str | None = None,
                 linger_ms: int = LINGER_MS) -> None:
        """``linger_ms``: how long librdkafka gathers readings into one produce request."""
        self.topic = topic or settings.telemetry_topic
        self._producer = clients.producer(
            settings, {"linger.ms": linger_ms, "enable.idempotence": False, "acks": "all"})
        self._codec = codec("TelemetryReading")
        self.sent = 0
        self.failed = 0

    def _on_delivery(self, error: KafkaError | None, _msg: Message) -> None:
        if error is None:
            self.sent += 1
        else:
            self.failed += 1
            log.error("delivery failed: %s", error)

    def send(self, reading: dict[str, Any]) -> None:
        """Encode ``reading`` and publish it keyed by its asset id."""
        self.send_raw(reading["asset_id"].encode(), self._codec.encode(reading))

    def send_raw(self, key: bytes | None, value: bytes | None) -> None:
        """Publish bytes as they are (tests use it for poison records)."""
        clients.produce(self._producer, self.topic, value, key, on_delivery=self._on_delivery)
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for every delivery; :class:`BrokerError` if any is undelivered or failed."""
        remaining = self._producer.flush(timeout_s)
        if remaining or self.failed:
            raise BrokerError(f"{remaining} readings undelivered, {self.failed} failed")


def publish(
    publisher: ReadingPublisher,
    readings: Iterable[dict[str, Any]],
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Send readings, at most ``rate`` per second when given; return how many were sent.

    ``on_progress`` hears the count after every reading (it throttles itself); once ``stop``
    is set no further reading is sent, and those sent are flushed as at the end.
    """
    stop = stop or threading.Event()
    started = time.monotonic()
    count = 0
    for reading in readings:
        if rate:
            ahead = count / rate - (time.monotonic() - started)
            if ahead > 0.005:
                stop.wait(ahead)  # pacing to the requested rate; a stop cuts it short
        if stop.is_set():
            break
        publisher.send(reading)
        count += 1
        if on_progress:
            on_progress(count)
    publisher.flush()
    return count

"""Delivering a batch's outputs with confluent-kafka, waiting until the broker has them all.

Faust's own producer costs ~30 µs a record here; librdkafka enqueues in ~1 µs and batches
in C. Records are keyed by asset id with the Java/Faust partitioner (murmur2), so outputs
land on the same partition number as their input. Delivery runs where the batch was
processed (the scoring helper by default), so encoded outputs never travel back to the
worker's event loop.

Delivery is idempotent, except with ``broker_compat=tansu``: tansu 0.6.0 stores an idempotent
producer's next sequence number before the batch itself, so a broker crash between the two
makes the producer's retry look like a duplicate, which tansu acknowledges and drops (outputs
lost, measured in tests/integration/test_broker_restart.py). Without idempotence the retry is
written again: after a broker crash a prediction may repeat, none is lost.

A record the broker (or librdkafka) refuses for what it is, such as one over
``message.max.bytes``, becomes that record's outcome rather than the batch's failure: a
refused prediction is dead-lettered ``publish_failed``, a refused dead letter is sent again
without its original value, a refused alert is logged. Only failures of the connection
itself (unacknowledged, timed out) fail the batch, which is then retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Protocol

from confluent_kafka import KafkaError, KafkaException, Message

from assetwatch.agents.kafka import clients
from assetwatch.agents.kafka.registry import output_wires
from assetwatch.errors import BrokerError
from assetwatch.schemas.wire import Header, TopicWire
from assetwatch.scoring.dead_letters import DeadLetterWriter, error_headers
from assetwatch.scoring.outcome import Outcome
from assetwatch.scoring.records import Outbound, Output
from assetwatch.settings import Settings
from assetwatch.text import loggable

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 60.0
RECORD_ERRORS = frozenset({
    KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE,
    KafkaError.INVALID_RECORD, KafkaError.INVALID_MSG,
})
"""Delivery errors about the record itself: sending it again cannot succeed."""


class ProducerLike(Protocol):
    """The part of confluent-kafka's Producer a publisher uses (tests pass a fake)."""

    def produce(self, topic: str, value: bytes, key: bytes | None, *, on_delivery: Delivery,
                headers: list[Header]) -> None:
        """Queue one record; ``on_delivery`` gets its delivery report."""

    def poll(self, timeout: float) -> int:
        """Serve delivery reports for up to ``timeout`` seconds."""

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the queue; returns how many records are left."""


class Delivery(Protocol):
    """confluent-kafka's delivery-report callback."""

    def __call__(self, error: KafkaError | None, msg: Message | None) -> None:
        """Called once per record: its error (None once delivered) and the message."""


Refused = tuple[Output, Outbound, str]
"""(kind, record, why) of a record the broker or librdkafka refused."""


class OutputPublisher:
    """Sends a batch's records, each kind to its topic, and returns once all are acknowledged."""

    def __init__(self, settings: Settings, producer: ProducerLike | None = None,
                 wires: Mapping[str, TopicWire] | None = None) -> None:
        self._wires = dict(output_wires(settings) if wires is None else wires)
        """Each topic's format and content type (Confluent schema ids resolved at start)."""
        self._topics = {kind: kind.topic(settings) for kind in Output}
        self._letters = DeadLetterWriter(settings.max_message_bytes, time.time)
        self._producer: ProducerLike = producer or clients.producer(settings, {
            "linger.ms": 2,
            "acks": "all",
            "enable.idempotence": settings.broker_compat != "tansu",
            "queue.buffering.max.messages": 500_000,
            "message.max.bytes": settings.max_message_bytes,
        })
        self._failures: list[str] = []
        self._refused: list[Refused] = []

    def _on_delivery(self, kind: Output, record: Outbound, error: KafkaError | None,
                     _msg: Message | None) -> None:
        if error is None:
            return
        if error.code() in RECORD_ERRORS:
            self._refused.append((kind, record, str(error)))
        else:
            self._failures.append(str(error))

    def _send(self, kind: Output, records: Sequence[Outbound]) -> None:
        """Queue ``records``: one ``produce`` call each, anything unusual by :meth:`_produce`.

        Records of one model share one headers list (``model_headers``), joined once here.
        """
        topic = self._topics[kind]
        wire = self._wires[topic]
        produce, frame, delivered = self._producer.produce, wire.frame, self._on_delivery
        joined: dict[int, list[Header]] = {}
        for record in records:
            extra = record.headers
            headers = wire.headers if extra is None else joined.get(id(extra))
            if headers is None:  # first of its kind; extra lives as long as its record
                headers = joined[id(extra)] = wire.headers + (extra or [])
            try:
                produce(topic, frame(record.value), record.key,
                        on_delivery=partial(delivered, kind, record), headers=headers)
            except (BufferError, KafkaException):  # a full queue, or a refused record
                self._produce(kind, record, wire)

    def _produce(self, kind: Output, record: Outbound, wire: TopicWire | None = None) -> None:
        """Send ``record`` (its value as encoded: single-object) in its topic's format."""
        topic = self._topics[kind]
        wire = wire or self._wires[topic]
        on_delivery = partial(self._on_delivery, kind, record)
        value = wire.frame(record.value)
        headers = wire.headers if record.headers is None else wire.headers + record.headers
        try:
            clients.produce(self._producer, topic, value, record.key, on_delivery=on_delivery,
                            headers=headers)
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal():
                raise BrokerError(f"the producer failed for good: {error}") from None
            self._refused.append((kind, record, str(error)))

    def deliver(self, outcome: Outcome) -> None:
        """Publish ``outcome``'s records; raise :class:`BrokerError` unless all are acked.

        Refused records are replaced in ``outcome`` by what was published instead.
        """
        for kind, records in outcome.records.items():
            self._send(kind, records)
        self._flush()
        for _ in range(2):  # a refused prediction's dead letter may itself be refused once
            refused, self._refused = self._refused, []
            for kind, record, why in refused:
                self._replace(outcome, kind, record, why)
            self._flush()
        if self._refused:
            raise BrokerError(f"{len(self._refused)} outputs refused even without their "
                              f"original values: {[why for _, _, why in self._refused[:3]]}")

    def _replace(self, outcome: Outcome, kind: Output, record: Outbound, why: str) -> None:
        if kind is Output.PREDICTION and record.source is not None:
            outcome.predictions.remove(record)
            asset = record.key.decode("utf-8", "replace") if record.key is not None else None
            detail = f"the prediction was refused: {why}"
            key, value = self._letters.build(record.source, "publish_failed", detail,
                                             asset_id=asset)
            outcome.dead_letter_reasons.append("publish_failed")
            self._produce(Output.DEAD_LETTER, Outbound(
                key, value, None, error_headers(record.source, "publish_failed", detail)))
        elif kind is Output.DEAD_LETTER:
            stripped = self._letters.stripped(record.value, why)
            self._produce(kind, Outbound(record.key, stripped, record.source, record.headers))
        else:
            log.warning("the broker refused a record for %s, not sent: %s", self._topics[kind],
                        loggable(why))

    def _flush(self) -> None:
        remaining = self._producer.flush(FLUSH_TIMEOUT_S)
        failures, self._failures = self._failures, []
        if remaining or failures:
            raise BrokerError(
                f"{remaining} outputs unacknowledged after {FLUSH_TIMEOUT_S}s, "
                f"{len(failures)} failed: {failures[:3]}"
            )

    def close(self) -> None:
        """Flush what is still queued, waiting at most ``FLUSH_TIMEOUT_S``."""
        self._producer.flush(FLUSH_TIMEOUT_S)

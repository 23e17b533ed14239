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
"""

from __future__ import annotations

from collections.abc import Sequence

from confluent_kafka import KafkaError, Message, Producer

from assetwatch.errors import BrokerError
from assetwatch.scoring.processor import Outbound, Outcome
from assetwatch.settings import Settings

FLUSH_TIMEOUT_S = 60.0


class OutputPublisher:
    """Sends a batch's predictions and dead letters and returns once all are acknowledged."""

    def __init__(self, settings: Settings) -> None:
        self._predictions_topic = settings.predictions_topic
        self._dead_letter_topic = settings.dead_letter_topic
        self._drift_topic = settings.drift_topic
        self._asset_alerts_topic = settings.asset_alerts_topic
        self._shadow_topic = settings.shadow_predictions_topic
        self._producer = Producer({
            **settings.kafka_client_config(),
            "partitioner": "murmur2_random",
            "linger.ms": 2,
            "acks": "all",
            "enable.idempotence": settings.broker_compat != "tansu",
            "queue.buffering.max.messages": 500_000,
            "log.connection.close": False,
        })
        self._failures: list[str] = []

    def _on_delivery(self, error: KafkaError | None, _msg: Message) -> None:
        if error is not None:
            self._failures.append(str(error))

    def _send(self, topic: str, records: Sequence[Outbound]) -> None:
        produce, poll = self._producer.produce, self._producer.poll
        for record in records:
            while True:
                try:
                    produce(topic, record.value, record.key, on_delivery=self._on_delivery)
                    break
                except BufferError:
                    poll(0.05)  # local queue full: let it drain

    def deliver(self, outcome: Outcome) -> None:
        """Publish ``outcome``'s records; raise :class:`BrokerError` unless all are acked."""
        self._send(self._predictions_topic, outcome.predictions)
        self._send(self._dead_letter_topic, outcome.dead_letters)
        self._send(self._drift_topic, outcome.drift_alerts)
        self._send(self._asset_alerts_topic, outcome.asset_alerts)
        self._send(self._shadow_topic, outcome.shadow_predictions)
        remaining = self._producer.flush(FLUSH_TIMEOUT_S)
        failures, self._failures = self._failures, []
        if remaining or failures:
            raise BrokerError(
                f"{remaining} outputs unacknowledged after {FLUSH_TIMEOUT_S}s, "
                f"{len(failures)} failed: {failures[:3]}"
            )

    def close(self) -> None:
        self._producer.flush(FLUSH_TIMEOUT_S)

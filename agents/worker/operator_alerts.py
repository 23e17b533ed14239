"""``OperatorAlert`` records (model swapped or rejected) from one worker, for people on call."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid

from confluent_kafka import KafkaException

from assetwatch.agents.kafka import clients
from assetwatch.agents.kafka.registry import output_wires
from assetwatch.errors import SerializationError
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings

log = logging.getLogger(__name__)


class OperatorAlerts:
    """Publishes a worker's operator alerts.

    A failed publish is logged, never raised, since the decision it reports (what is served)
    has already been taken.
    """

    def __init__(self, settings: Settings) -> None:
        self._topic = settings.operator_alerts_topic
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._producer = clients.producer(settings, {"linger.ms": 5})
        self._encode = codec("OperatorAlert").encode
        self._wire = output_wires(settings)[self._topic]

    def publish(self, kind: str, name: str, version: str, serving: str, reason: str) -> None:
        """Send one OperatorAlert about ``name`` ``version``; a failure is only logged."""
        record = {
            "alert_id": f"{self.worker}-{uuid.uuid4().hex[:12]}", "kind": kind,
            "worker": self.worker, "model_name": name, "version": version,
            "serving_version": serving, "reason": reason,
            "issued_timestamp": int(time.time() * 1000),
        }
        try:
            self._producer.produce(self._topic, self._wire.frame(self._encode(record)),
                                   name.encode(), headers=self._wire.headers)
            self._producer.poll(0)
        except (BufferError, KafkaException, SerializationError) as exc:
            log.error("could not publish the %s alert: %s", kind, exc)

    def flush(self, timeout_s: float) -> int:
        """Wait for delivery; the number of alerts still undelivered."""
        return int(self._producer.flush(timeout_s))

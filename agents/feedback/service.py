"""``assetwatch feedback``: join maintenance labels to predictions; serve precision/recall.

The service reads every partition of the predictions and labels topics itself (assigned,
not shared through a consumer group; ``<prefix>-feedback`` only names its client), from the
beginning, and commits nothing. So each replica holds the whole view, and a restart rebuilds
the counts from the topics' retained history. The judging rules are in
:mod:`models.feedback`; the HTTP answers in :mod:`agents.feedback.performance`.
"""

from __future__ import annotations

import logging
import signal
import threading

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from prometheus_client import CollectorRegistry, ProcessCollector

from assetwatch.agents.endpoint import MonitoringServer
from assetwatch.agents.feedback.performance import (
    FeedbackCollector,
    FeedbackConfig,
    FeedbackView,
    Kind,
)
from assetwatch.agents.kafka import clients
from assetwatch.agents.kafka.topics import ensure_topics
from assetwatch.errors import BrokerError
from assetwatch.settings import Settings

log = logging.getLogger(__name__)

POLL_S = 0.5
BATCH = 1000


def run_feedback(settings: Settings, stop: threading.Event | None = None) -> None:
    """Serve /metrics, /performance, /health and /live while consuming, until stopped.

    SIGTERM and SIGINT stop it when it runs in the main thread; tests pass ``stop``.
    """
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    view = FeedbackView(FeedbackConfig.from_settings(settings))
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    registry.register(FeedbackCollector(view))
    server = MonitoringServer(settings.feedback_port, registry, view, settings.http_host,
                              routes={"/performance": view.performance},
                              threads=settings.http_threads, timeout_s=settings.http_timeout_s)
    server.start()
    try:
        ensure_topics(settings)
        consume(settings, view, stop)
    finally:
        server.close()


def _open(settings: Settings) -> tuple[Consumer, dict[str, Kind]]:
    """A consumer assigned every partition of both topics, from the beginning."""
    kinds: dict[str, Kind] = {settings.predictions_topic: "prediction",
                              settings.labels_topic: "label"}
    consumer = clients.consumer(settings, f"{settings.app_id}-feedback",
                                {"enable.partition.eof": True})
    try:
        assignment = [TopicPartition(topic, p, OFFSET_BEGINNING)
                      for topic in kinds for p in clients.partitions_of(consumer, topic)]
    except BaseException:
        consumer.close()
        raise
    consumer.assign(assignment)
    return consumer, kinds


def consume(settings: Settings, view: FeedbackView, stop: threading.Event) -> None:
    """Feed both topics' records to ``view`` until ``stop`` is set."""
    consumer, kinds = _open(settings)
    view.assigned((tp.topic, tp.partition) for tp in consumer.assignment())
    log.info("feedback: reading %s and %s from the beginning", *kinds)
    try:
        while not stop.is_set():
            for message in consumer.consume(BATCH, POLL_S):
                _handle(message, kinds, view)
    finally:
        consumer.close()


def _handle(message: Message, kinds: dict[str, Kind], view: FeedbackView) -> None:
    error = message.error()
    if error is not None and error.code() != KafkaError._PARTITION_EOF:
        if error.fatal():
            raise BrokerError(f"feedback consumer failed: {error}")
        log.warning("feedback consumer: %s", error)  # librdkafka retries transient errors
        return
    topic, partition = message.topic(), message.partition()
    assert topic is not None and partition is not None  # records and EOF events have both
    if error is None:
        view.take(kinds[topic], message.value())
    else:
        view.reached_end(topic, partition)

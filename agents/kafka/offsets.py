"""Where a partition ends, right on Apache Kafka and on tansu.

With ``broker_compat=tansu`` the ends reported by ListOffsets are corrected from a fetch's
high watermark: tansu 0.6.0 answers ListOffsets(LATEST) with the newest batch's base offset
plus one (see :mod:`assetwatch.agents.worker.faust_internals`, which holds the fetch and
imports Faust, so only then). With ``none`` the broker's answer is used as it is.
"""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaException, TopicPartition

from assetwatch.errors import BrokerError
from assetwatch.settings import Settings

METADATA_TIMEOUT_S = 10.0


def end_positions(consumer: Consumer, settings: Settings, topics: list[str]
                  ) -> list[TopicPartition]:
    """Every partition of ``topics`` at its end offset as of now; :class:`BrokerError` if absent."""
    try:
        # Metadata for all topics: asking for one by name would make tansu auto-create it.
        listed = consumer.list_topics(timeout=METADATA_TIMEOUT_S).topics
        missing = [topic for topic in topics if topic not in listed]
        if missing:
            raise BrokerError(f"no such topic: {', '.join(missing)}")
        ends = {
            (topic, p): int(consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=METADATA_TIMEOUT_S)[1])
            for topic in topics for p in listed[topic].partitions
        }
    except KafkaException as exc:
        raise BrokerError(f"cannot read the end offsets of {', '.join(topics)}: {exc}") from exc
    if settings.broker_compat == "tansu":
        ends = _fetched(settings, ends)
    return [TopicPartition(topic, p, end) for (topic, p), end in sorted(ends.items())]


def _fetched(settings: Settings, ends: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    from faust.types import TP

    from assetwatch.agents.worker.faust_internals import fetched_high_watermarks

    fixed = fetched_high_watermarks(settings.kafka_client_config(),
                                    {TP(topic, p): end for (topic, p), end in ends.items()})
    return {(tp.topic, tp.partition): end for tp, end in fixed.items()}

"""Where a partition ends, right on Apache Kafka and on tansu.

With ``broker_compat=tansu`` the ends reported by ListOffsets are corrected from a fetch's
high watermark: tansu 0.6.0 answers ListOffsets(LATEST) with the newest batch's base offset
plus one (see :mod:`assetwatch.agents.worker.faust_internals`, which holds the fetch and
imports Faust, so only then). With ``none`` the broker's answer is used as it is.
"""

from __future__ import annotations

from confluent_kafka import Consumer, KafkaException, TopicPartition

from assetwatch.agents.kafka import clients
from assetwatch.errors import BrokerError
from assetwatch.settings import Settings

METADATA_TIMEOUT_S = 10.0


def bounds(consumer: Consumer, settings: Settings, topic: str) -> dict[int, tuple[int, int]]:
    """Partition -> (first offset, end offset) of ``topic`` as of now.

    The ends are what :func:`end_positions` gives (corrected on tansu); :class:`BrokerError`
    if the topic is absent.
    """
    marks = _watermarks(consumer, settings, [topic])
    return {p: marks[topic, p] for _, p in sorted(marks)}


def end_positions(consumer: Consumer, settings: Settings, topics: list[str]
                  ) -> list[TopicPartition]:
    """Every partition of ``topics`` at its end offset as of now; :class:`BrokerError` if absent."""
    marks = _watermarks(consumer, settings, topics)
    return [TopicPartition(topic, p, end) for (topic, p), (_, end) in sorted(marks.items())]


def _watermarks(consumer: Consumer, settings: Settings, topics: list[str]
                ) -> dict[tuple[str, int], tuple[int, int]]:
    """(topic, partition) -> (low, high) watermarks, the high corrected on tansu."""
    partitions = {topic: clients.partitions_of(consumer, topic) for topic in topics}
    try:
        marks = {
            (topic, p): _pair(consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=METADATA_TIMEOUT_S))
            for topic in topics for p in partitions[topic]
        }
    except KafkaException as exc:
        raise BrokerError(f"cannot read the offsets of {', '.join(topics)}: {exc}") from exc
    if settings.broker_compat == "tansu":
        ends = _fetched(settings, {tp: high for tp, (_, high) in marks.items()})
        marks = {tp: (low, ends[tp]) for tp, (low, _) in marks.items()}
    return marks


def _pair(watermarks: tuple[int, int]) -> tuple[int, int]:
    low, high = watermarks
    return int(low), int(high)


def _fetched(settings: Settings, ends: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    from faust.types import TP

    from assetwatch.agents.worker.faust_internals import fetched_high_watermarks

    fixed = fetched_high_watermarks(settings.kafka_client_config(),
                                    {TP(topic, p): end for (topic, p), end in ends.items()})
    return {(tp.topic, tp.partition): end for tp, end in fixed.items()}

"""The broker compatibility layer: end offsets from a fetch's high watermark."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from faust.types import TP

from assetwatch.agents.worker.faust_internals import fetched_high_watermarks
from assetwatch.settings import Settings

pytestmark = pytest.mark.integration


def test_fetched_end_offsets_count_every_record_of_the_last_batch(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    topic = settings.telemetry_topic
    producer = Producer({**settings.kafka_client_config(), "linger.ms": 200})
    for i in range(10):  # one produce batch: tansu's ListOffsets reports its base offset + 1
        producer.produce(topic, f"v{i}".encode(), partition=2)
    assert producer.flush(30) == 0

    probe = Consumer({**settings.kafka_client_config(), "group.id": "probe"})
    _, listed_end = probe.get_watermark_offsets(TopicPartition(topic, 2), timeout=10)
    probe.close()
    tp = TP(topic, 2)
    empty = TP(topic, 3)

    corrected = fetched_high_watermarks(settings.kafka_client_config(), {tp: listed_end, empty: 0})

    assert corrected == {tp: 10, empty: 0}
    if settings.broker_compat == "tansu":
        assert listed_end < 10  # the bug the layer exists for; fixed upstream, drop this line

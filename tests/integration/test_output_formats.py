"""ASSETWATCH_OUTPUT_FORMAT=json: every output record is one line of JSON any consumer reads."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from assetwatch.agents.kafka.clients import partitions_of
from assetwatch.agents.kafka.producer import ReadingPublisher
from assetwatch.settings import Settings
from tests.integration.conftest import WorkerProcess, collect

pytestmark = pytest.mark.integration

SENSORS = {"temperature": 65.0, "vibration": 2.5, "spindle_speed": 1500.0, "power": 12.0}


def test_json_outputs_are_readable_by_a_plain_consumer_with_headers(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
    registered_models: dict[str, str],
) -> None:
    settings = make_settings(profiles=("cnc",), output_format="json", silence_after_s=2)
    worker = start_worker(settings)
    publisher = ReadingPublisher(settings)
    now = int(time.time() * 1000) - 30_000
    for i in range(20):
        publisher.send({"event_id": f"e{i}", "asset_id": f"cnc-{i % 4}", "asset_type": "cnc",
                        "timestamp": now + i, "sensors": SENSORS})
    publisher.send_raw(b"cnc-0", b'{"asset_id": "cnc-0"}')  # a dead letter
    publisher.flush()
    topics = [settings.predictions_topic, settings.dead_letter_topic,
              settings.asset_alerts_topic]
    collect(settings, topics, lambda rs: Counter(r.kind for r in rs) == {
        "Prediction": 20, "DeadLetter": 1, "AssetAlert": 4}, workers=(worker,))

    consumer = Consumer({**settings.kafka_client_config(), "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False})
    # Assigned, not subscribed: a group join on tansu waits half the session timeout (~22 s).
    consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics
                     for p in partitions_of(consumer, t)])
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + 60
    while sum(seen.values()) < 25 and time.monotonic() < deadline:
        for msg in consumer.consume(100, 1.0):
            assert msg.error() is None
            record = json.loads(msg.value())  # plain JSON, no framing byte
            headers = dict(msg.headers() or [])
            kind = headers["content-type"].decode().split(".")[-1]
            assert kind.endswith("+json")
            if msg.topic() == settings.predictions_topic:
                assert headers["model_version"] == registered_models["cnc"].encode()
                assert isinstance(record["event_timestamp"], int)
            if msg.topic() == settings.dead_letter_topic:
                assert headers["__streams.errors.exception"] == b"schema_mismatch"
                assert record["original_value"] == '{"asset_id": "cnc-0"}'
            seen[kind] += 1
    consumer.close()
    assert seen == {"prediction+json": 20, "deadletter+json": 1, "assetalert+json": 4}

"""Poison of sizes and clocks on a real broker: 1 MB and 10 MB readings, bad timestamps, ids.

Every input is accounted for by its source partition and offset (dead letters) or its event
id (predictions), and the worker's committed offsets must reach the end of every partition:
a dead letter that did not fit once crashed the agent and left the partition stuck.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from assetwatch.agents.commands.simulate import SimulationPlan, simulated_readings
from assetwatch.features.profiles import load_profile
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings
from tests.integration.conftest import WorkerProcess, collect, poll_until

pytestmark = pytest.mark.integration

BIG_PRODUCER_BYTES = 11_000_000
"""The test's own producer sends up to 10 MB readings (tansu takes ~10 MB; Kafka ~1 MB)."""


def _padded(reading: dict[str, Any], size: int) -> bytes:
    """``reading`` as JSON of exactly ``size`` bytes (an extra field holds the padding)."""
    text = json.dumps({**reading, "pad": ""}).encode()
    return text.replace(b'"pad": ""', b'"pad": "' + b"p" * (size - len(text)) + b'"')


def _poison(normal: list[dict[str, Any]]) -> list[tuple[int, bytes, bytes, str]]:
    """(position among the normal readings, key, value, expected reason)."""
    avro = codec("TelemetryReading").encode
    base = normal[len(normal) // 2]
    now_ms = int(time.time() * 1000)

    def variant(**fields: Any) -> dict[str, Any]:
        return {**base, "event_id": f"poison-{uuid.uuid4().hex[:8]}", **fields}

    asset = base["asset_id"].encode()
    poison = [
        (asset, _padded(variant(), 1_000_000), "oversized"),
        (asset, _padded(variant(), 10_000_000), "oversized"),
        (asset, avro(variant(timestamp=now_ms + 250_000)), "future_timestamp"),
        (asset, avro(variant(timestamp=0)), "too_old"),
        (asset, avro(variant(timestamp=-1)), "too_old"),
        (asset, avro(variant(timestamp=-(2**63))), "too_old"),
        (asset, avro(variant(timestamp=now_ms // 1000)), "too_old"),
        (asset, avro(variant(event_id="")), "empty_id"),
        (b"", avro(variant(asset_id="")), "empty_id"),
        (b"c" * 300, avro(variant(asset_id="c" * 300)), "id_too_long"),
    ]
    step = len(normal) // (2 * len(poison))
    return [(len(normal) // 4 + i * step, k, v, r) for i, (k, v, r) in enumerate(poison)]


class _Sender:
    """A producer that records where each message landed."""

    def __init__(self, settings: Settings) -> None:
        self._producer = Producer({**settings.kafka_client_config(), "linger.ms": 5,
                                   "partitioner": "murmur2_random",
                                   "message.max.bytes": BIG_PRODUCER_BYTES})
        self._topic = settings.telemetry_topic
        self.placed: dict[int, tuple[int, int]] = {}

    def send(self, i: int, key: bytes, value: bytes) -> None:
        def report(error: KafkaError | None, msg: Message) -> None:
            assert error is None, error
            self.placed[i] = (msg.partition(), msg.offset())

        self._producer.produce(self._topic, value, key, on_delivery=report)
        self._producer.poll(0)

    def flush(self) -> None:
        assert self._producer.flush(60) == 0


def _committed(settings: Settings) -> dict[int, int]:
    consumer = Consumer({**settings.kafka_client_config(), "group.id": settings.app_id})
    try:
        tps = [TopicPartition(settings.telemetry_topic, p) for p in range(settings.partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
    finally:
        consumer.close()


def test_big_readings_and_bad_clocks_get_one_dead_letter_each_and_partitions_move(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    settings = make_settings(profiles=("cnc",))
    plan = SimulationPlan(assets=8, count=2000, rate=1e9, seed=21)
    normal = list(simulated_readings(load_profile("cnc"), plan, threading.Event(), time.time))
    poison = _poison(normal)
    worker = start_worker(settings)
    sender, expected_letters, n = _Sender(settings), {}, 0
    at = {position: (key, value, reason) for position, key, value, reason in poison}
    for position, reading in enumerate(normal):
        if position in at:
            key, value, reason = at[position]
            sender.send(n, key, value)
            expected_letters[n] = reason
            n += 1
        sender.send(n, reading["asset_id"].encode(), codec("TelemetryReading").encode(reading))
        n += 1
    sender.flush()

    records = collect(settings, [settings.predictions_topic, settings.dead_letter_topic],
                      lambda rs: len(rs) >= n, timeout_s=180, workers=(worker,))

    predictions = Counter(r.fields["event_id"] for r in records if r.kind == "Prediction")
    letters = Counter((r.fields["source_partition"], r.fields["source_offset"],
                       r.fields["reason"]) for r in records if r.kind == "DeadLetter")
    assert predictions == Counter(r["event_id"] for r in normal)  # each once, none late
    assert letters == Counter((*sender.placed[i], reason) for i, reason in expected_letters.items())
    assert len(records) == n
    ends: dict[int, int] = {}
    for partition, offset in sender.placed.values():
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    poll_until(lambda: all(_committed(settings).get(p, -1) >= end for p, end in ends.items()),
               "committed offsets to reach the end", worker.alive, 60)
    print(f"sent={n} predictions={predictions.total()} dead_letters={letters.total()} "
          f"duplicates={sum(c - 1 for c in (predictions + letters).values())} "
          f"lost={n - len(set(predictions)) - len(set(letters))}")

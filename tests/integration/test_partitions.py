"""Every reading on its asset's partition.

Murmur2 as librdkafka computes it, and what a worker does with readings a CRC32 (librdkafka
default) producer put elsewhere.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer

from assetwatch.agents.commands.dlq import Selection, replay
from assetwatch.agents.kafka.consumer import Record
from assetwatch.agents.kafka.producer import ReadingPublisher
from assetwatch.schemas.codecs import codec
from assetwatch.scoring.partitioner import partition_for
from assetwatch.settings import Settings
from tests.integration.conftest import WorkerProcess, collect

pytestmark = pytest.mark.integration

SENSORS = {"temperature": 65.0, "vibration": 2.5, "spindle_speed": 1500.0, "power": 12.0}


def _delivered(settings: Settings, partitioner: str, messages: list[tuple[bytes, bytes]]
               ) -> list[int]:
    """The partition librdkafka's ``partitioner`` put each (key, value) on."""
    partitions: dict[bytes, int] = {}

    def on_delivery(error: KafkaError | None, msg: Message) -> None:
        assert error is None, error
        partitions[msg.key()] = msg.partition()  # callbacks come in no particular order

    producer = Producer({**settings.kafka_client_config(), "partitioner": partitioner})
    for key, value in messages:
        producer.produce(settings.telemetry_topic, value, key, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    return [partitions[key] for key, _ in messages]


def _reading(asset: str, age_s: float) -> bytes:
    ts = int((time.time() - age_s) * 1000)
    return codec("TelemetryReading").encode({
        "event_id": f"{asset}-{ts}", "asset_id": asset, "asset_type": "cnc",
        "timestamp": ts, "sensors": SENSORS})


def test_librdkafka_murmur2_random_agrees_with_our_murmur2(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(partitions=7)
    keys = [b"", b"a", b"ab", b"abc", b"cnc-001", b"pump-0042", "düse-7".encode(), b"x" * 61]
    got = _delivered(settings, "murmur2_random", [(k, b"{}") for k in keys])
    assert got == [partition_for(k, 7) for k in keys]


def test_crc32_produced_readings_are_dead_lettered_never_scored_on_a_second_state(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
    registered_models: dict[str, str],
) -> None:
    settings = make_settings(profiles=("cnc",))
    n = settings.partitions
    assets = [a for a in (f"cnc-{i:03d}" for i in range(20))
              if zlib.crc32(a.encode()) % n != partition_for(a.encode(), n)][:6]
    assert len(assets) == 6  # the setup: six assets CRC32 and murmur2 place apart
    worker = start_worker(settings)
    publisher = ReadingPublisher(settings)
    for asset in assets:  # each asset's newest reading, on its own partition
        publisher.send_raw(asset.encode(), _reading(asset, 60))
    publisher.flush()
    # The reproduction: a reading 120 s older than the asset's newest, from a CRC32 producer.
    strays = [(a.encode(), _reading(a, 180)) for a in assets]
    landed = _delivered(settings, "consistent_random", strays)
    assert all(p != partition_for(a.encode(), n) for a, p in zip(assets, landed, strict=True))

    def letters(records: list[Record], reason: str) -> list[dict[str, Any]]:
        return [r.fields for r in records
                if r.kind == "DeadLetter" and r.fields["reason"] == reason]

    records = collect(settings, [settings.predictions_topic, settings.dead_letter_topic],
                      lambda rs: len(letters(rs, "wrong_partition")) == len(assets)
                      and sum(r.kind == "Prediction" for r in rs) >= len(assets),
                      workers=(worker,))
    predictions = [r.fields for r in records if r.kind == "Prediction"]
    stray_ids = {codec("TelemetryReading").decode(v)["event_id"] for _, v in strays}
    assert {p["asset_id"] for p in predictions} == set(assets)
    assert not stray_ids & {p["event_id"] for p in predictions}
    wrong = letters(records, "wrong_partition")
    assert {w["event_id"] for w in wrong} == stray_ids
    assert all("murmur2_random" in w["error"] for w in wrong)

    # dlq --replay sends each to its asset's partition, where the asset's one state judges it.
    replay(settings, Selection(frozenset({"wrong_partition"})), idle_timeout_s=5)
    records = collect(settings, [settings.dead_letter_topic],
                      lambda rs: len(letters(rs, "late")) == len(assets), workers=(worker,))
    late = letters(records, "late")
    print(json.dumps({"test": "wrong_partition", "assets": len(assets), "late": len(late)}))
    assert {(w["asset_id"], w["source_partition"]) for w in late} == {
        (a, partition_for(a.encode(), n)) for a in assets}

"""``assetwatch dlq`` on a real broker: list dead letters up to the observed end, replay some."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer, KafkaError, TopicPartition

from assetwatch.agents.commands.dlq import DeadLetterScan
from assetwatch.agents.kafka.producer import ReadingPublisher
from assetwatch.cli import main
from assetwatch.features.profiles import load_profiles
from assetwatch.schemas.codecs import codec
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound
from assetwatch.settings import Settings
from tests.integration.conftest import settings_env

pytestmark = pytest.mark.integration

SENSORS = {"temperature": 65.0, "vibration": 2.5, "spindle_speed": 1500.0, "power": 12.0}


def _reading(asset: str, **fields: Any) -> bytes:
    reading = {"event_id": f"{asset}-1", "asset_id": asset, "asset_type": "cnc",
               "timestamp": int(time.time() * 1000) - 60_000, "sensors": SENSORS, **fields}
    return codec("TelemetryReading").encode(reading)


POISON: list[tuple[bytes | None, bytes, str]] = [
    (b"cnc-001", _reading("cnc-001", sensors={**SENSORS, "temperature": 912.0}), "out_of_range"),
    (b"cnc-002", _reading("cnc-002", asset_type="compressor"), "unknown_asset_type"),
    (None, b"\x00\xffnot a reading", "undecodable"),
    (b"cnc-003", b'{"asset_id": "cnc-003"}', "schema_mismatch"),
    (b"cnc-004", _reading("cnc-004", sensors={**SENSORS, "power": -5.0}), "out_of_range"),
]
"""(key, value, the reason a worker gives it)."""


def _no_model(profile: str) -> NoReturn:
    raise AssertionError(f"a dead letter needs no model ({profile})")


def _dead_letter(settings: Settings, inputs: Sequence[tuple[bytes | None, bytes, str]],
                 first_offset: int = 0) -> None:
    """Dead-letter ``inputs`` as a worker does (the batch processor), keyed by the input's key."""
    processor = BatchProcessor(settings, load_profiles(settings.profiles), _no_model)
    batch = [Inbound(key, value, settings.telemetry_topic, 0, first_offset + i)
             for i, (key, value, _) in enumerate(inputs)]
    prepared = processor.prepare(batch, lambda key: None)
    assert prepared.dead_letter_reasons == [reason for _, _, reason in inputs]
    publisher = ReadingPublisher(settings, settings.dead_letter_topic)
    for letter in prepared.dead_letters:
        publisher.send_raw(letter.key, letter.value)
    publisher.flush()


Raw = tuple[int | None, bytes | None, bytes | None]
"""(partition, key, value) of a message."""


def _read_all(settings: Settings, topic: str, partitions: int) -> list[Raw]:
    """Every (partition, key, value) of ``topic``: read until each partition reports its end."""
    consumer = Consumer({**settings.kafka_client_config(), "group.id": uuid.uuid4().hex,
                         "enable.partition.eof": True, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records: list[Raw] = []
    at_end: set[int | None] = set()
    deadline = time.monotonic() + 60
    while len(at_end) < partitions:
        assert time.monotonic() < deadline, f"no end of {topic} within 60 s: {records}"
        for msg in consumer.consume(100, 1.0):
            error = msg.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                at_end.add(msg.partition())
            else:
                records.append((msg.partition(), msg.key(), msg.value()))
    consumer.close()
    return records


def test_dlq_lists_up_to_the_observed_end_and_replays_the_selected_bytes(
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(profiles=("cnc",))
    _dead_letter(settings, POISON)

    with DeadLetterScan(settings, idle_timeout_s=30) as scan:
        late = [(b"cnc-009", _reading("cnc-009", sensors={**SENSORS, "vibration": 500.0}),
                 "out_of_range")]
        _dead_letter(settings, late, first_offset=len(POISON))  # after the scan saw the ends
        seen = list(scan)
    assert sorted(letter.source_offset for letter in seen) == list(range(len(POISON)))
    assert not scan.timed_out

    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GIT_PYTHON_REFRESH", "quiet")

    assert main(["dlq"]) == 0
    listed = capsys.readouterr()
    lines = listed.out.splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(
        [reason for _, _, reason in POISON + late])
    assert any(line.startswith("undecodable ") and "asset=-  value=0x00ff6e6f" in line
               for line in lines)
    assert "6 selected of 6 read: out_of_range=3 schema_mismatch=1 undecodable=1 " \
           "unknown_asset_type=1" in listed.err

    assert main(["dlq", "--json", "--reason", "undecodable"]) == 0
    (only,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (only["reason"], only["original_key"], only["source_offset"]) == ("undecodable", None, 2)

    assert main(["dlq", "--replay", "--reason", "out_of_range", "--reason", "undecodable"]) == 0
    replay_out = capsys.readouterr()
    assert json.loads(replay_out.out) == {"replayed": 4, "topic": settings.telemetry_topic}
    assert "out_of_range=3 undecodable=1" in replay_out.err

    arrived = _read_all(settings, settings.telemetry_topic, settings.partitions)
    expected = [(k, v) for k, v, r in POISON + late if r in ("out_of_range", "undecodable")]
    assert sorted((k or b"", v) for _, k, v in arrived) == sorted(
        (k or b"", v) for k, v in expected)
    murmur2 = DefaultPartitioner()
    everything = list(range(settings.partitions))
    for partition, key, _ in arrived:
        if key is not None:  # keyed like Faust would key it, so the asset's state is there
            assert partition == murmur2(key, everything, everything)

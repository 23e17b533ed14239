"""Confluent-framed outputs through an HTTP registry, read back by confluent-kafka's own tools.

The registry is the TEST DOUBLE in tests/schema_registry_double.py (no real Schema Registry
installs on these machines); the broker, the worker and the deserializer are real.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from assetwatch.agents.commands.simulate import SimulationPlan, simulated_readings
from assetwatch.agents.kafka.consumer import Record
from assetwatch.agents.kafka.producer import ReadingPublisher
from assetwatch.agents.kafka.registry import output_records
from assetwatch.features.profiles import load_profile
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings
from tests.integration.conftest import WorkerProcess, collect
from tests.schema_registry_double import SchemaRegistryDouble

pytestmark = pytest.mark.integration

ASSETS = 2
_CNC = load_profile("cnc")
PER_ASSET = max(_CNC.baseline.calibration_readings,
                int(_CNC.windows_complete_s / _CNC.reading_interval_s)) + 100
"""Drift watches only rows past calibration whose windows are complete: 100 such rows per
asset fill the drift window."""
VIBRATION_SHIFT = 6.0
"""Added to every valid reading's vibration (training: 2.5 mm/s, noise 0.25): drift."""


def _inputs() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Valid readings (vibration shifted), and readings each dead-lettered for a reason."""
    plan = SimulationPlan(assets=ASSETS, count=ASSETS * PER_ASSET, rate=1e9, seed=13)
    valid = [{**r, "sensors": {**r["sensors"],
                               "vibration": r["sensors"]["vibration"] + VIBRATION_SHIFT}}
             for r in simulated_readings(load_profile("cnc"), plan, threading.Event(),
                                         time.time)]
    base = valid[0]
    bad = [
        {**base, "event_id": "bad-type", "asset_id": "turbine-1", "asset_type": "turbine"},
        {**base, "event_id": "bad-range", "sensors": {**base["sensors"], "vibration": 500.0}},
        {**base, "event_id": "bad-sensor", "sensors": {**base["sensors"], "torque": 1.0}},
    ]
    return valid, bad


def _ms(value: Any) -> Any:
    """AvroDeserializer's datetimes (timestamp-millis) as epoch ms, as assetwatch reads them."""
    if isinstance(value, dt.datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: _ms(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ms(v) for v in value]
    return value


def _read_to_end(settings: Settings, topics: list[str]) -> list[tuple[Any, dict[str, Any]]]:
    """Every record of ``topics`` from offset 0 to each partition's end: (message, decoded)."""
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": settings.schema_registry_url}))
    consumer = Consumer({**settings.kafka_client_config(), "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False, "enable.partition.eof": True})
    metadata = consumer.list_topics(timeout=10).topics
    partitions = {(t, p) for t in topics for p in metadata[t].partitions}
    consumer.assign([TopicPartition(t, p, 0) for t, p in sorted(partitions)])
    at_end: set[tuple[str, int]] = set()
    out = []
    deadline = time.monotonic() + 60
    while at_end != partitions:
        assert time.monotonic() < deadline, f"not at the end of {partitions - at_end}"
        for msg in consumer.consume(1000, 0.5):
            where = (msg.topic(), msg.partition())
            error = msg.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                at_end.add(where)  # type: ignore[arg-type]
                continue
            at_end.discard(where)  # type: ignore[arg-type]
            context = SerializationContext(msg.topic(), MessageField.VALUE)
            out.append((msg, _ms(deserialize(msg.value(), context))))
    consumer.close()
    return out


def test_every_output_record_decodes_with_avro_deserializer_through_the_registry(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
    schema_registry: SchemaRegistryDouble,
    registered_models: dict[str, str],
) -> None:
    settings = make_settings(profiles=("cnc",), schema_registry_url=schema_registry.url,
                             silence_after_s=2, drift_window=100, drift_step=50)
    worker = start_worker(settings)
    valid, bad = _inputs()
    publisher = ReadingPublisher(settings)
    for reading in valid + bad:
        publisher.send(reading)
    schema_mismatch = b'{"asset_id": "cnc-0"}'
    publisher.send_raw(b"cnc-0", schema_mismatch)
    publisher.send_raw(b"cnc-x", codec("TelemetryReading").encode(
        {**valid[0], "event_id": "bad-key"}))  # key_mismatch
    publisher.flush()
    ids = {r["event_id"] for r in valid + bad} | {"bad-key"}
    assets = {r["asset_id"] for r in valid}

    def complete(records: list[Record]) -> bool:
        answered = {r.fields.get("event_id") for r in records
                    if r.kind in ("Prediction", "DeadLetter")}
        silent = {r.fields["asset_id"] for r in records if r.kind == "AssetAlert"}
        return ids <= answered and silent >= assets and any(r.kind == "DriftAlert"
                                                            for r in records)

    topics = list(output_records(settings))
    seen = collect(settings, topics, complete, workers=(worker,))
    decoded = _read_to_end(settings, topics)

    # Every record: Confluent framing with the id of its topic's subject; decodes to what
    # assetwatch's own reader (through the same registry) read at that offset.
    client = SchemaRegistryClient({"url": schema_registry.url})
    ids_by_topic = {t: client.get_latest_version(f"{t}-value").schema_id for t in topics}
    ours = {(r.topic, r.partition, r.offset): r for r in seen}
    for msg, record in decoded:
        value = msg.value()
        assert value[0] == 0 and int.from_bytes(value[1:5], "big") == ids_by_topic[msg.topic()]
        mine = ours.get((msg.topic(), msg.partition(), msg.offset()))
        if mine is not None:  # records after collect() stopped are checked by schema only
            assert record == mine.fields
            assert mine.kind == output_records(settings)[msg.topic()]
    kinds = Counter(msg.topic() for msg, _ in decoded)
    print(json.dumps({"test": "schema_registry", "records": dict(kinds),
                      "requests": Counter(m for m, _ in schema_registry.requests)}))

    # One prediction or dead letter per input event id, and sane fields.
    by_kind: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    for msg, record in decoded:
        by_kind.setdefault(output_records(settings)[msg.topic()], []).append((msg, record))
    predictions = [r for m, r in by_kind["Prediction"] if m.topic() == settings.predictions_topic]
    letters = [r for _, r in by_kind["DeadLetter"]]
    answered = Counter(r["event_id"] for r in predictions + letters if r["event_id"])
    assert set(answered) == ids and set(answered.values()) == {1}
    assert {r["event_id"] for r in predictions} == {r["event_id"] for r in valid}
    reasons = {r["event_id"]: r["reason"] for r in letters}
    assert reasons == {"bad-type": "unknown_asset_type", "bad-range": "out_of_range",
                       "bad-sensor": "unexpected_sensor", "bad-key": "key_mismatch",
                       None: "schema_mismatch"}
    assert [r["original_value"] for r in letters if r["event_id"] is None] == [schema_mismatch]
    for msg, record in by_kind["Prediction"]:
        assert msg.key() == record["asset_id"].encode()
        assert record["model_version"] == registered_models["cnc"]
        assert 0.0 <= record["failure_probability"] <= 1.0
    for msg, record in by_kind["DeadLetter"]:
        assert msg.key() == record["original_key"]
        assert record["source_topic"] == settings.telemetry_topic
    for msg, record in by_kind["AssetAlert"]:
        assert msg.key() == record["asset_id"].encode() and record["asset_id"] in assets
    drift = [r for _, r in by_kind["DriftAlert"]]
    assert drift and {r["model_version"] for r in drift} == {registered_models["cnc"]}
    assert schema_registry.unhandled == []

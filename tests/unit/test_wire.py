"""Output framing (single-object, Confluent, JSON), headers, and the registry's subjects."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import fastavro
import pytest

from assetwatch.agents.kafka.consumer import Record
from assetwatch.agents.kafka.registry import id_resolver, output_wires
from assetwatch.schemas.codecs import codec, decode_any
from assetwatch.schemas.wire import TopicWire, confluent_header, framing
from assetwatch.scoring.dead_letters import DeadLetterWriter, error_headers
from assetwatch.settings import Settings

LETTER_SOURCE = (b"cnc-1", b"\x00\n\xffraw", "t.telemetry", 4, 77)


def _letter() -> bytes:
    return DeadLetterWriter(1_000_000, lambda: 1.5).build(LETTER_SOURCE, "late", "too late")[1]


def test_confluent_framing_is_the_same_body_behind_the_schema_id() -> None:
    value = _letter()
    framed = TopicWire("DeadLetter", "avro", confluent_header(258)).frame(value)
    assert framed[:5] == b"\x00\x00\x00\x01\x02" and framed[5:] == value[10:]
    assert decode_any(framed, {258: codec("DeadLetter").header}.get) == decode_any(value)
    with pytest.raises(Exception, match="schema id 258"):
        decode_any(framed)


def test_json_output_is_one_ascii_line_that_decodes_back_to_the_record() -> None:
    framed = TopicWire("DeadLetter", "json").frame(_letter())
    assert framed.isascii() and b"\n" not in framed
    assert decode_any(framed) == decode_any(_letter())  # bytes fields back from latin-1


def test_dead_letter_headers_follow_kafka_streams() -> None:
    headers = dict(error_headers(LETTER_SOURCE, "late", "x" * 5000))
    assert headers["__streams.errors.exception"] == b"late"
    assert (headers["__streams.errors.topic"], headers["__streams.errors.partition"],
            headers["__streams.errors.offset"]) == (b"t.telemetry", b"4", b"77")
    assert len(headers["__streams.errors.message"] or b"") < 300  # the record has it whole


def test_content_type_names_record_and_format(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(output_format="json")
    wire = output_wires(settings)[settings.predictions_topic]
    assert wire.headers == [("content-type", b"application/vnd.assetwatch.prediction+json")]


def test_registry_subjects_get_ids_and_records_decode_with_fastavro_from_the_registry(
    make_settings: Callable[..., Settings],
) -> None:
    pytest.importorskip("confluent_kafka.schema_registry", reason="the registry extra")
    from confluent_kafka.schema_registry import SchemaRegistryClient

    settings = make_settings(schema_registry_url="mock://wire-test")
    client = SchemaRegistryClient.new_client({"url": "mock://wire-test"})
    wires = output_wires(settings, client)
    framed = wires[settings.dead_letter_topic].frame(_letter())
    schema_id = int.from_bytes(framed[1:5], "big")
    latest = client.get_latest_version(f"{settings.dead_letter_topic}-value")
    assert latest.schema_id == schema_id
    body: Any = fastavro.schemaless_reader(io.BytesIO(framed[5:]), fastavro.parse_schema(
        json.loads(latest.schema.schema_str)))
    assert body["reason"] == "late" and body["original_value"] == b"\x00\n\xffraw"
    assert decode_any(framed, id_resolver(settings, client))[0] == "DeadLetter"
    lookup_only = make_settings(schema_registry_url="mock://wire-test",
                                schema_registry_register=False)
    assert output_wires(lookup_only, client) == wires


def test_framing_is_told_by_the_first_bytes() -> None:
    assert framing(_letter()) == "single-object"
    assert framing(b"\x00\x00\x01") == "unknown"  # too short for a schema id
    assert framing(b"plain text") == "unknown"


def test_consume_lines_keep_the_record_timestamp_apart_from_a_field_of_that_name() -> None:
    reading = {"event_id": "e1", "asset_id": "cnc-1", "timestamp": 5, "raw": b"\xff"}
    record = Record("t", 2, 9, b"cnc-1", "TelemetryReading", reading, 1234,
                    (("content-type", b"x+json"), ("empty", None)), "json")
    assert record.as_line() == {
        "topic": "t", "partition": 2, "offset": 9, "timestamp": 1234, "key": "cnc-1",
        "headers": {"content-type": "x+json", "empty": None}, "format": "json",
        "kind": "TelemetryReading",
        "value": {"event_id": "e1", "asset_id": "cnc-1", "timestamp": 5, "raw": "\xff"}}
    json.dumps(record.as_line())  # printable as it is

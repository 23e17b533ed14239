"""Every Avro contract round-trips; bad bytes and bad JSON become SerializationError."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import fastavro.schema
import pytest

from assetwatch.errors import SerializationError
from assetwatch.schemas.codecs import (
    HEADER_LEN,
    MAGIC,
    SCHEMA_FILES,
    codec,
    decode_any,
    to_json_safe,
)

TS = 1_700_000_000_123

RECORDS: list[tuple[str, dict[str, Any]]] = [
    (
        "TelemetryReading",
        {
            "event_id": "cnc-001-1700000000123",
            "asset_id": "cnc-001",
            "asset_type": "cnc",
            "timestamp": TS,
            "sensors": {
                "temperature": 65.25,
                "vibration": 2.5,
                "spindle_speed": 1500.0,
                "power": 12.0,
            },
        },
    ),
    (
        "TelemetryReading",
        {
            "event_id": "é-ü-✓",
            "asset_id": "",
            "asset_type": "pump",
            "timestamp": -1,
            "sensors": {},
        },
    ),
    (
        "Prediction",
        {
            "asset_id": "cnc-001",
            "asset_type": "cnc",
            "event_id": "e-1",
            "event_timestamp": TS,
            "processed_timestamp": TS + 42,
            "anomaly_score": -0.125,
            "is_anomaly": False,
            "failure_probability": 0.3,
            "model_name": "assetwatch-cnc",
            "model_version": "7",
            "top_features": [
                {"name": "temperature_zscore_30m", "value": 3.5, "z_score": -4.25},
                {"name": "power", "value": 12.0, "z_score": 2.0},
                {"name": "vibration_max_5m", "value": 2.75, "z_score": 1.5},
            ],
            "calibrating": False,
            "baseline_score": 5.25,
        },
    ),
    (
        "DeadLetter",
        {
            "reason": "undecodable",
            "error": "neither Avro nor JSON",
            "source_topic": "t",
            "source_partition": 5,
            "source_offset": 2**40,
            "original_key": b"cnc-001",
            "original_value": b"\xc3\x01\x00\xff garbage",
            "event_id": None,
            "asset_id": None,
            "failed_timestamp": TS,
            "original_value_size": None,
            "original_value_sha256": None,
        },
    ),
    (
        "DeadLetter",
        {
            "reason": "late",
            "error": "31 s behind",
            "source_topic": "assetwatch.telemetry",
            "source_partition": 0,
            "source_offset": 0,
            "original_key": None,
            "original_value": None,
            "event_id": "e-9",
            "asset_id": "cnc-002",
            "failed_timestamp": TS,
            "original_value_size": 2**31,
            "original_value_sha256": "0" * 64,
        },
    ),
    (
        "DriftAlert",
        {
            "alert_id": "a-1",
            "state": "RAISED",
            "model_name": "assetwatch-pump",
            "model_version": "3",
            "feature": "current_mean_5m",
            "divergence": 0.41,
            "threshold": 0.2,
            "window_start": TS - 600_000,
            "window_end": TS,
            "sample_count": 600,
        },
    ),
    (
        "AssetAlert",
        {
            "alert_id": "cnc-001-1795337437514-RAISED",
            "kind": "FAILURE_RISK",
            "state": "RAISED",
            "severity": "WARNING",
            "asset_id": "cnc-001",
            "asset_type": "cnc",
            "flagged": 3,
            "window": 5,
            "failure_probability": 0.62,
            "contributing_features": ["vibration_max_5m", "temperature"],
            "model_name": "assetwatch-cnc",
            "model_version": "4",
            "event_timestamp": TS,
            "issued_timestamp": TS,
        },
    ),
    (
        "OperatorAlert",
        {
            "alert_id": "w1:42-1",
            "kind": "MODEL_REJECTED",
            "worker": "w1:42",
            "model_name": "assetwatch-cnc",
            "version": "9",
            "serving_version": "8",
            "reason": "features differ from the profile's",
            "issued_timestamp": TS,
        },
    ),
    (
        "MaintenanceLabel",
        {
            "label_id": "cnc-001-1700000000123",
            "asset_id": "cnc-001",
            "event_timestamp": TS,
            "failure": True,
            "note": "spindle bearing seized",
        },
    ),
    (
        "MaintenanceLabel",
        {
            "label_id": "l-2",
            "asset_id": "pump-3",
            "event_timestamp": TS,
            "failure": False,
            "note": None,
        },
    ),
    (
        "ModelUpdate",
        {
            "model_name": "assetwatch-cnc",
            "alias": "champion",
            "version": "8",
            "previous_version": "7",
            "action": "ROLLBACK",
            "issued_timestamp": TS,
        },
    ),
    (
        "ModelUpdate",
        {
            "model_name": "assetwatch-cnc",
            "alias": "champion",
            "version": "1",
            "previous_version": None,
            "action": "PROMOTE",
            "issued_timestamp": TS,
        },
    ),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(RECORDS)]


def _timestamp_fields(name: str) -> list[str]:
    schema = json.loads((resources.files("assetwatch.schemas") / SCHEMA_FILES[name]).read_text())
    return [
        f["name"]
        for f in schema["fields"]
        if isinstance(f["type"], dict) and f["type"].get("logicalType") == "timestamp-millis"
    ]


def _crc64_avro(data: bytes) -> bytes:
    """The Avro spec's Rabin fingerprint, written out independently, little-endian."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp.to_bytes(8, "little")


@pytest.mark.parametrize(("name", "record"), RECORDS, ids=IDS)
def test_record_round_trips_with_epoch_millis(name: str, record: dict[str, Any]) -> None:
    data = codec(name).encode(record)
    decoded = codec(name).decode(data)

    assert decoded == record
    for field in _timestamp_fields(name):
        assert type(decoded[field]) is int


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_header_is_magic_and_the_schema_fingerprint(name: str) -> None:
    canonical = fastavro.schema.to_parsing_canonical_form(codec(name).schema)

    assert codec(name).header == MAGIC + _crc64_avro(canonical.encode())
    assert len(codec(name).header) == HEADER_LEN == 10


@pytest.mark.parametrize(("name", "record"), RECORDS, ids=IDS)
def test_decode_any_tells_records_apart(name: str, record: dict[str, Any]) -> None:
    assert decode_any(codec(name).encode(record)) == (name, record)


def test_every_schema_has_its_own_header() -> None:
    assert len({codec(name).header for name in SCHEMA_FILES}) == len(SCHEMA_FILES)


@pytest.mark.parametrize(("name", "record"), RECORDS, ids=IDS)
def test_every_truncation_raises_serialization_error(name: str, record: dict[str, Any]) -> None:
    data = codec(name).encode(record)

    for length in range(len(data)):
        with pytest.raises(SerializationError):
            codec(name).decode(data[:length])


def _telemetry_bytes() -> bytes:
    return codec("TelemetryReading").encode(RECORDS[0][1])


GARBAGE = {
    "empty": b"",
    "plain text": b"hello world",
    "magic only": MAGIC,
    "magic and a wrong fingerprint": MAGIC + b"\x00" * 8 + b"\x02a",
    "header and 0xff bytes": codec("TelemetryReading").header + b"\xff" * 20,
    "header and an endless varint": codec("TelemetryReading").header + b"\x80" * 12,
    "header and a negative length": codec("TelemetryReading").header + b"\x01\x02",
    "header and every byte value": codec("TelemetryReading").header + bytes(range(256)),
    "another schema's record": codec("ModelUpdate").encode(RECORDS[-1][1]),
}


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_raises_serialization_error(data: bytes) -> None:
    with pytest.raises(SerializationError):
        codec("TelemetryReading").decode(data)


@pytest.mark.parametrize("extra", [b"\x00", b"junk", _telemetry_bytes()[HEADER_LEN:]])
def test_trailing_bytes_after_a_whole_body_raise_serialization_error(extra: bytes) -> None:
    with pytest.raises(SerializationError, match="trailing bytes"):
        codec("TelemetryReading").decode(_telemetry_bytes() + extra)


@pytest.mark.parametrize("data", list(GARBAGE.values())[:4], ids=list(GARBAGE)[:4])
def test_decode_any_rejects_unknown_headers(data: bytes) -> None:
    with pytest.raises(SerializationError):
        decode_any(data)


GOOD_JSON = {
    "event_id": "e-1",
    "asset_id": "cnc-001",
    "asset_type": "cnc",
    "timestamp": TS,
    "sensors": {"temperature": 65.0, "vibration": 2},
}
BAD_JSON = {
    "timestamp as text": {**GOOD_JSON, "timestamp": "2024-01-01T00:00:00Z"},
    "timestamp as float": {**GOOD_JSON, "timestamp": 1.5},
    "timestamp as bool": {**GOOD_JSON, "timestamp": True},
    "timestamp beyond long": {**GOOD_JSON, "timestamp": 2**63},
    "sensor value as text": {**GOOD_JSON, "sensors": {"temperature": "hot"}},
    "sensor value as bool": {**GOOD_JSON, "sensors": {"temperature": True}},
    "sensor value as null": {**GOOD_JSON, "sensors": {"temperature": None}},
    "sensors as a list": {**GOOD_JSON, "sensors": [65.0]},
    "asset id as number": {**GOOD_JSON, "asset_id": 17},
    "event id missing": {k: v for k, v in GOOD_JSON.items() if k != "event_id"},
    "null asset type": {**GOOD_JSON, "asset_type": None},
}
NOT_AN_OBJECT = {
    "a list": b"[1, 2]",
    "a string": b'"reading"',
    "not JSON": b"{event_id: 1}",
    "truncated JSON": json.dumps(GOOD_JSON).encode()[:-3],
    "not UTF-8": b'{"event_id": "\xff"}',
    "nested deeper than the recursion limit": b'{"event_id": ' + b"[" * 60_000,
    "an integer too long to convert": b'{"timestamp": ' + b"1" * 5_000 + b"}",
}
NOT_UTF8_TEXT = {
    # JSON's \u escapes (and json.loads' surrogatepass decoding of bytes) yield lone surrogates,
    # which no Avro string may hold and which crash the first .encode() downstream.
    "event id": (json.dumps({**GOOD_JSON, "event_id": "\ud800"}).encode(), "$.event_id"),
    "asset id": (json.dumps({**GOOD_JSON, "asset_id": "a\udc00"}).encode(), "$.asset_id"),
    "asset type": (json.dumps({**GOOD_JSON, "asset_type": "\udfff"}).encode(), "$.asset_type"),
    "sensor name": (
        json.dumps({**GOOD_JSON, "sensors": {"\ud83d": 1.0}}).encode(),
        "$.sensors (the key '\\ud83d')",
    ),
    "raw surrogate bytes": (
        json.dumps(GOOD_JSON).encode().replace(b'"e-1"', b'"e-\xed\xa0\x80"'),
        "$.event_id",
    ),
    # json.loads takes UTF-16 and UTF-32 too (told apart by their NUL bytes).
    "escaped, in UTF-16": (
        json.dumps({**GOOD_JSON, "event_id": "\ud800"}).encode("utf-16-le"),
        "$.event_id",
    ),
    "raw, in UTF-16": (
        json.dumps({**GOOD_JSON, "event_id": "\ud800"}, ensure_ascii=False).encode(
            "utf-16-le", "surrogatepass"
        ),
        "$.event_id",
    ),
    "escaped, in UTF-32": (
        json.dumps({**GOOD_JSON, "asset_id": "\udc00"}).encode("utf-32-le"),
        "$.asset_id",
    ),
}


def test_decode_json_accepts_a_matching_object() -> None:
    data = json.dumps(GOOD_JSON).encode()

    assert codec("TelemetryReading").decode_json(data) == GOOD_JSON


@pytest.mark.parametrize("record", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_decode_json_rejects_wrong_types(record: dict[str, Any]) -> None:
    with pytest.raises(SerializationError, match="do not match the schema"):
        codec("TelemetryReading").decode_json(json.dumps(record).encode())


@pytest.mark.parametrize("data", NOT_AN_OBJECT.values(), ids=NOT_AN_OBJECT.keys())
def test_decode_json_rejects_what_is_not_a_json_object(data: bytes) -> None:
    with pytest.raises(SerializationError):
        codec("TelemetryReading").decode_json(data)


@pytest.mark.parametrize(("data", "where"), NOT_UTF8_TEXT.values(), ids=NOT_UTF8_TEXT.keys())
def test_decode_json_rejects_strings_that_are_not_utf8_text(data: bytes, where: str) -> None:
    with pytest.raises(SerializationError) as caught:
        codec("TelemetryReading").decode_json(data)

    assert f"string at {where} is not UTF-8 text" in str(caught.value)
    str(caught.value).encode()  # the message itself can go into a dead letter


@pytest.mark.parametrize("text", ['a\\"b', "caf\u00e9", "\U0001f527", "back\\slash"])
def test_decode_json_keeps_escapes_and_non_ascii_that_are_text(text: str) -> None:
    record = {**GOOD_JSON, "event_id": text}

    for data in (json.dumps(record).encode(), json.dumps(record, ensure_ascii=False).encode()):
        assert codec("TelemetryReading").decode_json(data) == record


def test_decode_json_keeps_non_ascii_text() -> None:
    record = {**GOOD_JSON, "asset_id": "presse-\u00e9t\u00e9-\U0001f527"}

    assert codec("TelemetryReading").decode_json(json.dumps(record).encode()) == record


BAD_ENCODE = {
    "missing field": {k: v for k, v in RECORDS[0][1].items() if k != "asset_type"},
    "extra field": {**RECORDS[0][1], "site": "plant-4"},
    "timestamp as text": {**RECORDS[0][1], "timestamp": "now"},
    "sensor as text": {**RECORDS[0][1], "sensors": {"temperature": "hot"}},
}


@pytest.mark.parametrize("record", BAD_ENCODE.values(), ids=BAD_ENCODE.keys())
def test_encode_rejects_records_off_the_schema(record: dict[str, Any]) -> None:
    with pytest.raises(SerializationError):
        codec("TelemetryReading").encode(record)


@pytest.mark.parametrize(("name", "filename"), SCHEMA_FILES.items())
def test_avsc_files_parse_with_fastavro(name: str, filename: str) -> None:
    with resources.as_file(resources.files("assetwatch.schemas") / filename) as path:
        loaded = fastavro.schema.load_schema(str(path))
        parsed = fastavro.schema.parse_schema(json.loads(path.read_text()))

    assert loaded["name"] == parsed["name"] == f"io.assetwatch.{name}"


def test_to_json_safe_makes_a_dead_letter_printable() -> None:
    record = {**RECORDS[3][1], "nested": {"x": float("nan"), "raw": b"\xff"}}

    safe = to_json_safe(record)

    assert safe["original_value"] == b"\xc3\x01\x00\xff garbage".decode("latin-1")
    assert safe["nested"] == {"x": "nan", "raw": "\xff"}
    json.dumps(safe, allow_nan=False)

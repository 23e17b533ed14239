"""The hand-written TelemetryReading reader returns fastavro's records.

What it cannot read is a SerializationError, never another exception.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assetwatch.errors import SerializationError
from assetwatch.schemas.codecs import HEADER_LEN, codec
from assetwatch.schemas.telemetry_reader import (
    _decode_any,
    _decode_common,
    _layouts,
    check_schema,
    decode_reading,
)

TELEMETRY = codec("TelemetryReading")
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)  # no lone surrogates
records = st.fixed_dictionaries({
    "event_id": text, "asset_id": text, "asset_type": text,
    "timestamp": st.integers(-(2**63), 2**63 - 1),
    "sensors": st.dictionaries(text, st.floats(allow_nan=False), max_size=12),
})
SETTINGS = settings(max_examples=400, derandomize=True, database=None, deadline=None)


@SETTINGS
@given(records)
def test_the_same_record_as_fastavro(record: dict[str, Any]) -> None:
    data = TELEMETRY.encode(record)
    assert decode_reading(data, HEADER_LEN) == TELEMETRY.decode(data) == record


def test_map_blocks_with_byte_sizes_are_read_too() -> None:
    """Avro lets a writer give a block's size (a negative count): Java writers may."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, {"type": "string"}, "e")
    for text_value in ("a", "cnc"):
        fastavro.schemaless_writer(body, {"type": "string"}, text_value)
    fastavro.schemaless_writer(body, {"type": "long"}, 5)
    entry = io.BytesIO()
    fastavro.schemaless_writer(entry, {"type": "string"}, "power")
    fastavro.schemaless_writer(entry, {"type": "double"}, 2.5)
    fastavro.schemaless_writer(body, {"type": "long"}, -1)  # one entry, then its byte size
    fastavro.schemaless_writer(body, {"type": "long"}, len(entry.getvalue()))
    body.write(entry.getvalue() + b"\x00")
    data = TELEMETRY.header + body.getvalue()
    expected = {"event_id": "e", "asset_id": "a", "asset_type": "cnc", "timestamp": 5,
                "sensors": {"power": 2.5}}
    assert decode_reading(data, HEADER_LEN) == TELEMETRY.decode(data) == expected


@SETTINGS
@given(records, st.data())
def test_a_cut_or_extended_body_is_a_serialization_error(record: dict[str, Any],
                                                         data: st.DataObject) -> None:
    encoded = TELEMETRY.encode(record)
    cut = data.draw(st.integers(HEADER_LEN, len(encoded) - 1))
    with pytest.raises(SerializationError):
        decode_reading(encoded[:cut], HEADER_LEN)
    with pytest.raises(SerializationError, match="trailing"):
        decode_reading(encoded + b"\x00", HEADER_LEN)


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_decode_as_fastavro_does_or_raise_a_serialization_error(body: bytes) -> None:
    data = TELEMETRY.header + body
    try:
        ours: dict[str, Any] | None = decode_reading(data, HEADER_LEN)
    except SerializationError:
        ours = None
    try:
        theirs: dict[str, Any] | None = TELEMETRY.decode(data)
    except SerializationError:
        theirs = None
    if ours is not None:
        assert ours == theirs


@pytest.mark.parametrize("body", [
    b"\xff" * 11,  # a varint that never ends
    b"\x7f",  # a string of -64 bytes
    b"\x02\xff",  # invalid UTF-8
])
def test_corrupt_bodies_are_serialization_errors(body: bytes) -> None:
    with pytest.raises(SerializationError):
        decode_reading(TELEMETRY.header + body, HEADER_LEN)


def test_the_schema_it_reads_is_the_one_in_schemas() -> None:
    check_schema(TELEMETRY.header)
    with pytest.raises(SerializationError, match=r"telemetry_reading\.avsc changed"):
        check_schema(codec("DeadLetter").header)


@SETTINGS
@given(records, st.data())
def test_the_one_pass_reader_agrees_with_the_general_one_or_steps_aside(
        record: dict[str, Any], data: st.DataObject) -> None:
    """A changed, cut or grown record: the one-pass reader agrees with the general one or passes.

    Passing leaves the message to the general reader, so errors are worded by one reader only.
    """
    encoded = bytearray(TELEMETRY.encode(record))
    where = data.draw(st.integers(HEADER_LEN, len(encoded) - 1))
    encoded[where] = data.draw(st.integers(0, 255))
    for body in (bytes(encoded), bytes(encoded[: where]), bytes(encoded) + b"\x00"):
        try:
            general: dict[str, Any] | None = _decode_any(body, HEADER_LEN)
        except SerializationError:
            general = None
        common = _decode_common(body, HEADER_LEN)
        assert common is None or _bits(common) == _bits(general)


@SETTINGS
@given(st.binary(max_size=200))
def test_the_one_pass_reader_never_reads_what_the_general_one_refuses(body: bytes) -> None:
    data = TELEMETRY.header + body
    common = _decode_common(data, HEADER_LEN)
    if common is not None:
        assert _bits(common) == _bits(_decode_any(data, HEADER_LEN))


def _bits(record: dict[str, Any] | None) -> bytes:
    """The record to the bit (a nan equals itself, -0.0 is not 0.0), keys in order."""
    return pickle.dumps(record)


def test_a_producer_s_reading_takes_the_one_pass_reader() -> None:
    """The common shape is what the simulator and the benchmarks send: not the general path."""
    record = {"event_id": "cnc-007-1796169885911", "asset_id": "cnc-007", "asset_type": "cnc",
              "timestamp": 1_796_169_885_911, "sensors": {"temperature": 61.2, "power": 11.1}}
    data = TELEMETRY.encode(record)
    assert _decode_common(data, HEADER_LEN) == record
    long_id = {**record, "event_id": "e" * 64}  # a two-byte length: the general reader
    assert _decode_common(TELEMETRY.encode(long_id), HEADER_LEN) is None
    assert decode_reading(TELEMETRY.encode(long_id), HEADER_LEN) == long_id


def test_a_known_map_layout_reads_values_and_checks_every_other_byte() -> None:
    """A producer's second reading takes its learnt layout; a changed name still reads right."""
    record = {"event_id": "e-1", "asset_id": "cnc-007", "asset_type": "cnc", "timestamp": 5,
              "sensors": {"temperature": 61.2, "vibration": 2.5, "power": -0.0}}
    data = TELEMETRY.encode(record)
    _decode_common(data, HEADER_LEN)  # learns the layout
    assert ("cnc", len(data) - HEADER_LEN - 17) in _layouts  # 3 strings of 16 B, a 1 B time
    again = {**record, "sensors": {"temperature": 1e300, "vibration": float("nan"),
                                   "power": 3.0}}
    renamed = {**record, "sensors": {"temperature": 61.2, "vibrator": 2.5, "power": 1.0}}
    reordered = {**record, "sensors": {"vibration": 2.5, "temperature": 61.2, "power": 1.0}}
    for variant in (again, renamed, reordered):
        data = TELEMETRY.encode(variant)
        assert _bits(_decode_common(data, HEADER_LEN)) == _bits(_decode_any(data, HEADER_LEN))
        assert list(_decode_any(data, HEADER_LEN)["sensors"]) == list(variant["sensors"])

"""Avro codecs for the contracts in ``schemas/``, parsed once.

Wire format: Avro single-object encoding (``C3 01`` + the schema's 8-byte CRC-64-AVRO
fingerprint + the binary body), so a reader can tell a record's schema from its bytes.
Telemetry may also arrive as a JSON object of the same fields, for producers without Avro.
Outputs may also be Confluent-framed or JSON (:mod:`assetwatch.schemas.wire`);
:func:`decode_any` reads all three by their first byte.
"""

from __future__ import annotations

import copy
import io
import json
import math
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form
from fastavro.validation import validate

from assetwatch.errors import SerializationError

MAGIC = b"\xc3\x01"
HEADER_LEN = 10
CONFLUENT_MAGIC = 0
"""First byte of the Confluent wire format: then a 4-byte big-endian schema id, the body."""
CONFLUENT_HEADER_LEN = 5
SCHEMA_FILES = {
    "TelemetryReading": "telemetry_reading.avsc",
    "Prediction": "prediction.avsc",
    "DeadLetter": "dead_letter.avsc",
    "DriftAlert": "drift_alert.avsc",
    "ModelUpdate": "model_update.avsc",
    "OperatorAlert": "operator_alert.avsc",
    "MaintenanceLabel": "maintenance_label.avsc",
    "AssetAlert": "asset_alert.avsc",
    "BaselineReset": "baseline_reset.avsc",
}
PREVIOUS_SCHEMA_FILES = {
    "DeadLetter": ("dead_letter.v1.avsc",),
}
"""Earlier versions a codec still reads (resolved to the current one, new fields defaulted):
records already in a topic outlive an upgrade."""


def _strip_logical_types(node: Any) -> Any:
    """The same schema without logicalType: timestamps read as epoch-millis ints, not datetimes."""
    if isinstance(node, dict):
        return {k: _strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical_types(v) for v in node]
    return node


class AvroCodec:
    """Encode and decode one record type; timestamps are epoch milliseconds both ways."""

    def __init__(self, schema: dict[str, Any], previous: tuple[dict[str, Any], ...] = ()) -> None:
        self.name: str = schema["name"]
        self.schema = parse_schema(copy.deepcopy(schema))
        self._raw = parse_schema(_strip_logical_types(schema))
        self.header = _header(self.schema)
        self._writers = {self.header: self._raw}
        """Writer schema by header: this version and the earlier ones it reads."""
        for old in previous:
            self._writers[_header(parse_schema(copy.deepcopy(old)))] = parse_schema(
                _strip_logical_types(old))

    @property
    def versions(self) -> frozenset[bytes]:
        """Single-object headers of this schema and of the earlier versions it reads."""
        return frozenset(self._writers)

    def reads(self, data: bytes) -> bool:
        """True when ``data`` carries the header of this schema or of an earlier version."""
        return data[:HEADER_LEN] in self._writers

    def encode(self, record: dict[str, Any]) -> bytes:
        """Header plus Avro body; :class:`SerializationError` if the record breaks the schema."""
        buffer = io.BytesIO()
        buffer.write(self.header)
        try:
            fastavro.schemaless_writer(buffer, self._raw, record, strict=True)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SerializationError(f"{self.name}: {exc}") from exc
        return buffer.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        """A record written with this schema or a known older one, read as the current one."""
        writer = self._writers.get(data[:HEADER_LEN])
        if writer is None:
            raise SerializationError(f"not a {self.name} record (unknown header {data[:10]!r})")
        body = io.BytesIO(data[HEADER_LEN:])
        try:
            reader = None if writer is self._raw else self._raw
            record = fastavro.schemaless_reader(body, writer, reader)
        except (EOFError, ValueError, TypeError, UnicodeDecodeError, IndexError) as exc:
            raise SerializationError(f"{self.name}: truncated or corrupt body: {exc}") from exc
        if not isinstance(record, dict):  # every contract is a record; this narrows the type
            raise SerializationError(f"{self.name}: body is not a record")
        if body.tell() != len(data) - HEADER_LEN:
            # A body followed by more bytes is not one record: a concatenation or a framing bug.
            raise SerializationError(
                f"{self.name}: {len(data) - HEADER_LEN - body.tell()} trailing bytes after the body"
            )
        return record

    def decode_json(self, data: bytes) -> dict[str, Any]:
        """A JSON object with this record's fields, checked against the schema."""
        try:
            record = json.loads(data)
        except (ValueError, RecursionError) as exc:
            # ValueError covers bad JSON, bad UTF-8 and integers too long to convert;
            # RecursionError, arrays or objects nested deeper than the interpreter's stack.
            raise SerializationError(f"{self.name}: not JSON: {exc}") from exc
        if not isinstance(record, dict):
            raise SerializationError(f"{self.name}: JSON value is not an object")
        try:
            validate(record, self._raw, raise_errors=True)
        except fastavro.validation.ValidationError as exc:
            raise SerializationError(f"{self.name}: fields do not match the schema: {exc}") from exc
        if _may_hold_surrogates(data):
            # After validation, so the walk is only as deep as the schema.
            where = _not_utf8(record)
            if where is not None:
                raise SerializationError(
                    f"{self.name}: string at ${where} is not UTF-8 text (it holds a lone surrogate)"
                )
        return record


def _header(parsed: Any) -> bytes:
    return MAGIC + bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


def _may_hold_surrogates(data: bytes) -> bool:
    r"""False when json.loads(data) cannot contain a lone surrogate, checked in C at byte speed.

    json.loads decodes UTF-8, -16 or -32 with 'surrogatepass', so a surrogate needs a non-ASCII
    byte (raw, in a BOM or in a code unit >= 0xD800) or a \u escape, whose backslash is a
    0x5C byte in all three encodings.
    """
    return not data.isascii() or b"\\" in data


def _is_utf8(text: str) -> bool:
    r"""False for a str holding lone surrogates, which JSON's \uD800 escapes can produce."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _not_utf8(node: Any) -> str | None:
    """Where the first string (value or key) of decoded JSON cannot be UTF-8 encoded, or None.

    The path is built only on the way back from a failure, so a clean record costs no strings.
    """
    if isinstance(node, str):
        return None if _is_utf8(node) else ""
    if isinstance(node, dict):
        for key, value in node.items():
            if not _is_utf8(key):
                return f" (the key {key!r})"
            where = _not_utf8(value)
            if where is not None:
                return f".{key}{where}"
    elif isinstance(node, list):
        for i, value in enumerate(node):
            where = _not_utf8(value)
            if where is not None:
                return f"[{i}]{where}"
    return None


@cache
def codec(name: str) -> AvroCodec:
    """The codec of a contract by record name (parsed on first use, then shared)."""
    folder = resources.files("assetwatch.schemas")
    previous = tuple(json.loads((folder / file).read_text())
                     for file in PREVIOUS_SCHEMA_FILES.get(name, ()))
    return AvroCodec(json.loads((folder / SCHEMA_FILES[name]).read_text()), previous)


def to_json_safe(record: dict[str, Any]) -> dict[str, Any]:
    """A decoded record made printable: bytes as latin-1 text, non-finite floats as strings."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, bytes):
            out[key] = value.decode("latin-1")
        elif isinstance(value, float) and not math.isfinite(value):
            out[key] = str(value)
        elif isinstance(value, dict):
            out[key] = to_json_safe(value)
        else:
            out[key] = value
    return out


SchemaIdResolver = Callable[[int], bytes | None]
"""The single-object header of a Confluent schema id's schema (None: not an assetwatch one)."""


def decode_any(data: bytes, resolve: SchemaIdResolver | None = None
               ) -> tuple[str, dict[str, Any]]:
    """Record name and fields of any assetwatch record, told apart by the first bytes.

    Single-object Avro (by fingerprint), Confluent-framed Avro (by schema id, through
    ``resolve``) or JSON (by field names).
    """
    if data[:1] == bytes([CONFLUENT_MAGIC]) and len(data) >= CONFLUENT_HEADER_LEN:
        schema_id = int.from_bytes(data[1:CONFLUENT_HEADER_LEN], "big")
        header = resolve(schema_id) if resolve is not None else None
        if header is None:
            raise SerializationError(f"Confluent framing with schema id {schema_id}, no known "
                                     "assetwatch schema (is the schema registry configured?)")
        data = header + data[CONFLUENT_HEADER_LEN:]
    elif data.lstrip()[:1] == b"{":
        return from_json(data)
    for name in SCHEMA_FILES:
        candidate = codec(name)
        if candidate.reads(data):
            return name, candidate.decode(data)
    raise SerializationError(f"no assetwatch schema has header {data[:HEADER_LEN]!r}")


@cache
def _fields() -> dict[frozenset[str], tuple[str, frozenset[str]]]:
    """Record name and bytes fields by field-name set (every contract's set is distinct)."""
    out = {}
    for name in SCHEMA_FILES:
        schema: Any = codec(name).schema
        fields: list[dict[str, Any]] = schema["fields"]
        byte_fields = frozenset(f["name"] for f in fields
                                if "bytes" in (f["type"] if isinstance(f["type"], list)
                                               else [f["type"]]))
        out[frozenset(f["name"] for f in fields)] = (name, byte_fields)
    return out


def from_json(data: bytes) -> tuple[str, dict[str, Any]]:
    """Record name and fields of a JSON output (bytes fields back to bytes)."""
    try:
        record = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise SerializationError(f"not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise SerializationError("JSON value is not an object")
    match = _fields().get(frozenset(record))
    if match is None:
        raise SerializationError(f"no assetwatch schema has the fields {sorted(record)}")
    name, byte_fields = match
    for field in byte_fields:
        if isinstance(record[field], str):
            record[field] = record[field].encode("latin-1")
    return name, record

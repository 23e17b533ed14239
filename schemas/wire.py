"""How records go on an output topic: Avro single-object, Confluent framing, or JSON.

The project's encoders write single-object Avro (``C3 01`` + fingerprint + body). A topic
whose subject is in a Schema Registry gets the same body behind the Confluent header
(``0x00`` + the 4-byte big-endian schema id), so re-framing a record is one slice. JSON
(for humans and plain ``kcat``) uses the Avro field names, timestamps as epoch ms and bytes
fields as latin-1 text (each byte one code point, as Avro's own JSON encoding does); a
non-finite float is written as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``.
The schema ids are data here: :mod:`assetwatch.agents.kafka.registry` resolves them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from assetwatch.schemas.codecs import (
    CONFLUENT_HEADER_LEN,
    CONFLUENT_MAGIC,
    HEADER_LEN,
    MAGIC,
    codec,
)

Format = Literal["avro", "json"]
Framing = Literal["confluent", "single-object", "json", "unknown"]
Header = tuple[str, str | bytes | None]
"""A record header as confluent-kafka types it (values here are always bytes)."""


def confluent_header(schema_id: int) -> bytes:
    """The Confluent wire-format prefix: magic byte 0, then the 4-byte big-endian schema id."""
    return bytes([CONFLUENT_MAGIC]) + schema_id.to_bytes(4, "big")


def framing(value: bytes) -> Framing:
    r"""How ``value`` is framed, by its first bytes (as :func:`decode_any` tells them apart).

    >>> framing(confluent_header(7) + b"body"), framing(b"\xc3\x01" + bytes(8)), framing(b' {}')
    ('confluent', 'single-object', 'json')
    """
    if value[:1] == bytes([CONFLUENT_MAGIC]) and len(value) >= CONFLUENT_HEADER_LEN:
        return "confluent"
    if value[:2] == MAGIC:
        return "single-object"
    if value.lstrip()[:1] == b"{":
        return "json"
    return "unknown"


def content_type(name: str, fmt: Format) -> bytes:
    """``application/vnd.assetwatch.<record>+avro`` or ``+json`` (RFC 6839 suffixes)."""
    return f"application/vnd.assetwatch.{name.lower()}+{fmt}".encode()


@lru_cache(maxsize=256)
def model_headers(name: str, version: str) -> list[Header]:
    """A prediction's model name and version, so a consumer can route without decoding.

    Cached and shared: callers concatenate, never mutate.
    """
    return [("model_name", name.encode()), ("model_version", version.encode())]


@dataclass(frozen=True)
class TopicWire:
    """One output topic's framing and constant headers; built once, used per record."""

    name: str
    """Record name (the topic's one schema: TopicNameStrategy)."""
    fmt: Format = "avro"
    prefix: bytes | None = None
    """Confluent header of the subject's schema id; None: single-object as encoded."""

    headers: list[Header] = field(init=False, compare=False)
    """The headers every record of the topic carries (the content type)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", [("content-type", content_type(self.name, self.fmt))])

    def frame(self, value: bytes) -> bytes:
        """``value`` (single-object Avro, as the encoders write it) in this topic's format."""
        if self.fmt == "json":
            return to_json(codec(self.name).decode(value))
        if self.prefix is None:
            return value
        return self.prefix + value[HEADER_LEN:]


def _json_safe(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def to_json(record: Mapping[str, Any]) -> bytes:
    """One line of ASCII JSON (control and non-ASCII characters escaped)."""
    return json.dumps(_json_safe(dict(record)), separators=(",", ":")).encode()

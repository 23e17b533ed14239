"""Dead-letter records that always fit what the producer accepts.

A dead letter carries its input's bytes so it can be replayed once the cause is fixed, but a
reading may be larger than any record the output producer may send (librdkafka's
``message.max.bytes``); one that did not fit would fail its whole batch. So an oversized
original is cut to fit, keeping its size and SHA-256 so it can still be identified, and the
text fields a device controls are cut too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from assetwatch.schemas.codecs import codec

HEADROOM_BYTES = 4096
"""Below ``message.max.bytes``: room for librdkafka's record overhead and headers."""
TEXT_CHARS = 1024
"""Longest error, asset_id or event_id a dead letter carries."""
KEY_BYTES = 1024
"""Longest key a dead letter is published with (and carries as ``original_key``)."""
ERROR_HEADERS = ("__streams.errors.exception", "__streams.errors.message",
                 "__streams.errors.topic", "__streams.errors.partition", "__streams.errors.offset")
"""Kafka Streams' dead-letter headers (KIP-1034): a tool that reads its DLQs reads ours."""
HEADER_TEXT_CHARS = 256
"""Longest error a header carries (the record has it whole): headers fit the headroom."""


def error_headers(source: tuple[bytes | None, bytes | None, str, int, int], reason: str,
                  detail: str) -> list[tuple[str, str | bytes | None]]:
    """The reason (as the exception), the error and the input's place, as record headers."""
    _, _, topic, partition, offset = source
    values = (reason, _cut(detail, HEADER_TEXT_CHARS) or "", topic[:TEXT_CHARS], str(partition),
              str(offset))
    return [(name, value.encode("utf-8", "backslashreplace"))
            for name, value in zip(ERROR_HEADERS, values, strict=True)]


def _cut(text: str | None, chars: int = TEXT_CHARS) -> str | None:
    if text is None or len(text) <= chars:
        return text
    return f"{text[:chars]}…(+{len(text) - chars} chars)"


class DeadLetterWriter:
    """Encodes DeadLetter records no larger than ``max_message_bytes`` with their key."""

    def __init__(self, max_message_bytes: int, clock: Callable[[], float]) -> None:
        self._budget = max_message_bytes - HEADROOM_BYTES
        self._clock = clock
        self._codec = codec("DeadLetter")

    def build(
        self, source: tuple[bytes | None, bytes | None, str, int, int], reason: str,
        detail: str, event_id: str | None = None, asset_id: str | None = None,
    ) -> tuple[bytes | None, bytes]:
        """(key, value) of the dead letter of ``source`` (key, value, topic, partition, offset)."""
        key, value, topic, partition, offset = source
        if key is not None and len(key) > KEY_BYTES:
            detail = f"{detail} (key of {len(key)} bytes cut to {KEY_BYTES})"
            key = key[:KEY_BYTES]
        record: dict[str, Any] = {
            "reason": reason, "error": _cut(detail), "source_topic": topic,
            "source_partition": partition, "source_offset": offset, "original_key": key,
            "original_value": value, "event_id": _cut(event_id), "asset_id": _cut(asset_id),
            "failed_timestamp": int(self._clock() * 1000),
            "original_value_size": None, "original_value_sha256": None,
        }
        return key, self._fit(record, len(key or b""))

    def stripped(self, letter: bytes, why: str) -> bytes:
        """``letter`` without its original value (kept as size and digest).

        For a broker that refused it: its topic may accept less than the producer does.
        """
        record = self._codec.decode(letter)
        if record["original_value_size"] is not None:  # cut already: keep the whole's figures
            kept = len(record["original_value"] or b"")
            return self._codec.encode({**record, "original_value": b"", "error":
                                       f"{record['error']} [the {kept} bytes kept dropped: {why}]"})
        return self._truncated(record, record["original_value"] or b"", 0, why)

    def _fit(self, record: dict[str, Any], key_bytes: int) -> bytes:
        encoded = self._codec.encode(record)
        if len(encoded) + key_bytes <= self._budget:
            return encoded
        value: bytes = record["original_value"] or b""
        probe = self._truncated(record, value, 0, "it exceeds the dead-letter limit")
        room = self._budget - key_bytes - len(probe) - 32  # 32: the length prefix and count grow
        return self._truncated(record, value, max(room, 0), "it exceeds the dead-letter limit")

    def _truncated(self, record: dict[str, Any], value: bytes, keep: int, why: str) -> bytes:
        error = (f"{record['error']} [original value of {len(value)} bytes truncated to {keep}: "
                 f"{why}; original_value_size and original_value_sha256 describe it]")
        return self._codec.encode({
            **record, "error": error, "original_value": value[:keep],
            "original_value_size": len(value),
            "original_value_sha256": hashlib.sha256(value).hexdigest(),
        })

"""A direct Avro binary reader for the ``TelemetryReading`` contract, the hot path's input.

fastavro's ``schemaless_reader`` (with the ``BytesIO`` it reads from) costs ~10 µs a reading
on this machine, the largest single step of the scoring process after the window fold.
Every reading is decoded once, so this reads exactly that schema by hand: three strings, a
long and a map of doubles. A producer writes the same sensor names in the same order every
time, so the map's layout is learnt from one reading and the next are read with one
``struct`` call, every byte but the values checked against it. It returns what fastavro
returns (tested on generated records and on corrupted bytes), and :func:`check_schema`
refuses a changed ``telemetry_reading.avsc`` (its fingerprint is pinned), so the two cannot
silently drift apart. Records of an earlier writer schema still go through fastavro's schema
resolution (:class:`schemas.codecs.Codec`).
"""

from __future__ import annotations

import struct
from operator import itemgetter
from typing import Any

from assetwatch.errors import SerializationError

PINNED_FINGERPRINT = bytes.fromhex("556b393cec1a190c")
"""CRC-64-AVRO fingerprint of the TelemetryReading schema this reader decodes."""

_MAX_VARINT_BYTES = 10
"""A zigzag long takes at most 10 bytes; more is corrupt, not a bigger number."""
_double = struct.Struct("<d").unpack_from


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """The zigzag varint at ``pos`` and the position after it."""
    byte = data[pos]
    if byte < 0x80:
        return (byte >> 1) ^ -(byte & 1), pos + 1
    n, shift, end = byte & 0x7F, 7, pos + _MAX_VARINT_BYTES
    pos += 1
    while True:
        if pos >= end:
            raise SerializationError("TelemetryReading: a varint longer than 10 bytes")
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7


def _string(data: bytes, pos: int) -> tuple[str, int]:
    """The length-prefixed UTF-8 string at ``pos`` and the position after it."""
    size, pos = _long(data, pos)
    end = pos + size
    if size < 0 or end > len(data):
        raise SerializationError(f"TelemetryReading: a string of {size} bytes overruns the body")
    return data[pos:end].decode(), end


def decode_reading(data: bytes, start: int) -> dict[str, Any]:
    """The TelemetryReading whose Avro body is ``data[start:]`` (nothing may follow it)."""
    return _decode_common(data, start) or _decode_any(data, start)


def _decode_common(data: bytes, start: int) -> dict[str, Any] | None:
    """The reading as every producer writes it, in one pass; None for anything else.

    That is: strings and the map's count in one varint byte (under 64), one map block. A
    reading of any other shape, or a corrupt one, is left to :func:`_decode_any`, which
    decodes it (or words its error) on its own, so this may stop at the first doubt.
    """
    pos, strings = start, []
    try:
        for _ in range(3):
            size = data[pos]
            if size & 0x81:  # a longer varint or a negative size: not the common shape
                return None
            end = pos + 1 + (size >> 1)
            strings.append(data[pos + 1 : end].decode())
            pos = end  # an overrun cut the slice short: the next read fails, or the end check
        timestamp, pos = _long(data, pos)
        layout = _layouts.get((strings[2], len(data) - pos))
        if layout is not None and (sensors := layout.read(data, pos)) is not None:
            return {"event_id": strings[0], "asset_id": strings[1], "asset_type": strings[2],
                    "timestamp": timestamp, "sensors": sensors}
        map_start = pos
        count = data[pos]
        if count & 0x81:
            return None
        pos += 1
        sensors = {}
        if count:
            for _ in range(count >> 1):
                size = data[pos]
                if size & 0x81:
                    return None
                end = pos + 1 + (size >> 1)
                (sensors[data[pos + 1 : end].decode()],) = _double(data, end)
                pos = end + 8
            if data[pos]:  # a second block
                return None
            pos += 1
    except (IndexError, UnicodeDecodeError, struct.error, SerializationError):
        return None
    if pos != len(data):
        return None
    if count and len(sensors) == count >> 1:
        _learn((strings[2], len(data) - map_start), tuple(sensors))
    return {"event_id": strings[0], "asset_id": strings[1], "asset_type": strings[2],
            "timestamp": timestamp, "sensors": sensors}


class _MapLayout:
    """The sensor map of a producer that writes the same names in the same order each time.

    One ``struct`` call reads the whole map (its count, each name's length and bytes, each
    value, the closing 0); the map is this layout's only if every byte but the values is as
    expected, else it is read entry by entry.
    """

    __slots__ = ("_expected", "_framing", "_names", "_unpack", "_values")

    def __init__(self, names: tuple[str, ...]) -> None:
        encoded = [name.encode() for name in names]
        self._names = names
        self._unpack = struct.Struct(
            "<B" + "".join(f"B{len(e)}sd" for e in encoded) + "B").unpack_from
        framing = [0] + [i for j in range(len(names)) for i in (1 + 3 * j, 2 + 3 * j)]
        self._framing = itemgetter(*framing, 1 + 3 * len(names))
        self._values = itemgetter(*range(3, 3 * len(names) + 1, 3))
        self._expected = (len(names) << 1, *(x for e in encoded for x in (len(e) << 1, e)), 0)

    def read(self, data: bytes, pos: int) -> dict[str, float] | None:
        """The map at ``data[pos:]`` (which must be exactly its size), or None if not this one."""
        fields = self._unpack(data, pos)
        if self._framing(fields) != self._expected:
            return None
        values = self._values(fields)
        # zip without strict=True: the keyword costs a slow call, and the lengths are the layout's
        return dict(zip(self._names, values if len(self._names) > 1 else (values,)))  # noqa: B905


MAX_LAYOUTS = 64
"""Map layouts kept, per asset type and map size; the oldest learnt goes first."""
_layouts: dict[tuple[str, int], _MapLayout] = {}


def _learn(key: tuple[str, int], names: tuple[str, ...]) -> None:
    """Keep the layout of a map just read entry by entry.

    A flood of strangers' readings pushes producers' layouts out, to be learnt again from
    their next reading.
    """
    if len(_layouts) >= MAX_LAYOUTS:
        del _layouts[next(iter(_layouts))]
    _layouts[key] = _MapLayout(names)


def _decode_any(data: bytes, start: int) -> dict[str, Any]:
    """Any TelemetryReading body (map blocks of any size), or what is wrong with it."""
    try:
        event_id, pos = _string(data, start)
        asset_id, pos = _string(data, pos)
        asset_type, pos = _string(data, pos)
        timestamp, pos = _long(data, pos)
        sensors: dict[str, float] = {}
        while True:
            count, pos = _long(data, pos)
            if count == 0:
                break
            if count < 0:  # a block that also gives its size in bytes
                count = -count
                _, pos = _long(data, pos)
            for _ in range(count):  # each entry takes >= 9 bytes: a huge count soon runs out
                name, pos = _string(data, pos)
                (sensors[name],) = _double(data, pos)
                pos += 8
    except (IndexError, UnicodeDecodeError, struct.error) as exc:
        raise SerializationError(f"TelemetryReading: truncated or corrupt body: {exc}") from exc
    if pos != len(data):
        raise SerializationError(
            f"TelemetryReading: {len(data) - pos} trailing bytes after the body")
    return {"event_id": event_id, "asset_id": asset_id, "asset_type": asset_type,
            "timestamp": timestamp, "sensors": sensors}


def check_schema(header: bytes) -> None:
    """Raise unless ``header`` carries the fingerprint of the schema this reader decodes."""
    if header[2:] != PINNED_FINGERPRINT:
        raise SerializationError(
            "schemas/telemetry_reading.avsc changed: update schemas/telemetry_reader.py to "
            f"match it and pin the new fingerprint {header[2:].hex()}")

"""A direct Avro binary writer for the ``Prediction`` contract, the hot path's record type.

fastavro's ``schemaless_writer`` costs ~20 µs a Prediction on this machine: ~3.5 µs of call
overhead and ~3 µs for each nested ``FeatureContribution``. Every reading is encoded once as
a Prediction, in the scoring process that bounds a worker's throughput, so this writer
encodes exactly that schema by hand. It produces the same bytes as fastavro (tested on
generated records), and :func:`check_schema` refuses a changed ``prediction.avsc`` (its
fingerprint is pinned), so the two cannot silently drift apart. Everything else, decoding
included, stays with fastavro.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from assetwatch.errors import SerializationError
from assetwatch.schemas.prediction_rows import PredictionRows

PINNED_FINGERPRINT = bytes.fromhex("669339277eacde10")
"""CRC-64-AVRO fingerprint of the Prediction schema this writer encodes."""

_pack_double = struct.Struct("<d").pack
_SMALL = [bytes([n << 1]) for n in range(64)]
"""Zigzag varints of 0..63: one byte each (lengths and counts are mostly these)."""


def _long(n: int) -> bytes:
    if 0 <= n < 64:
        return _SMALL[n]
    if not -(2**63) <= n < 2**63:
        raise SerializationError(f"Prediction: {n} does not fit an Avro long")
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SIX_BYTES = (1 << 34, 1 << 41)
"""Longs whose zigzag varint is exactly 6 bytes: epoch milliseconds from mid-1970 to 2039."""
_SIX_MASKS = [np.uint64(0x7F << (8 * k)) for k in range(6)]


def _times(ms: list[int]) -> list[bytes]:
    """The zigzag varint of each of ``ms``, as :func:`_long` writes it, for the whole column.

    Event times of this century are all 6 bytes long: their 7-bit groups are spread with
    numpy over the batch at once (the per-row loop cost more than anything else a row does).
    """
    times = np.array(ms)  # int64 only if every one is an int that fits (no conversions)
    if (times.dtype != np.int64 or not times.size or times.min() < _SIX_BYTES[0]
            or times.max() >= _SIX_BYTES[1]):
        return [_long(n) for n in ms]  # each in turn: one off the schema says why
    zigzag = times.astype(np.uint64) << np.uint64(1)
    spread = zigzag & _SIX_MASKS[0]
    for k in range(1, 6):
        spread |= (zigzag << np.uint64(k)) & _SIX_MASKS[k]
    spread |= np.uint64(0x80_80_80_80_80)  # a continuation bit on every byte but the last
    packed = spread.astype("<u8").tobytes()
    return [packed[i : i + 6] for i in range(0, 8 * len(ms), 8)]


def _string(text: str) -> bytes:
    data = text.encode()
    return _long(len(data)) + data


_name = lru_cache(maxsize=8192)(_string)
"""Asset ids, types, model names and versions, feature names: a few thousand, repeated."""
_stamp = lru_cache(maxsize=64)(_long)
"""Processing times: one per batch."""


def encode_prediction(header: bytes, record: Mapping[str, Any]) -> bytes:
    """``header`` (single-object encoding) and the Avro body of a Prediction ``record``."""
    try:
        parts = [
            header, _name(record["asset_id"]), _name(record["asset_type"]),
            _string(record["event_id"]), _long(record["event_timestamp"]),
            _stamp(record["processed_timestamp"]), _pack_double(record["anomaly_score"]),
            b"\x01" if record["is_anomaly"] else b"\x00",
            _pack_double(record["failure_probability"]), _name(record["model_name"]),
            _name(record["model_version"]),
        ]
        top = record["top_features"]
        if top:
            parts.append(_long(len(top)))
            for feature in top:
                parts += (_name(feature["name"]), _pack_double(feature["value"]),
                          _pack_double(feature["z_score"]))
        parts += (b"\x00", b"\x01" if record.get("calibrating") else b"\x00",
                  _pack_double(record.get("baseline_score", 0.0)))
    except (KeyError, TypeError, AttributeError, struct.error, UnicodeEncodeError) as exc:
        raise SerializationError(f"Prediction: {exc!r}") from exc
    return b"".join(parts)


_scores = struct.Struct("<d?d").pack
"""anomaly_score, is_anomaly, failure_probability: Avro doubles and a boolean, back to back."""
_contribution = struct.Struct("<dd").pack
_tail = struct.Struct("<x?d").pack
"""The top features' closing 0 count, calibrating and baseline_score."""


def encode_predictions(header: bytes, rows: PredictionRows) -> list[bytes]:
    """``header`` and the Avro body of each Prediction of ``rows``, from the columns.

    The bytes :func:`encode_prediction` gives each row's record; the fields the batch's rows
    share are encoded once.
    """
    ids = rows.ids
    try:
        shared = _name(ids.asset_type)
        stamp = _long(ids.processed_ms)
        model = _name(rows.model_name) + _name(rows.model_version)
        names = [_name(name) for name in rows.feature_names]
        out = []
        for asset, event, ms, anomaly, flagged, probability, top, values, zs, calib, base in zip(
                ids.asset_ids, ids.event_ids, _times(ids.event_ms), rows.anomaly_score,
                rows.is_anomaly, rows.failure_probability, rows.top_index, rows.top_value,
                rows.top_z, ids.calibrating, ids.baseline_score, strict=True):
            parts = [header, _name(asset), shared, _string(event), ms, stamp,
                     _scores(anomaly, flagged, probability), model]
            if top:
                parts.append(_long(len(top)))
                for j, value, z in zip(top, values, zs, strict=True):
                    parts += (names[j], _contribution(value, z))
            parts.append(_tail(calib, base))
            out.append(b"".join(parts))
    except (TypeError, IndexError, struct.error, UnicodeEncodeError) as exc:
        raise SerializationError(f"Prediction: {exc!r}") from exc
    return out


def check_schema(header: bytes) -> None:
    """Raise unless ``header`` carries the fingerprint of the schema this writer encodes."""
    if header[2:] != PINNED_FINGERPRINT:
        raise SerializationError(
            "schemas/prediction.avsc changed: update schemas/prediction_writer.py to match it "
            f"and pin the new fingerprint {header[2:].hex()}")

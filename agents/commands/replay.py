"""Readings files (CSV, SKAB's format, Parquet) as TelemetryReading records, streamed.

CSV may be separated by ``,``, ``;`` or tab. A file is read in chunks of
:data:`CHUNK_ROWS` rows (pandas' C engine with the separator sniffed from the header;
Parquet by record batch), so a replay's memory does not grow with the file. Each chunk
goes through :mod:`assetwatch.features.readings`, the same reader training uses.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from assetwatch.errors import ConfigError
from assetwatch.features.profiles import Profile
from assetwatch.features.readings import (
    PARQUET_SUFFIXES,
    read_readings_file,
    sensor_readings,
    sniff_separator,
)

CHUNK_ROWS = 50_000
"""Rows read (and turned into records) at a time."""


def read_replay_file(path: Path, profile: Profile, asset_id: str) -> pd.DataFrame:
    """Every row of one file at once: timestamp (epoch ms) and one column per profile sensor."""
    try:
        return sensor_readings(read_readings_file(path), profile, asset_id)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _raw_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    if path.suffix.lower() in PARQUET_SUFFIXES:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
        return
    with path.open(encoding="utf-8", errors="replace") as handle:
        separator = sniff_separator(handle.readline())
    with pd.read_csv(path, sep=separator, chunksize=chunk_rows) as reader:
        yield from reader


def read_replay_chunks(path: Path, profile: Profile, asset_id: str,
                       chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The file as :func:`read_replay_file` reads it, ``chunk_rows`` rows at a time."""
    chunks = 0
    try:
        for raw in _raw_chunks(path, chunk_rows):
            if not raw.empty:
                chunks += 1
                yield sensor_readings(raw, profile, asset_id)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except (OSError, ValueError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot read readings: {exc}") from exc
    if not chunks:
        raise ConfigError(f"{path}: no readings")


def count_rows(path: Path) -> int:
    """Data rows of the file (for progress and ETA): Parquet metadata, or CSV line ends."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return int(pq.ParquetFile(path).metadata.num_rows)
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(lines + (last != b"\n") - 1, 0)  # minus the header; a last line without \n


def telemetry_records(
    frame: pd.DataFrame, profile: Profile, asset_id: str, time_offset_ms: int = 0,
    run: str | None = None, first_row: int = 0,
) -> Iterator[dict[str, Any]]:
    """One TelemetryReading per row, all for ``asset_id``.

    Event ids are unique per run and end in the row number (counted from ``first_row``), so
    outputs can be matched back to rows.
    """
    run = run or uuid.uuid4().hex[:8]
    names = list(profile.sensor_names)
    timestamps = (frame["timestamp"] + time_offset_ms).tolist()
    for row, (ts, values) in enumerate(zip(timestamps, frame[names].to_numpy().tolist(),
                                            strict=True), start=first_row):
        yield {
            "event_id": f"{asset_id}-{run}-{row}",
            "asset_id": asset_id,
            "asset_type": profile.name,
            "timestamp": int(ts),
            "sensors": dict(zip(names, values, strict=True)),
        }


def replay_records(path: Path, profile: Profile, asset_id: str,
                   chunk_rows: int = CHUNK_ROWS) -> Iterator[dict[str, Any]]:
    """Every row of the file as a record, one chunk in memory at a time."""
    run, first_row = uuid.uuid4().hex[:8], 0
    for chunk in read_replay_chunks(path, profile, asset_id, chunk_rows):
        yield from telemetry_records(chunk, profile, asset_id, run=run, first_row=first_row)
        first_row += len(chunk)

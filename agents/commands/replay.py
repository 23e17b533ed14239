"""Readings files (CSV with ``,`` or ``;``, SKAB's format, Parquet) as TelemetryReading records.

The file is read by :mod:`assetwatch.features.readings`, the same reader training uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from assetwatch.errors import ConfigError
from assetwatch.features.profiles import Profile
from assetwatch.features.readings import read_readings_file, sensor_readings


def read_replay_file(path: Path, profile: Profile, asset_id: str) -> pd.DataFrame:
    """Every row of one file: timestamp (epoch ms) and one column per profile sensor."""
    try:
        return sensor_readings(read_readings_file(path), profile, asset_id)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def telemetry_records(
    frame: pd.DataFrame, profile: Profile, asset_id: str, time_offset_ms: int = 0
) -> Iterator[dict[str, Any]]:
    """One TelemetryReading per row, all for ``asset_id``.

    Event ids are unique per run and end in the row number, so outputs can be matched back to
    rows.
    """
    run = uuid.uuid4().hex[:8]
    names = list(profile.sensor_names)
    timestamps = (frame["timestamp"] + time_offset_ms).tolist()
    for row, (ts, values) in enumerate(zip(timestamps, frame[names].to_numpy().tolist(),
                                            strict=True)):
        yield {
            "event_id": f"{asset_id}-{run}-{row}",
            "asset_id": asset_id,
            "asset_type": profile.name,
            "timestamp": int(ts),
            "sensors": dict(zip(names, values, strict=True)),
        }

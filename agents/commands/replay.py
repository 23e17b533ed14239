"""CSV readings for one asset (SKAB's ``;`` format included) as TelemetryReading records."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from assetwatch.errors import ConfigError
from assetwatch.features.profiles import Profile

TIME_COLUMNS = ("timestamp", "datetime", "time")


def read_csv_readings(path: Path, profile: Profile) -> pd.DataFrame:
    """Columns timestamp (epoch ms) and one per profile sensor, in file order.

    The separator is sniffed (``,`` or ``;``); a sensor column may carry the sensor's name
    or its ``csv_column`` alias; times without a zone are taken as UTC.
    """
    frame = pd.read_csv(path, sep=None, engine="python")
    time_column = next((c for c in frame.columns if c.lower() in TIME_COLUMNS), None)
    if time_column is None:
        raise ConfigError(f"{path}: no time column (one of {TIME_COLUMNS})")
    out = pd.DataFrame(index=frame.index)
    times = frame[time_column]
    if pd.api.types.is_numeric_dtype(times):
        out["timestamp"] = times.astype("int64")
    else:
        parsed = pd.to_datetime(times, utc=True)
        out["timestamp"] = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    for sensor in profile.sensors:
        column = next((c for c in (sensor.name, sensor.csv_column) if c in frame.columns), None)
        if column is None:
            raise ConfigError(f"{path}: no column for sensor {sensor.name} ({sensor.csv_column})")
        out[sensor.name] = frame[column].astype(float)
    return out


def csv_readings(
    frame: pd.DataFrame, profile: Profile, asset_id: str, time_offset_ms: int = 0
) -> Iterator[dict[str, Any]]:
    """One TelemetryReading per row; event ids are unique per replay run."""
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

"""Labelled readings from files: CSV (``,`` or ``;``, SKAB's format included) or Parquet.

The result has the columns the offline feature path expects (asset_id, timestamp in epoch
ms, one per profile sensor) plus an integer 0/1 ``label``:

    >>> from assetwatch.features.profiles import load_profile
    >>> frame = pd.DataFrame({"datetime": ["2020-03-09 10:34:33"], "Accelerometer1RMS": [0.03],
    ...     "Accelerometer2RMS": [0.04], "Current": [0.9], "Pressure": [0.05],
    ...     "Temperature": [75.5], "Thermocouple": [25.8], "Voltage": [244.0],
    ...     "Volume Flow RateRMS": [32.0], "anomaly": [1.0]})
    >>> row = labelled_readings(frame, load_profile("pump"), "anomaly", "valve1-1").iloc[0]
    >>> row["asset_id"], int(row["timestamp"]), float(row["current"]), int(row["label"])
    ('valve1-1', 1583750073000, 0.9, 1)
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from assetwatch.errors import ConfigError
from assetwatch.features.profiles import Profile

log = logging.getLogger(__name__)

TIME_COLUMNS = ("timestamp", "datetime", "time")
PARQUET_SUFFIXES = (".parquet", ".pq")
LABEL = "label"


SEPARATORS = (";", ",", "\t")


def sniff_separator(first_line: str) -> str:
    """The separator the header line uses most (``,`` when it holds none), for the C engine.

    >>> sniff_separator("datetime;Accelerometer1RMS;anomaly"), sniff_separator("timestamp,x")
    (';', ',')
    """
    return max(SEPARATORS, key=lambda sep: (first_line.count(sep), sep == ","))


def read_readings_file(path: Path) -> pd.DataFrame:
    """The file's table as it is: Parquet, or CSV with the header's separator."""
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        with path.open(encoding="utf-8", errors="replace") as handle:
            separator = sniff_separator(handle.readline())
        return pd.read_csv(path, sep=separator)
    except (OSError, ValueError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot read readings: {exc}") from exc


def default_asset_id(prefix: str, path: Path) -> str:
    """``<prefix>-<folder>-<stem>``: unique per file path, unlike the stem alone.

    ``valve1/1.csv`` and ``other/1.csv`` would collide.

    >>> default_asset_id("pump", Path("data/skab/valve1/1.csv"))
    'pump-valve1-1'
    """
    folder = path.resolve().parent.name
    return "-".join(part for part in (prefix, folder, path.stem) if part)


def read_labelled_readings(path: Path, profile: Profile, label_column: str = LABEL
                           ) -> pd.DataFrame:
    """Read one file; a missing asset_id column defaults to :func:`default_asset_id`."""
    frame = read_readings_file(path)
    try:
        return labelled_readings(frame, profile, label_column,
                                 default_asset_id(profile.name, path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def read_normal_readings(path: Path, profile: Profile) -> pd.DataFrame:
    """Read one file of normal operation: every row labelled 0, no label column needed."""
    frame = read_readings_file(path)
    try:
        out = sensor_readings(frame, profile, default_asset_id(profile.name, path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    out[LABEL] = 0
    return _servable(out, profile)


def labelled_readings(frame: pd.DataFrame, profile: Profile, label_column: str,
                      default_asset_id: str) -> pd.DataFrame:
    """asset_id, timestamp (ms), the profile's sensors and 0/1 ``label``, in file order.

    Rows a worker would dead-letter (a sensor non-finite or out of range) are dropped, so
    the models learn from what serving folds.
    """
    out = sensor_readings(frame, profile, default_asset_id)
    out[LABEL] = labels(frame, label_column)
    return _servable(out, profile)


def sensor_readings(frame: pd.DataFrame, profile: Profile, default_asset_id: str
                    ) -> pd.DataFrame:
    """asset_id, timestamp (ms) and the profile's sensors, every row kept in file order.

    A sensor column may carry the sensor's name or its ``csv_column`` alias; times without a
    zone are UTC. Replay and evaluate send every row, so the worker judges the bad ones.
    """
    if frame.empty:
        raise ConfigError("no readings")
    out = pd.DataFrame(index=frame.index)
    assets = frame["asset_id"].astype(str) if "asset_id" in frame.columns else default_asset_id
    out["asset_id"] = assets
    out["timestamp"] = _timestamps(frame)
    for sensor in profile.sensors:
        column = next((c for c in (sensor.name, sensor.csv_column) if c in frame.columns), None)
        if column is None:
            raise ConfigError(f"no column for {profile.name} sensor {sensor.name}"
                              f" (nor {sensor.csv_column!r}); columns: {list(frame.columns)}")
        out[sensor.name] = _numbers(frame[column], column)
    return out


def _timestamps(frame: pd.DataFrame) -> pd.Series:
    name = next((c for c in frame.columns if str(c).lower() in TIME_COLUMNS), None)
    if name is None:
        raise ConfigError(f"no time column (one of {TIME_COLUMNS})")
    times = frame[name]
    if pd.api.types.is_numeric_dtype(times):
        if times.isna().any():
            raise ConfigError(f"column {name!r} has empty times")
        return times.astype("int64")
    try:
        parsed = pd.to_datetime(times, utc=True)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"column {name!r} is neither epoch ms nor dates: {exc}") from exc
    if parsed.isna().any():
        raise ConfigError(f"column {name!r} has empty times")
    return (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)


def _numbers(column: pd.Series, name: str) -> pd.Series:
    try:
        return pd.to_numeric(column).astype(float)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"column {name!r} is not numeric: {exc}") from exc


def labels(frame: pd.DataFrame, label_column: str) -> pd.Series:
    """The 0/1 label column, checked."""
    if label_column not in frame.columns:
        raise ConfigError(f"no label column {label_column!r} (choose one with --label-column);"
                          f" columns: {list(frame.columns)}")
    labels = _numbers(frame[label_column], label_column)
    if not labels.isin((0.0, 1.0)).all():
        bad = sorted(set(labels[~labels.isin((0.0, 1.0))].tolist()), key=str)[:5]
        raise ConfigError(f"label column {label_column!r} must hold 0 or 1, found {bad}")
    return labels.astype(int)


def _servable(readings: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    values = readings[list(profile.sensor_names)].to_numpy(dtype=float)
    low = np.array([s.min for s in profile.sensors])
    high = np.array([s.max for s in profile.sensors])
    keep = (np.isfinite(values) & (values >= low) & (values <= high)).all(axis=1)
    if not keep.all():
        log.warning("dropped %d of %d readings a worker would dead-letter"
                    " (a sensor non-finite or out of range)", int((~keep).sum()), len(keep))
    if not keep.any():
        raise ConfigError("no reading has every sensor finite and within its range")
    return readings.loc[pd.Series(keep, index=readings.index)]

"""Checks a decoded reading against its profile; a failure names the dead-letter reason.

>>> from assetwatch.features.profiles import load_profile
>>> profiles = {"cnc": load_profile("cnc")}
>>> reading = {"asset_type": "cnc", "timestamp": 0, "sensors": {
...     "temperature": 60.0, "vibration": 2.0, "spindle_speed": 1500.0, "power": float("nan")}}
>>> check_reading(reading, profiles, now_ms=0, max_future_ms=1000)
Traceback (most recent call last):
...
assetwatch.errors.InvalidReadingError: non_finite_value: sensor power is nan
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from assetwatch.errors import InvalidReadingError
from assetwatch.features.profiles import Profile


def check_reading(
    reading: Mapping[str, Any], profiles: Mapping[str, Profile], now_ms: int, max_future_ms: int,
    max_past_ms: int | None = None, max_id_length: int | None = None,
) -> tuple[Profile, list[float]]:
    """The reading's profile and its sensor values in profile order.

    Raises :class:`InvalidReadingError` naming the dead-letter reason.
    """
    if max_id_length is not None:
        check_ids(reading, max_id_length)
    profile = profiles.get(reading["asset_type"])
    if profile is None:
        raise InvalidReadingError(
            "unknown_asset_type",
            f"asset type {reading['asset_type']!r} is not served (known: {sorted(profiles)})",
        )
    if reading["timestamp"] > now_ms + max_future_ms:
        raise InvalidReadingError(
            "future_timestamp",
            f"timestamp {reading['timestamp']} is {reading['timestamp'] - now_ms} ms ahead of now",
        )
    if max_past_ms is not None and reading["timestamp"] < now_ms - max_past_ms:
        raise InvalidReadingError(
            "too_old",
            f"timestamp {reading['timestamp']} is more than {max_past_ms} ms behind now "
            f"({now_ms}); epoch seconds instead of milliseconds?",
        )
    sensors: Mapping[str, float] = reading["sensors"]
    if sensors.keys() != profile.sensor_set:
        _raise_sensor_mismatch(profile, sensors)
    values = []
    for sensor in profile.sensors:
        try:
            x = float(sensors[sensor.name])
        except OverflowError:
            # A JSON integer past float range (Avro validation takes any int as a double) is a
            # finite number far outside every sensor's range: out_of_range, not non_finite_value.
            # Not formatted into the detail: its decimal form may be thousands of digits long.
            raise InvalidReadingError(
                "out_of_range",
                f"sensor {sensor.name} is an integer beyond float range, outside "
                f"[{sensor.min}, {sensor.max}] {sensor.unit}",
            ) from None
        if not math.isfinite(x):
            raise InvalidReadingError("non_finite_value", f"sensor {sensor.name} is {x}")
        if not sensor.min <= x <= sensor.max:
            raise InvalidReadingError(
                "out_of_range",
                f"sensor {sensor.name}={x} outside [{sensor.min}, {sensor.max}] {sensor.unit}",
            )
        values.append(x)
    return profile, values


def check_ids(reading: Mapping[str, Any], max_length: int) -> None:
    """Ids must be non-blank and short: the asset id keys state, alerts and log lines.

    >>> check_ids({"event_id": " ", "asset_id": "cnc-1"}, 256)
    Traceback (most recent call last):
    ...
    assetwatch.errors.InvalidReadingError: empty_id: event_id is empty or blank
    """
    for field in ("asset_id", "event_id"):
        value: str = reading[field]
        if not value.strip():
            raise InvalidReadingError("empty_id", f"{field} is empty or blank")
        if len(value) > max_length:
            raise InvalidReadingError(
                "id_too_long", f"{field} has {len(value)} characters (limit {max_length})")


def _raise_sensor_mismatch(profile: Profile, sensors: Mapping[str, float]) -> None:
    missing = sorted(set(profile.sensor_names) - set(sensors))
    if missing:
        raise InvalidReadingError("missing_sensor", f"{profile.name} reading lacks {missing}")
    extra = sorted(set(sensors) - set(profile.sensor_names))
    raise InvalidReadingError("unexpected_sensor", f"{profile.name} reading has unknown {extra}")

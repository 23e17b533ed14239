"""check_reading: every way a decoded reading breaks its profile, by reason code."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from assetwatch.errors import InvalidReadingError
from assetwatch.features.profiles import Profile, load_profiles
from assetwatch.features.validation import check_reading

MAX_FUTURE_MS = 300_000
Reading = dict[str, Any]


@pytest.fixture(scope="module")
def profiles() -> dict[str, Profile]:
    return load_profiles(["cnc", "pump"])


BAD = {
    # description: (overrides for make_reading, expected reason)
    "unknown asset type": ({"asset_type": "turbine"}, "unknown_asset_type"),
    "asset type of another case": ({"asset_type": "CNC"}, "unknown_asset_type"),
    "one sensor missing": ({"drop": ("power",)}, "missing_sensor"),
    "no sensors": (
        {"sensors": None, "drop": ("temperature", "vibration", "spindle_speed", "power")},
        "missing_sensor",
    ),
    "one missing, one unknown": (
        {"drop": ("power",), "sensors": {"torque": 1.0}},
        "missing_sensor",
    ),
    "an unknown sensor": ({"sensors": {"torque": 1.0}}, "unexpected_sensor"),
    "nan": ({"sensors": {"vibration": float("nan")}}, "non_finite_value"),
    "inf": ({"sensors": {"power": float("inf")}}, "non_finite_value"),
    "-inf": ({"sensors": {"temperature": float("-inf")}}, "non_finite_value"),
    "below min": ({"sensors": {"temperature": -40.001}}, "out_of_range"),
    "above max": ({"sensors": {"spindle_speed": 30_000.5}}, "out_of_range"),
    "negative vibration": ({"sensors": {"vibration": -0.1}}, "out_of_range"),
    "pump sensors on a cnc": ({"asset_type": "pump"}, "missing_sensor"),
}


@pytest.mark.parametrize(("overrides", "reason"), BAD.values(), ids=BAD.keys())
def test_bad_reading_raises_its_reason_code(
    make_reading: Callable[..., Reading],
    profiles: dict[str, Profile],
    now_ms: int,
    overrides: dict[str, Any],
    reason: str,
) -> None:
    reading = make_reading(**overrides)

    with pytest.raises(InvalidReadingError) as caught:
        check_reading(reading, profiles, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS)

    assert caught.value.reason == reason
    assert str(caught.value).startswith(f"{reason}: ")


@pytest.mark.parametrize(
    ("ahead_ms", "future"),
    [
        (-86_400_000, False),
        (0, False),
        (MAX_FUTURE_MS, False),
        (MAX_FUTURE_MS + 1, True),
        (86_400_000, True),
    ],
)
def test_readings_too_far_ahead_of_now_are_future_timestamps(
    make_reading: Callable[..., Reading],
    profiles: dict[str, Profile],
    now_ms: int,
    ahead_ms: int,
    future: bool,
) -> None:
    reading = make_reading(timestamp=now_ms + ahead_ms)

    if future:
        with pytest.raises(InvalidReadingError, match=r"^future_timestamp: "):
            check_reading(reading, profiles, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS)
    else:
        check_reading(reading, profiles, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS)


def test_asset_type_is_checked_before_the_timestamp(
    make_reading: Callable[..., Reading], profiles: dict[str, Profile], now_ms: int
) -> None:
    reading = make_reading(asset_type="turbine", timestamp=now_ms + 10 * MAX_FUTURE_MS)

    with pytest.raises(InvalidReadingError, match=r"^unknown_asset_type: "):
        check_reading(reading, profiles, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS)


GOOD = {
    "ordinary": {},
    "far in the past": {"timestamp": 0},
    "every sensor at its min": {
        "sensors": {"temperature": -40.0, "vibration": 0.0, "spindle_speed": 0.0, "power": 0.0}
    },
    "every sensor at its max": {
        "sensors": {
            "temperature": 250.0,
            "vibration": 100.0,
            "spindle_speed": 30_000.0,
            "power": 500.0,
        }
    },
    "integers and shuffled keys": {
        "sensors": {"power": 12, "spindle_speed": 1500, "vibration": 2, "temperature": 65}
    },
}


@pytest.mark.parametrize("overrides", GOOD.values(), ids=GOOD.keys())
def test_good_reading_returns_its_profile_and_values_in_profile_order(
    make_reading: Callable[..., Reading],
    profiles: dict[str, Profile],
    now_ms: int,
    overrides: dict[str, Any],
) -> None:
    reading = make_reading(**overrides)

    profile, values = check_reading(reading, profiles, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS)

    assert profile is profiles["cnc"]
    assert values == [float(reading["sensors"][name]) for name in profile.sensor_names]
    assert all(type(x) is float for x in values)


def test_good_pump_reading_follows_the_pump_sensor_order(
    make_reading: Callable[..., Reading], profiles: dict[str, Profile], now_ms: int
) -> None:
    pump = profiles["pump"]
    sensors = {s.name: s.baseline for s in reversed(pump.sensors)}
    reading = {**make_reading(asset_type="pump"), "sensors": sensors}

    profile, values = check_reading(reading, profiles, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS)

    assert profile is pump
    assert values == [s.baseline for s in pump.sensors]


def test_integer_too_large_for_a_float_is_an_invalid_reading(
    make_reading: Callable[..., Reading], profiles: dict[str, Profile], now_ms: int
) -> None:
    """JSON numbers are unbounded integers; one beyond float range must still be a dead letter.

    Today ``float(10**400)`` raises OverflowError out of check_reading (features/validation.py,
    ``x = float(sensors[sensor.name])``), which BatchProcessor.prepare does not catch.
    """
    reading = make_reading(sensors={"temperature": 10**400})

    with pytest.raises(InvalidReadingError) as caught:
        check_reading(reading, profiles, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS)

    assert caught.value.reason in {"out_of_range", "non_finite_value"}


@pytest.mark.parametrize(
    "value", [10**400, -(10**400), 10**4000], ids=["huge", "-huge", "4001 digits"]
)
def test_integer_beyond_float_range_is_out_of_range_and_its_detail_stays_short(
    make_reading: Callable[..., Reading], profiles: dict[str, Profile], now_ms: int, value: int
) -> None:
    """A finite number past every sensor's range: out_of_range, as any other too-large value."""
    reading = make_reading(sensors={"power": value})

    with pytest.raises(InvalidReadingError, match=r"^out_of_range: sensor power ") as caught:
        check_reading(reading, profiles, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS)

    assert len(caught.value.detail) < 200


@pytest.mark.parametrize(("value", "reason"), [
    (float("inf"), "non_finite_value"), (float("nan"), "non_finite_value"),
    (1e308, None), (-1.0, "out_of_range"),
])
def test_an_unbounded_sensor_still_refuses_what_is_not_finite(
    make_reading: Callable[..., Reading], profiles: dict[str, Profile], now_ms: int,
    value: float, reason: str | None,
) -> None:
    """A sensor without an upper bound still refuses inf and nan as non-finite values."""
    cnc = profiles["cnc"]
    open_ended = dataclasses.replace(cnc, sensors=tuple(
        dataclasses.replace(s, max=float("inf")) if s.name == "power" else s
        for s in cnc.sensors))
    reading = make_reading(sensors={"power": value})

    if reason is None:
        _, values = check_reading(reading, {"cnc": open_ended}, now_ms=now_ms,
                                  max_future_ms=MAX_FUTURE_MS)
        assert values[cnc.sensor_names.index("power")] == value
        return
    with pytest.raises(InvalidReadingError) as caught:
        check_reading(reading, {"cnc": open_ended}, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS)
    assert caught.value.reason == reason


def test_the_first_bad_sensor_in_profile_order_names_the_reason(
    make_reading: Callable[..., Reading], profiles: dict[str, Profile], now_ms: int
) -> None:
    """Out of range before a nan, in profile order: the out-of-range one is the reason."""
    reading = make_reading(sensors={"temperature": 999.0, "power": float("nan")})

    with pytest.raises(InvalidReadingError, match=r"^out_of_range: sensor temperature="):
        check_reading(reading, profiles, now_ms=now_ms, max_future_ms=MAX_FUTURE_MS)

"""Profiles, the feature extractor, its state, and offline/online parity."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assetwatch.agents.commands.replay import read_replay_file
from assetwatch.errors import ConfigError, ForeignStateError, SerializationError
from assetwatch.features.batch import feature_rows
from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.offline import compute_features
from assetwatch.features.profiles import Profile, load_profile, load_profiles
from assetwatch.features.state import AssetState, profile_digest, stored_profile
from assetwatch.settings import Settings
from assetwatch.simulation import TelemetrySimulator, synthetic_fleet
from tests.data import SKAB_VALVE1

SKAB_CSV = SKAB_VALVE1 / "1.csv"
START_MS = 1_700_000_000_000
SKAB_NON_SENSOR_COLUMNS = {"datetime", "anomaly", "changepoint"}

# --- profiles -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "temperature",
        "temperature_mean_5m",
        "temperature_std_5m",
        "temperature_min_5m",
        "temperature_max_5m",
        "temperature_mean_30m",
        "temperature_std_30m",
        "temperature_zscore_30m",
        "temperature_rate_of_change",
        "temperature_pct_change",
        "vibration_max_5m",
        "spindle_speed_pct_change",
        "power_std_30m",
        "temperature_x_vibration",
        "power_per_spindle_speed",
    ],
)
def test_cnc_profile_names_its_features_from_its_parameters(cnc: Profile, name: str) -> None:
    assert name in cnc.feature_names


def test_cnc_profile_has_at_least_forty_unique_features(cnc: Profile) -> None:
    assert len(cnc.feature_names) >= 40
    assert len(set(cnc.feature_names)) == len(cnc.feature_names)
    assert cnc.feature_names[:3] == ("temperature", "temperature_mean_5m", "temperature_std_5m")
    assert cnc.sensor_names == ("temperature", "vibration", "spindle_speed", "power")


def test_pump_profile_covers_the_eight_skab_sensors(pump: Profile) -> None:
    header = SKAB_CSV.read_text().splitlines()[0].split(";")

    assert len(pump.sensors) == 8
    assert {s.csv_column for s in pump.sensors} == set(header) - SKAB_NON_SENSOR_COLUMNS


VALID_TOML = """\
name = "mini"
reading_interval_s = 1.0

[[sensors]]
name = "a"
unit = "u"
min = 0.0
max = 1.0
baseline = 0.5
noise = 0.1
failure_drift = 0.2

[[sensors]]
name = "b"
unit = "u"
min = 0.0
max = 1.0
baseline = 0.5
noise = 0.1
failure_drift = 0.2

[[windows]]
name = "w"
length_s = 60
bucket_s = 10
stats = ["mean", "std", "min"]

[features]
raw = true
zscore_window = "w"

[[interactions]]
name = "a_per_b"
op = "ratio"
left = "a"
right = "b"
"""

MALFORMED = {
    # description: (text in VALID_TOML, its replacement)
    "no name": ('name = "mini"\n', ""),
    "sensor without a unit": ('unit = "u"\n', ""),
    "sensor with an unknown field": ("noise = 0.1\n", 'noise = 0.1\ncolour = "red"\n'),
    "duplicate sensor names": ('name = "b"', 'name = "a"'),
    "no sensors": ("[[sensors]]", "[[sensor]]"),
    "no windows": ("[[windows]]", "[[window]]"),
    "length not a multiple of the bucket": ("length_s = 60", "length_s = 65"),
    "zero-second bucket": ("bucket_s = 10", "bucket_s = 0"),
    "length not a number": ("length_s = 60", 'length_s = "an hour"'),
    "unknown statistic": ('"mean", "std", "min"', '"mean", "median"'),
    "z-score over a missing window": ('zscore_window = "w"', 'zscore_window = "1h"'),
    "z-score over a window without std": ('"mean", "std", "min"', '"mean", "min"'),
    "interaction with an unknown sensor": ('right = "b"', 'right = "c"'),
    "interaction with an unknown op": ('op = "ratio"', 'op = "power"'),
    "unknown feature option": ("raw = true", "raw = true\nsmoothing = 3"),
    # tomllib.loads runs outside _build's try, so this raises TOMLDecodeError today.
    "not TOML at all": ("[[windows]]", "[[windows]"),
}


def test_the_valid_template_loads_from_the_extra_dir(tmp_path: Path) -> None:
    (tmp_path / "mini.toml").write_text(VALID_TOML)

    profile = load_profile("mini", extra_dir=tmp_path)

    assert profile.sensor_names == ("a", "b")
    assert profile.feature_names[-1] == "a_per_b"


@pytest.mark.parametrize(("old", "new"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_profile_raises_config_error(tmp_path: Path, old: str, new: str) -> None:
    assert old in VALID_TOML
    (tmp_path / "mini.toml").write_text(VALID_TOML.replace(old, new, 1))

    with pytest.raises(ConfigError):
        load_profile("mini", extra_dir=tmp_path)


def test_profile_named_otherwise_than_its_file_raises_config_error(tmp_path: Path) -> None:
    """The processor keys extractors by ``profile.name``; a file must hold the profile it names."""
    (tmp_path / "mini.toml").write_text(VALID_TOML.replace('name = "mini"', 'name = "maxi"', 1))

    with pytest.raises(ConfigError, match="calls itself 'maxi', not 'mini'"):
        load_profile("mini", extra_dir=tmp_path)


def test_profile_file_that_is_not_utf8_raises_config_error(tmp_path: Path) -> None:
    (tmp_path / "mini.toml").write_bytes(VALID_TOML.encode() + b"# \xff\n")

    with pytest.raises(ConfigError, match="not readable TOML"):
        load_profile("mini", extra_dir=tmp_path)


def test_unknown_profile_name_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no profile named"):
        load_profile("turbine", extra_dir=tmp_path)


def test_a_profile_name_with_path_characters_reads_no_file_outside(tmp_path: Path) -> None:
    """``--asset-type ../x`` (or ASSETWATCH_PROFILES) must not load ``x.toml`` from elsewhere."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "x.toml").write_text(VALID_TOML.replace('name = "mini"', 'name = "../x"', 1))

    with pytest.raises(ConfigError, match="is not a name"):
        load_profile("../x", extra_dir=tmp_path / "dir")


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".", "x.toml", "", "/etc/passwd",
                                  "c:\\x", "cnc\n", "x" * 65])
def test_profile_names_that_are_not_names_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError, match="is not a name"):
        load_profiles(["cnc", name])


def test_profiles_from_the_environment_are_checked_as_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASSETWATCH_PROFILES", '["cnc", "../../x"]')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"'\.\./\.\./x' is not a name"):
        load_profiles(settings.profiles, settings.profiles_dir)


# --- the extractor by hand --------------------------------------------------------------

HAND_READINGS = [
    # (ms after start, temperature, vibration, spindle_speed, power)
    (0, 60.0, 2.0, 1000.0, 10.0),
    (1_000, 63.0, 2.5, 1200.0, 12.0),
    (3_000, 57.0, 2.0, 0.0, 9.0),
    (4_000, 60.0, 3.0, 1500.0, 9.0),
]

HAND_EXPECTED = [
    # (reading index, feature, value worked out by hand)
    (0, "temperature_rate_of_change", 0.0),
    (0, "temperature_pct_change", 0.0),
    (0, "temperature_zscore_30m", 0.0),
    (0, "temperature_std_5m", 0.0),
    (0, "temperature_x_vibration", 120.0),
    (0, "power_per_spindle_speed", 0.01),
    (1, "temperature_rate_of_change", 3.0),
    (1, "temperature_pct_change", 0.05),
    (1, "vibration_rate_of_change", 0.5),
    (1, "vibration_pct_change", 0.25),
    (1, "temperature_x_vibration", 157.5),
    (1, "power_per_spindle_speed", 0.01),
    (2, "temperature_rate_of_change", -3.0),
    (2, "temperature_pct_change", -6.0 / 63.0),
    (2, "spindle_speed_rate_of_change", -600.0),
    (2, "spindle_speed_pct_change", -1.0),
    (2, "power_per_spindle_speed", 0.0),
    (2, "temperature_mean_5m", 60.0),
    (2, "temperature_std_5m", 3.0),
    (2, "temperature_min_5m", 57.0),
    (2, "temperature_max_5m", 63.0),
    (2, "temperature_zscore_30m", -1.0),
    (3, "spindle_speed_rate_of_change", 1500.0),
    (3, "spindle_speed_pct_change", 0.0),
    (3, "power_rate_of_change", 0.0),
    (3, "power_per_spindle_speed", 0.006),
]


@pytest.fixture(scope="module")
def hand_rows(cnc: Profile) -> list[dict[str, float]]:
    extractor = FeatureExtractor(cnc)
    state = extractor.new_state()
    rows = []
    for offset, *values in HAND_READINGS:
        row = extractor.update(state, START_MS + offset, values)
        rows.append(dict(zip(extractor.names, row, strict=True)))
    return rows


@pytest.mark.parametrize(("index", "feature", "expected"), HAND_EXPECTED)
def test_feature_values_worked_out_by_hand(
    hand_rows: list[dict[str, float]], index: int, feature: str, expected: float
) -> None:
    assert hand_rows[index][feature] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_zscore_uses_the_window_mean_and_sample_std(hand_rows: list[dict[str, float]]) -> None:
    temps = np.array([r[1] for r in HAND_READINGS])
    mean, std = temps.mean(), temps.std(ddof=1)
    z = hand_rows[3]["temperature_zscore_30m"]

    assert z == pytest.approx((temps[3] - mean) / std, rel=1e-12)


def test_out_of_order_reading_has_no_rate_and_leaves_the_previous_reading(cnc: Profile) -> None:
    extractor = FeatureExtractor(cnc)
    state = extractor.new_state()
    extractor.update(state, START_MS + 2_000, [60.0, 2.0, 1000.0, 10.0])

    late = extractor.update(state, START_MS, [66.0, 2.0, 1.0, 1.0])
    after = extractor.update(state, START_MS + 4_000, [70.0, 2.0, 1.0, 1.0])
    late_row = dict(zip(cnc.feature_names, late, strict=True))
    after_row = dict(zip(cnc.feature_names, after, strict=True))

    assert late_row["temperature_rate_of_change"] == 0.0
    assert late_row["temperature_pct_change"] == pytest.approx(0.1)
    assert after_row["temperature_rate_of_change"] == pytest.approx(5.0)
    assert state.watermark_ms == START_MS + 4_000


@pytest.mark.parametrize("tiny", [1e-10, -1e-12, 1e-39, 5e-324, 0.0])
def test_ratios_over_a_denominator_too_small_to_measure_are_zero(
    cnc: Profile, tiny: float
) -> None:
    """Dividing by ~0 gives 1e40 or inf, which no model takes: such ratios count as over 0."""
    extractor = FeatureExtractor(cnc)
    state = extractor.new_state()
    first = extractor.update(state, START_MS, [60.0, 2.0, tiny, 10.0])
    second = extractor.update(state, START_MS + 1_000, [60.0, 2.0, 1500.0, 10.0])
    first_row = dict(zip(cnc.feature_names, first, strict=True))
    second_row = dict(zip(cnc.feature_names, second, strict=True))

    assert first_row["power_per_spindle_speed"] == 0.0
    assert second_row["spindle_speed_pct_change"] == 0.0
    assert second_row["power_per_spindle_speed"] == pytest.approx(10.0 / 1500.0)
    assert all(np.isfinite(first)) and all(np.isfinite(second))


def test_ratios_over_a_small_but_measurable_denominator_are_kept(cnc: Profile) -> None:
    extractor = FeatureExtractor(cnc)
    state = extractor.new_state()
    extractor.update(state, START_MS, [60.0, 2.0, 1e-3, 10.0])
    second = extractor.update(state, START_MS + 1_000, [60.0, 2.0, 2e-3, 10.0])
    row = dict(zip(cnc.feature_names, second, strict=True))

    assert row["power_per_spindle_speed"] == pytest.approx(5_000.0)
    assert row["spindle_speed_pct_change"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("watermark_s", "reading_s", "late"),
    [(None, 0, False), (100, 70, False), (100, 69.999, True), (100, 150, False)],
)
def test_is_late_compares_against_the_newest_reading_and_the_grace(
    cnc: Profile, watermark_s: float | None, reading_s: float, late: bool
) -> None:
    extractor = FeatureExtractor(cnc)
    state = extractor.new_state()
    if watermark_s is not None:
        extractor.update(state, START_MS + int(watermark_s * 1000), [60.0, 2.0, 1000.0, 10.0])

    reading_ms = START_MS + int(reading_s * 1000)
    assert extractor.is_late(state.watermark_ms, reading_ms, grace_ms=30_000) is late


# --- state --------------------------------------------------------------------------------


def _one_asset_stream(profile: Profile, n_ticks: int) -> list[tuple[int, list[float]]]:
    """One asset's readings, each up to 5 s late so some arrive out of order."""
    block = TelemetrySimulator(profile, 1, START_MS, seed=3, failing=[0]).block(n_ticks)
    rng = np.random.default_rng(3)
    arrival = block.timestamps + rng.integers(0, 5_000, n_ticks)
    order = np.argsort(arrival, kind="stable")
    return [(int(block.timestamps[i]), block.values[i, 0].tolist()) for i in order]


@pytest.mark.parametrize("split", [1, 250, 1900])
def test_state_restored_mid_stream_continues_exactly_as_if_never_stopped(
    cnc: Profile, split: int
) -> None:
    stream = _one_asset_stream(cnc, 2_100)
    extractor = FeatureExtractor(cnc)
    straight = extractor.new_state()
    expected = [extractor.update(straight, ts, values) for ts, values in stream]

    state = extractor.new_state()
    for ts, values in stream[:split]:
        extractor.update(state, ts, values)
    state = AssetState.from_bytes(state.to_bytes(), cnc)
    resumed = [extractor.update(state, ts, values) for ts, values in stream[split:]]

    assert resumed == expected[split:]
    assert state.to_bytes() == straight.to_bytes()


def _state_bytes(profile: Profile) -> bytes:
    extractor = FeatureExtractor(profile)
    state = extractor.new_state()
    for ts, values in _one_asset_stream(profile, 90):
        extractor.update(state, ts, values)
    return state.to_bytes()


UNREADABLE_STATES = {
    "empty": lambda good: b"",
    "not a whole number of doubles": lambda good: good[:-3],
    "wrong format version": lambda good: b"\x00" * 8 + good[8:],
    "more recent events than kept": lambda good: _patch(good, _RECENT_AT, 17.0),
    # Loads today with a short last bucket; the next reading in it raises IndexError.
    "one double short": lambda good: good[:-8],
    "first half": lambda good: good[: len(good) // 16 * 8],
    "one double too many": lambda good: good + good[-8:],
    "a second state appended": lambda good: good + good,
    "more previous values than sensors": lambda good: _patch(good, _PREV_AT, 5.0),
    "previous-value count is infinite": lambda good: _patch(good, _PREV_AT, float("inf")),
    "previous-value count is nan": lambda good: _patch(good, _PREV_AT, float("nan")),
    "first window claims a million buckets": lambda good: _patch(good, _BUCKETS_AT, 1e6),
    "first window has a negative bucket count": lambda good: _patch(good, _BUCKETS_AT, -1.0),
}
_PREV_AT = 6
"""Where a cnc state holds its previous-value count (after the head and the profile digest)."""
_RECENT_AT = _PREV_AT + 1 + 4
"""Its recent-event count, after the 4 previous values."""
_BUCKETS_AT = _RECENT_AT + 1 + 1 + 16
"""Its first window's bucket count (no recent events; after 1 + 4 * 4 totals)."""


def _patch(state: bytes, index: int, value: float) -> bytes:
    """``state`` with its ``index``-th double replaced by ``value``."""
    floats = np.frombuffer(state, dtype=np.float64).copy()
    floats[index] = value
    return floats.tobytes()


def test_patched_state_offsets_point_where_the_tests_think(cnc: Profile) -> None:
    floats = np.frombuffer(_state_bytes(cnc), dtype=np.float64)

    assert floats[5] == profile_digest("cnc")
    assert floats[_PREV_AT] == len(cnc.sensors)
    assert floats[_RECENT_AT] == 0
    assert 1 <= floats[_BUCKETS_AT] <= cnc.windows[0].n_buckets


def test_a_state_of_another_profile_is_refused_even_with_the_same_layout(
    cnc: Profile,
) -> None:
    """A renamed copy of cnc reads cnc's bytes size for size: only the digest tells them apart."""
    twin = dataclasses.replace(cnc, name="cnc-twin")
    good = _state_bytes(cnc)

    with pytest.raises(ForeignStateError, match="not of profile cnc-twin"):
        AssetState.from_bytes(good, twin)
    assert stored_profile(good, ["pump", "cnc-twin", "cnc"]) == "cnc"
    assert stored_profile(good, ["pump"]) is None
    assert AssetState.from_bytes(good, cnc).to_bytes() == good


@pytest.mark.parametrize("corrupt", UNREADABLE_STATES.values(), ids=UNREADABLE_STATES.keys())
def test_unreadable_state_bytes_raise_serialization_error(
    cnc: Profile, corrupt: Callable[[bytes], bytes]
) -> None:
    with pytest.raises(SerializationError):
        AssetState.from_bytes(corrupt(_state_bytes(cnc)), cnc)


# --- offline / online parity ---------------------------------------------------------------


def _fleet_arrivals(profile: Profile) -> pd.DataFrame:
    """Three assets' readings, interleaved, each delayed up to 5 s (< the 30 s grace).

    Row order is arrival order; index labels are shuffled so alignment is exercised too.
    """
    sim = TelemetrySimulator(profile, 3, START_MS, seed=5, failure_rate_per_hour=0.9)
    readings = list(sim.readings(2_100))  # past 30 minutes, so the long window expires
    rng = np.random.default_rng(5)
    timestamps = np.array([r["timestamp"] for r in readings])
    arrival = np.argsort(timestamps + rng.integers(0, 5_000, len(readings)), kind="stable")
    rows = [
        {
            "asset_id": readings[i]["asset_id"],
            "timestamp": readings[i]["timestamp"],
            **readings[i]["sensors"],
        }
        for i in arrival
    ]
    return pd.DataFrame(rows, index=rng.permutation(len(rows)) * 7)


def _online(frame: pd.DataFrame, profile: Profile) -> np.ndarray:
    """Feed readings one at a time through one extractor with per-asset states.

    Assets arrive interleaved as in ``frame``; each asset's own readings are fed in stable
    timestamp order (the order the offline path folds them in).
    """
    extractor = FeatureExtractor(profile)
    assets = frame["asset_id"].tolist()
    timestamps = frame["timestamp"].tolist()
    values = frame[list(profile.sensor_names)].to_numpy(dtype=float).tolist()
    queues: dict[str, list[int]] = defaultdict(list)
    for position in sorted(range(len(frame)), key=lambda p: (assets[p], timestamps[p])):
        queues[assets[position]].append(position)
    states: dict[str, AssetState] = {}
    rows = np.empty((len(frame), len(extractor.names)))
    for asset in assets:
        position = queues[asset].pop(0)
        state = states.setdefault(asset, extractor.new_state())
        rows[position] = extractor.update(state, timestamps[position], values[position])
    return rows


def test_offline_and_online_features_agree_on_interleaved_fleet(cnc: Profile) -> None:
    """Parity on simulated, interleaved, slightly shuffled telemetry of three assets.

    Arrival order is out of timestamp order within each asset (up to 5 s). The offline path
    sorts each asset's readings by timestamp, so the online feed keeps the assets'
    interleaving but gives each asset its readings in that same (stable) timestamp order.
    """
    frame = _fleet_arrivals(cnc)
    in_order = frame.groupby("asset_id", sort=False)["timestamp"].is_monotonic_increasing
    assert not in_order.any(), "the arrival shuffle should put some readings out of order"

    offline = compute_features(frame, cnc)

    assert list(offline.index) == list(frame.index)
    assert list(offline.columns) == list(cnc.feature_names)
    np.testing.assert_allclose(_online(frame, cnc), offline.to_numpy(), rtol=1e-9, atol=0)


def test_offline_and_online_features_agree_on_skab_valve_data(pump: Profile) -> None:
    """Parity on real SKAB pump telemetry, fed online in file order (timestamps ascend)."""
    frame = read_replay_file(SKAB_CSV, pump, "valve1-1")
    assert frame["timestamp"].is_monotonic_increasing

    offline = compute_features(frame, pump)

    assert len(offline) == len(frame) > 1_000
    np.testing.assert_allclose(_online(frame, pump), offline.to_numpy(), rtol=1e-9, atol=0)


def test_compute_features_names_missing_columns(cnc: Profile) -> None:
    frame = pd.DataFrame({"asset_id": ["a"], "timestamp": [START_MS], "temperature": [60.0]})

    with pytest.raises(KeyError, match="power"):
        compute_features(frame, cnc)


@pytest.mark.parametrize("name", ["cnc", "pump"])
def test_the_array_fold_gives_the_dataframe_path_features(name: str) -> None:
    """features.batch (serving checks, no pandas) and features.offline (training) agree."""
    profile = load_profile(name)
    fleet = synthetic_fleet(profile, n_assets=3, hours=0.05, seed=4)
    order = np.random.default_rng(0).permutation(len(fleet.timestamps))  # rows out of order
    ids, ts, values = fleet.asset_ids[order], fleet.timestamps[order], fleet.values[order]
    frame = pd.DataFrame(values, columns=list(profile.sensor_names))
    frame.insert(0, "timestamp", ts)
    frame.insert(0, "asset_id", ids)

    np.testing.assert_array_equal(feature_rows(profile, ids, ts, values),
                                  compute_features(frame, profile).to_numpy(dtype=float))

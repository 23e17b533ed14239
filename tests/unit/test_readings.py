"""One reader for readings files: separators, the default asset id, replay's records."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from assetwatch.agents.commands.replay import read_replay_file, telemetry_records
from assetwatch.errors import ConfigError
from assetwatch.features.profiles import Profile, load_profile
from assetwatch.features.readings import (
    default_asset_id,
    read_labelled_readings,
    read_readings_file,
    sniff_separator,
)
from tests.data import SKAB_VALVE1

SKAB_CSV = SKAB_VALVE1 / "1.csv"

HEADER = ["timestamp", "temperature", "vibration", "power", "spindle_speed", "label"]
ROWS = [[1_700_000_000_000, 60.5, 1.25, 3.0, 1500, 0], [1_700_000_001_000, 61.0, 1.5, 3.1, 1510, 1]]


@pytest.fixture
def cnc() -> Profile:
    return load_profile("cnc")


def _write(path: Path, separator: str) -> Path:
    lines = [separator.join(HEADER)] + [separator.join(str(v) for v in row) for row in ROWS]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("line", "expected"), [
    ("datetime;Accelerometer1RMS;Volume Flow RateRMS;anomaly", ";"),
    ("timestamp,temperature,vibration", ","),
    ("timestamp\ttemperature", "\t"),
    ("timestamp", ","),
    ("a;b,c;d", ";"),
])
def test_separator_is_the_headers_most_frequent(line: str, expected: str) -> None:
    assert sniff_separator(line) == expected


def test_both_separators_read_to_the_same_readings(tmp_path: Path, cnc: Profile) -> None:
    frames = [read_labelled_readings(_write(tmp_path / f"{name}.csv", sep), cnc)
              for name, sep in (("comma", ","), ("semicolon", ";"))]

    pd.testing.assert_frame_equal(frames[0].drop(columns="asset_id"),
                                  frames[1].drop(columns="asset_id"))
    assert frames[0]["timestamp"].tolist() == [1_700_000_000_000, 1_700_000_001_000]
    assert frames[1]["vibration"].tolist() == [1.25, 1.5]
    assert frames[1]["label"].tolist() == [0, 1]


def test_skab_file_reads_every_row_with_its_sensors() -> None:
    pump = load_profile("pump")
    raw = read_readings_file(SKAB_CSV)
    frame = read_replay_file(SKAB_CSV, pump, "pump-valve1-1")

    assert len(frame) == len(raw) > 1_000
    assert list(frame.columns) == ["asset_id", "timestamp", *pump.sensor_names]
    assert frame["timestamp"].iloc[0] == 1_583_750_073_000  # 2020-03-09 10:34:33 UTC
    assert frame["timestamp"].is_monotonic_increasing
    assert frame["timestamp"].diff().median() == 1000  # 1 Hz, a few 2-s gaps


def test_replay_records_carry_the_asset_and_the_row_number(cnc: Profile, tmp_path: Path) -> None:
    frame = read_replay_file(_write(tmp_path / "r.csv", ";"), cnc, "cnc-x-r")
    records = list(telemetry_records(frame, cnc, "cnc-x-r"))

    assert [r["event_id"].rsplit("-", 1)[1] for r in records] == ["0", "1"]
    assert {r["asset_id"] for r in records} == {"cnc-x-r"}
    assert records[1]["sensors"]["spindle_speed"] == 1510.0
    assert records[1]["timestamp"] == ROWS[1][0]


def test_default_asset_id_is_unique_per_folder_and_stem(tmp_path: Path) -> None:
    ids = {default_asset_id("pump", tmp_path / folder / "1.csv") for folder in ("valve1", "other")}

    assert ids == {"pump-valve1-1", "pump-other-1"}
    assert default_asset_id("pump", Path("/work/shared/data/skab/valve1/12.csv")) \
        == "pump-valve1-12"


def test_an_unreadable_file_is_a_config_error(tmp_path: Path, cnc: Profile) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_readings_file(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ConfigError, match="cannot read"):
        read_readings_file(tmp_path / "empty.csv")

"""replay reads a file in chunks, numbers rows across them, and reports progress."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from assetwatch.agents.commands.progress import Progress
from assetwatch.agents.commands.replay import (
    count_rows,
    read_replay_file,
    replay_records,
)
from assetwatch.errors import ConfigError
from assetwatch.features.profiles import Profile, load_profile


@pytest.fixture
def cnc() -> Profile:
    return load_profile("cnc")


def _frame(cnc: Profile, rows: int) -> pd.DataFrame:
    data = {"timestamp": [1_700_000_000_000 + 1000 * i for i in range(rows)]}
    data.update({name: [float(i % 7) for i in range(rows)] for name in cnc.sensor_names})
    return pd.DataFrame(data)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_chunks_yield_exactly_the_rows_of_a_whole_read(
        cnc: Profile, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"r{suffix}"
    frame = _frame(cnc, 2_345)
    if suffix == ".csv":
        frame.to_csv(path, sep=";", index=False)
    else:
        frame.to_parquet(path)
    records = list(replay_records(path, cnc, "cnc-x", chunk_rows=500))
    whole = read_replay_file(path, cnc, "cnc-x")
    assert count_rows(path) == len(records) == len(whole) == 2_345
    assert [int(r["event_id"].rsplit("-", 1)[1]) for r in records] == list(range(2_345))
    assert len({r["event_id"].rsplit("-", 1)[0] for r in records}) == 1  # one run id
    assert [r["timestamp"] for r in records] == whole["timestamp"].tolist()


def test_count_rows_handles_a_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(b"timestamp,x\n1,2\n3,4")
    assert count_rows(path) == 2


def test_a_header_only_file_is_a_config_error(cnc: Profile, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("timestamp," + ",".join(cnc.sensor_names) + "\n")
    with pytest.raises(ConfigError, match="no readings"):
        list(replay_records(path, cnc, "cnc-x"))


def test_a_bad_chunk_names_the_file(cnc: Profile, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    frame = _frame(cnc, 30).astype(object)
    frame.loc[25, cnc.sensor_names[0]] = "oops"
    frame.to_csv(path, index=False)
    with pytest.raises(ConfigError, match=r"bad\.csv.*not numeric"):
        list(replay_records(path, cnc, "cnc-x", chunk_rows=10))


def test_progress_is_written_at_most_once_per_interval_and_at_the_end() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress(1_000, out, every_s=1.0, clock=lambda: now[0])
    for step in range(1, 11):
        now[0] = step * 0.4
        progress.update(step * 100)
    progress.finish(1_000)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # at 1.2 s, 2.4 s, 3.6 s, and the final one
    assert lines[0] == "replay: 300/1,000 rows (30%), 250 rows/s, ETA 3s"
    assert lines[-1].startswith("replay: 1,000/1,000 rows (100%)")

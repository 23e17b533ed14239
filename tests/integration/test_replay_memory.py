"""``assetwatch replay`` of a 500,000-row CSV: bounded memory, progress on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assetwatch.agents.kafka.topics import ensure_topics
from assetwatch.agents.local.worker_process import settings_env
from assetwatch.features.profiles import load_profile
from assetwatch.settings import Settings

pytestmark = pytest.mark.integration

ROWS = 500_000
MAX_RSS_MB = 300
REPLAY_AND_REPORT_PEAK = """
import sys
from assetwatch.cli import main
code = main(sys.argv[1:])
print("VmHWM:" + open("/proc/self/status").read().split("VmHWM:")[1].split()[0], file=sys.stderr)
sys.exit(code)
"""
"""The CLI, then its own peak RSS (VmHWM, KiB). Not ru_maxrss: that also counts the pages
shared with this (big) test process between fork and exec."""


def _write_csv(path: Path) -> None:
    cnc = load_profile("cnc")
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"timestamp": 1_700_000_000_000 + 1000 * np.arange(ROWS)})
    for name in cnc.sensor_names:
        frame[name] = rng.uniform(1.0, 2.0, ROWS).round(4)
    frame.to_csv(path, index=False)


def test_replaying_500k_rows_stays_under_300_mb_and_reports_progress(
        broker: tuple[str, str], tmp_path: Path) -> None:
    servers, compat = broker
    settings = Settings(_env_file=None, kafka_bootstrap_servers=servers,  # type: ignore[call-arg]
                        broker_compat=compat, topic_prefix=f"t{uuid.uuid4().hex[:10]}",
                        data_dir=tmp_path)
    ensure_topics(settings)
    path = tmp_path / "big.csv"
    _write_csv(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETWATCH_")}
    env.update(settings_env(settings))
    process = subprocess.Popen(
        [sys.executable, "-c", REPLAY_AND_REPORT_PEAK, "replay", str(path), "--asset-type", "cnc"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate(timeout=280)
    assert process.returncode == 0, stderr[-3000:]
    peak_mb = int(stderr.split("VmHWM:")[1].split()[0]) / 1024
    assert json.loads(stdout.strip().splitlines()[-1])["sent"] == ROWS
    progress = [line for line in stderr.splitlines() if line.startswith("replay: ")]
    assert progress and progress[-1].startswith(f"replay: {ROWS:,}/{ROWS:,} rows (100%)")
    assert any("rows/s, ETA" in line for line in progress[:-1]), stderr[-2000:]
    assert peak_mb < MAX_RSS_MB, f"peak RSS {peak_mb:.0f} MB"
    print(f"replay of {ROWS:,} rows: peak RSS {peak_mb:.0f} MB, {progress[-1]}")

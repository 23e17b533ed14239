"""Ctrl-C on ``assetwatch worker``: a clean stop, exit status 0, and nothing alarming printed.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group: the worker *and* its
scoring helper. The test does the same (the worker runs in a process group of its own), after
the helper has scored readings, and reads everything both processes wrote.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.agents.local.broker import free_port
from assetwatch.features.profiles import load_profile
from assetwatch.settings import Settings
from assetwatch.simulation import TelemetrySimulator
from tests.integration.conftest import WorkerProcess, collect

pytestmark = pytest.mark.integration

STOP_DEADLINE_S = 60.0
NOISE = ("Traceback", "KeyboardInterrupt", "still in queue", "Exception ignored")
"""What a clean Ctrl-C must not print: tracebacks (the helper's among them) and librdkafka's
"terminating with N messages still in queue"."""


def test_ctrl_c_stops_the_worker_and_its_helper_quietly_with_status_0(
    make_settings: Callable[..., Settings], tmp_path: Path,
) -> None:
    settings = make_settings(profiles=("cnc",), metrics_port=free_port(), scoring_process=True)
    worker = WorkerProcess(settings, tmp_path / "worker.log", new_session=True)
    try:
        worker.wait_ready()
        block = TelemetrySimulator(load_profile("cnc"), 3, int(time.time() * 1000) - 60_000,
                                   seed=5).readings(40)
        sent = publish(ReadingPublisher(settings), block)
        collect(settings, [settings.predictions_topic],
                lambda rs: sum(r.kind == "Prediction" for r in rs) >= sent, workers=(worker,))
        started = time.monotonic()
        os.killpg(worker.pid, signal.SIGINT)  # the whole group, as a terminal's Ctrl-C
        try:
            status = worker.process.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the worker did not stop within {STOP_DEADLINE_S}s of Ctrl-C:\n"
                        f"{worker.log_text()[-3000:]}")
        stopped_s = time.monotonic() - started
    finally:
        worker.stop()
    text = worker.log_text()
    print(json.dumps({"test": "worker-ctrl-c", "readings": sent, "status": status,
                      "stop_seconds": round(stopped_s, 1)}))
    assert re.search(r"scoring helper( \d+/\d+)? \d+ started", text), text[-3000:]  # it ran
    assert status == 0, text[-3000:]
    noise = [line for line in text.splitlines() if any(word in line for word in NOISE)]
    assert noise == [], text[-3000:]

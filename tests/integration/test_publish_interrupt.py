"""Paced ``simulate`` and ``replay``: progress on stderr, and Ctrl-C ends them with a summary.

Ctrl-C is how a paced run is meant to end: the verb stops sending, flushes what it sent,
prints its JSON summary (``"interrupted": true``) and exits 0. Every reading it counts must be
on the topic.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO

import pytest

from assetwatch.settings import Settings
from tests.data import SKAB_VALVE1
from tests.integration.conftest import collect, settings_env

pytestmark = pytest.mark.integration

PROGRESS_WITHIN_S = 60.0
"""Start-up (imports, topics) plus the first progress line, due after two seconds."""
STOP_WITHIN_S = 30.0


def _lines(stream: IO[str], into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))
    into.put(None)


def _interrupt_after_progress(settings: Settings, argv: list[str], verb: str
                              ) -> tuple[int, list[str], dict[str, object]]:
    """Run ``assetwatch argv`` and SIGINT it after its second progress line.

    Returns its exit status, its stderr lines and its JSON summary.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETWATCH_")}
    env.update(settings_env(settings))
    process = subprocess.Popen([sys.executable, "-m", "assetwatch", *argv], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    errors: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stderr, errors), daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + PROGRESS_WITHIN_S
        while sum(line.startswith(f"{verb}: ") for line in seen) < 2:
            line = errors.get(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, f"{verb} ended before two progress lines: {seen}"
            seen.append(line)
        process.send_signal(signal.SIGINT)
        process.wait(STOP_WITHIN_S)  # stderr is the thread's: communicate() would read it too
        out = process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    while (line := errors.get(timeout=5)) is not None:
        seen.append(line)
    summary = json.loads(out.strip().splitlines()[-1])
    return process.returncode, seen, summary


@pytest.mark.parametrize("verb", ["simulate", "replay"])
def test_a_paced_run_reports_progress_and_ctrl_c_prints_its_summary_with_status_0(
    make_settings: Callable[..., Settings], verb: str,
) -> None:
    settings = make_settings(profiles=("cnc", "pump"))
    argv = (["simulate", "--profile", "cnc", "--assets", "3", "--paced"] if verb == "simulate"
            else ["replay", str(SKAB_VALVE1 / "1.csv"), "--asset-type", "pump", "--paced"])
    status, stderr, summary = _interrupt_after_progress(settings, argv, verb)
    print(json.dumps({"test": f"{verb}-ctrl-c", "status": status, "summary": summary,
                      "stderr": stderr}))
    assert status == 0, stderr
    assert summary["interrupted"] is True
    assert isinstance(summary["sent"], int) and summary["sent"] > 0
    assert not any("Traceback" in line or "still in queue" in line for line in stderr), stderr
    assert "SIGINT: stopping, flushing what was sent (again to abort)..." in stderr
    progress = [line for line in stderr if line.startswith(f"{verb}: ")]
    assert re.match(rf"{verb}: {summary['sent']:,}[ /]", progress[-1])  # the final count
    records = collect(settings, [settings.telemetry_topic],
                      lambda rs: len(rs) >= summary["sent"], timeout_s=60)
    assert len(records) == summary["sent"]

"""A scoring helper killed, then its replacement killed during start-up (issue 10, defect 2).

The worker must either survive and account for every reading (a prediction each; duplicates
only as re-sends of a retried batch) or exit non-zero within a bound: never hang.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from assetwatch.agents.commands.simulate import SimulationPlan
from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.agents.worker.progress import EXIT_SCORING_LOST
from assetwatch.settings import Settings
from tests.integration.conftest import WorkerProcess, collect
from tests.integration.test_failures import (
    _all_predicted,
    _children,
    _figures,
    _readings,
    _topics,
)

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 20.0
ATTEMPTS = 3


def _helpers(worker: WorkerProcess) -> set[int]:
    """The worker's scoring helpers (spawned children; not the resource tracker)."""
    found = set()
    for pid in _children(worker.pid):
        try:
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
        except OSError:
            continue
    return found


def _kill_next_helper(worker: WorkerProcess, known: set[int], timeout_s: float) -> int | None:
    """SIGKILL the first helper not in ``known`` the moment it shows up (None: worker gone)."""
    deadline = time.monotonic() + timeout_s
    while not worker.exited():
        new = _helpers(worker) - known
        if new:
            pid = min(new)
            os.kill(pid, signal.SIGKILL)
            return pid
        if time.monotonic() > deadline:
            pytest.fail(f"no new scoring helper within {timeout_s}s")
        time.sleep(0.005)  # polling interval, not synchronisation
    return None


def test_a_helper_killed_twice_in_a_row_is_survived_or_the_worker_exits(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    settings = make_settings(profiles=("cnc",), scoring_start_timeout_s=START_TIMEOUT_S,
                             scoring_helper_attempts=ATTEMPTS, scoring_restart_backoff_s=0.2)
    readings = _readings(SimulationPlan(assets=12, count=12 * 250, rate=1e9, seed=31))
    ids = {r["event_id"] for r in readings}
    worker = start_worker(settings)
    quarter = len(readings) // 4
    publish(ReadingPublisher(settings), readings[:quarter])
    collect(settings, _topics(settings), lambda rs: len(rs) >= quarter, workers=(worker,))
    sender = threading.Thread(  # the rest while the helpers die: batches keep coming
        target=lambda: publish(ReadingPublisher(settings), readings[quarter:], rate=500))
    sender.start()
    collect(settings, _topics(settings), lambda rs: len(rs) >= quarter + 100,
            workers=(worker,))
    first = _helpers(worker)
    assert len(first) == settings.scoring_processes  # one is killed, then its replacement
    os.kill(min(first), signal.SIGKILL)
    killed = _kill_next_helper(worker, first, timeout_s=60)  # the replacement, at once
    sender.join()

    bound_s = ATTEMPTS * (START_TIMEOUT_S + 30) + 60
    records = collect(settings, _topics(settings),
                      lambda rs: worker.exited() or _all_predicted(ids)(rs), timeout_s=bound_s)
    if worker.exited():
        assert worker.process.returncode == EXIT_SCORING_LOST  # it said so, and stopped
        print({"test": "helper killed twice", "exit": worker.process.returncode})
        return
    figures = _figures("helper killed twice", len(readings), records, ids)
    assert killed is not None
    assert figures["lost"] == 0 and figures["dead_letters"] == 0
    assert "did not start within" in worker.log_text() or "failed to start" in worker.log_text()

"""The scoring helper process: replaced off the event loop, and given up on loudly.

Real helper processes (spawned as in a worker; no broker is needed to start one or to
process an empty batch). A thread of the test kills helpers with SIGKILL as they appear.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assetwatch.agents.worker.collector import YOUNG_THRESHOLD
from assetwatch.agents.worker.progress import EXIT_SCORING_LOST, AgentProgress
from assetwatch.agents.worker.scoring import ProcessScorer
from assetwatch.errors import ScoringHelperLostError
from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import ScoringModel
from assetwatch.scoring.outcome import BatchReport
from assetwatch.settings import Settings


def _helpers() -> set[int]:
    """Scoring helpers among this process's children (not the resource tracker)."""
    children = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():  # helpers start on a thread
        try:
            children.extend((task / "children").read_text().split())
        except OSError:
            continue
    found = set()
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.add(int(child))
    return found


class Killer(threading.Thread):
    """Kills every scoring helper that appears (the first at once) until stopped."""

    def __init__(self, spare: set[int]) -> None:
        super().__init__(daemon=True)
        self.spare, self.killed = spare, set[int]()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.005):  # polling interval, not synchronisation
            for pid in _helpers() - self.spare - self.killed:
                os.kill(pid, signal.SIGKILL)
                self.killed.add(pid)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path,  # type: ignore[call-arg]
                    kafka_bootstrap_servers="127.0.0.1:9", scoring_start_timeout_s=20.0,
                    scoring_helper_attempts=3, scoring_restart_backoff_s=0.05,
                    scoring_processes=1)


@pytest.fixture
def exits() -> list[int]:
    return []


@pytest.fixture
def scorer(settings: Settings, cnc: Profile, cnc_model: ScoringModel,
           exits: list[int]) -> Iterator[ProcessScorer]:
    scorer = ProcessScorer(settings, {"cnc": cnc}, {"cnc": cnc_model},
                           AgentProgress(exit=exits.append))
    yield scorer
    scorer.close()


async def _process_timing_the_loop(scorer: ProcessScorer) -> tuple[BatchReport, float]:
    """An empty batch's report, and the longest the loop went without running a tick."""
    gaps, last = [0.0], time.monotonic()

    async def tick() -> None:
        nonlocal last
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        report = await scorer.process([], lambda key: None)
    finally:
        ticker.cancel()
    return report, max(gaps)


def test_a_killed_helper_is_replaced_off_the_event_loop(scorer: ProcessScorer) -> None:
    asyncio.run(scorer.process([], lambda key: None))  # the first helper is up
    [first] = scorer.helper_pids
    assert first is not None
    os.kill(first, signal.SIGKILL)

    report, longest_gap = asyncio.run(_process_timing_the_loop(scorer))

    assert report.predictions == 0
    assert scorer.helper_pids[0] not in (None, first)
    assert longest_gap < 0.5, f"the event loop stood still for {longest_gap:.2f}s"


def test_helpers_dying_at_start_up_make_the_worker_exit_within_a_bound(
    settings: Settings, cnc: Profile, cnc_model: ScoringModel, exits: list[int]
) -> None:
    bounded = settings.model_copy(update={"scoring_start_timeout_s": 3.0})
    killer = Killer(spare=_helpers())
    killer.start()
    scorer = ProcessScorer(bounded, {"cnc": cnc}, {"cnc": cnc_model},
                           AgentProgress(exit=exits.append))
    started = time.monotonic()
    try:
        with pytest.raises(ScoringHelperLostError, match="3 failures in a row"):
            asyncio.run(scorer.process([], lambda key: None))
    finally:
        killer.done.set()
        scorer.close()
    assert exits == [EXIT_SCORING_LOST]
    assert len(killer.killed) == 3
    assert time.monotonic() - started < 3 * 3.0 + 5.0


def _helper_threshold() -> int:
    return gc.get_threshold()[0]


def test_the_scoring_helper_runs_tuned(scorer: ProcessScorer) -> None:
    asyncio.run(scorer.process([], lambda key: None))  # the helper is up
    pool = scorer._helpers[0]._pool  # the helper's executor: the only way into its process
    assert pool is not None
    assert pool.submit(_helper_threshold).result(timeout=30) == YOUNG_THRESHOLD

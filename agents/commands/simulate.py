"""``assetwatch simulate``: publish synthetic telemetry, paced in real time or at a rate."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.features.profiles import Profile
from assetwatch.settings import Settings
from assetwatch.simulation import TelemetrySimulator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulationPlan:
    """How many readings, how fast, and which assets fail."""

    assets: int = 10
    count: int | None = None
    """Stop after this many readings (None: run until stopped or ``duration_s``)."""
    duration_s: float | None = None
    rate: float | None = None
    """Readings per second; None means paced: one reading per asset per interval, in real time."""
    failing: int = 0
    """How many assets degrade towards failure, from ``failing_from_s`` on."""
    failing_from_s: float = 0.0
    ramp_s: float = 1200.0
    failure_rate_per_hour: float = 0.0
    """Chance per asset-hour (Poisson rate) that a healthy asset starts degrading."""
    seed: int = 0
    asset_prefix: str | None = None
    history_s: float = 0.0
    """Paced runs only: start this many seconds in the past and publish that history at full
    speed before going live (the demo backfills its assets' calibration this way)."""


def _ticks(plan: SimulationPlan) -> int | None:
    if plan.count is not None:
        return -(-plan.count // plan.assets)
    if plan.duration_s is not None and plan.rate:
        return int(plan.duration_s * plan.rate / plan.assets)
    return None


def plan_simulator(profile: Profile, plan: SimulationPlan, now_s: float) -> TelemetrySimulator:
    """The plan's simulator, starting where its first reading belongs in event time."""
    ticks = _ticks(plan)
    start_ms = int(now_s * 1000)
    if plan.rate and ticks is not None:
        start_ms -= ticks * int(profile.reading_interval_s * 1000)
    elif plan.rate is None:
        start_ms -= int(plan.history_s * 1000)
    return TelemetrySimulator(
        profile, plan.assets, start_ms, seed=plan.seed, failing=range(plan.failing),
        failing_from_s=plan.failing_from_s, ramp_s=plan.ramp_s, asset_prefix=plan.asset_prefix,
        failure_rate_per_hour=plan.failure_rate_per_hour,
    )


def simulated_readings(
    profile: Profile, plan: SimulationPlan, stop: threading.Event, now: Callable[[], float],
    sim: TelemetrySimulator | None = None,
) -> Iterator[dict[str, Any]]:
    """Readings in tick order.

    At a rate, event time runs ahead of the clock, so the run is placed in the past to end
    near now (a known count or duration); paced runs are live, after their ``history_s`` at
    full speed. ``sim``: one built by :func:`plan_simulator`.
    """
    ticks = _ticks(plan)
    sim = sim or plan_simulator(profile, plan, now())
    start_ms = sim.start_ms
    started = now()
    produced, tick = 0, 0
    while not stop.is_set() and (ticks is None or tick < ticks):
        if plan.duration_s is not None and now() - started >= plan.duration_s:
            return
        if plan.rate is None:
            wait = start_ms / 1000 + tick * profile.reading_interval_s - now()
            if wait > 0 and stop.wait(wait):  # paced: the next tick is due in real time
                return
        for reading in sim.readings(1):
            if plan.count is not None and produced >= plan.count:
                return
            produced += 1
            yield reading
        tick += 1


def run_simulation(
    settings: Settings,
    profile: Profile,
    plan: SimulationPlan,
    stop: threading.Event | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Publish the plan's readings; return how many were delivered."""
    publisher = ReadingPublisher(settings)
    stop = stop or threading.Event()
    readings = simulated_readings(profile, plan, stop, time.time)
    sent = publish(publisher, readings, rate=plan.rate, on_progress=on_progress, stop=stop)
    log.info("published %d %s readings to %s", sent, profile.name, publisher.topic)
    return sent

"""The demo's simulated fleet: CNC machines plus a few pumps, one publishing thread per profile.

Each asset calibrates its baseline on its first readings and nothing is judged meanwhile, so
the fleet starts ``history_s`` in the past (calibration and the longest window) and publishes
that history at full speed (same seeded simulator, so the live part simply continues it);
degradations start only when the live part does. The fleet also remembers what it sent, for
the dashboard's sensor charts, and which assets it is degrading, so a viewer can tell hits
from false alarms.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from assetwatch.agents.commands.simulate import SimulationPlan, plan_simulator, simulated_readings
from assetwatch.agents.kafka.producer import ReadingPublisher
from assetwatch.features.profiles import Profile
from assetwatch.settings import Settings
from assetwatch.simulation import TelemetrySimulator

log = logging.getLogger(__name__)

SENSOR_HISTORY = 900
"""Readings kept per asset for the sensor charts."""


@dataclass(frozen=True)
class FleetOptions:
    """The simulated fleet: its size, its failing assets and their ramps."""
    assets: int = 50
    failing: int = 2
    ramp_s: float = 60.0
    failure_rate_per_hour: float = 0.3
    backfill: bool = True
    """Publish each asset's calibration history at full speed before going live."""


def warmup_s(profiles: dict[str, Profile]) -> float:
    """Event-time seconds until every asset has calibrated *and* filled its longest window.

    Calibration (cnc: 900 readings) ends before the 30-minute window is full, and rows with a
    half-filled window drift from the training reference: backfilling both keeps the live
    part free of that false drift alarm (tests/integration/test_demo_drift.py).
    """
    return max(max(p.baseline.calibration_readings * p.reading_interval_s,
                   *(w.length_s for w in p.windows)) for p in profiles.values())


@dataclass
class _Member:
    profile: Profile
    plan: SimulationPlan
    sim: TelemetrySimulator
    publisher: ReadingPublisher | None
    """Released once flushed: a producer left alive would retry a stopped broker noisily."""
    queued: int = 0
    last_ms: int = 0
    delivered: int = 0
    failed: int = 0

    def count(self) -> None:
        publisher = self.publisher  # the publishing thread may release it meanwhile
        if publisher is not None:
            self.delivered, self.failed = publisher.sent, publisher.failed


class Fleet:
    """Publishes until ``stop`` is set; ``queued``/``delivered`` count what it handed over."""

    def __init__(self, settings: Settings, profiles: dict[str, Profile], options: FleetOptions,
                 stop: threading.Event) -> None:
        now_s = time.time()
        self.live_from_ms = int(now_s * 1000)
        self.history_s = warmup_s(profiles) if options.backfill else 0.0
        self.stop = stop
        self.errors: list[Exception] = []
        self.sensor_names = {name: p.sensor_names for name, p in profiles.items()}
        self._sensors: dict[str, deque[tuple[int, list[float]]]] = {}
        sizes = {"cnc": options.assets, "pump": max(2, options.assets // 10)}
        self._members = []
        for seed, (name, count) in enumerate(sizes.items()):
            if name not in profiles:
                continue
            plan = SimulationPlan(
                assets=count, failing=min(options.failing, count), ramp_s=options.ramp_s,
                seed=seed, failure_rate_per_hour=options.failure_rate_per_hour,
                history_s=self.history_s, failing_from_s=self.history_s)
            sim = plan_simulator(profiles[name], plan, now_s)
            self._members.append(_Member(profiles[name], plan, sim, ReadingPublisher(settings)))
        self._threads = [threading.Thread(target=self._publish, args=(m,), daemon=True,
                                          name=f"simulate-{m.profile.name}")
                         for m in self._members]

    def start(self) -> None:
        """Start every simulator thread."""
        for thread in self._threads:
            thread.start()

    def join(self, timeout_s: float) -> None:
        """Wait for the threads, which flush their publishers when ``stop`` is set."""
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def queued(self) -> int:
        """Readings handed to the producers: never fewer than the ones with an outcome."""
        return sum(m.queued for m in self._members)

    @property
    def delivered(self) -> int:
        """Readings the broker acknowledged (final once :meth:`join` returned)."""
        for member in self._members:
            member.count()
        return sum(m.delivered for m in self._members)

    @property
    def failed(self) -> int:
        """Readings whose delivery failed, over every simulator."""
        for member in self._members:
            member.count()
        return sum(m.failed for m in self._members)

    def backfilling(self) -> bool:
        """True while some profile is still publishing its calibration history."""
        return any(m.last_ms < self.live_from_ms - 1000 for m in self._members)

    def degrading(self) -> dict[str, float]:
        """Asset -> progress of its degradation ramp, for the assets degrading now."""
        out: dict[str, float] = {}
        for member in self._members:
            out.update(member.sim.degrading())
        return out

    def asset_count(self) -> int:
        """Assets simulated, every profile."""
        return sum(m.plan.assets for m in self._members)

    def sensors(self, asset: str) -> list[tuple[int, list[float]]]:
        """The readings sent for ``asset`` lately, oldest first."""
        return list(self._sensors.get(asset, ()))

    def _publish(self, member: _Member) -> None:
        publisher = member.publisher
        assert publisher is not None
        try:
            readings = simulated_readings(member.profile, member.plan, self.stop, time.time,
                                          member.sim)
            for reading in readings:
                publisher.send(reading)
                member.queued += 1
                member.last_ms = reading["timestamp"]
                history = self._sensors.get(reading["asset_id"])
                if history is None:
                    history = self._sensors.setdefault(reading["asset_id"],
                                                       deque(maxlen=SENSOR_HISTORY))
                history.append((reading["timestamp"], list(reading["sensors"].values())))
            publisher.flush()
        except Exception as exc:  # the demo's main loop reports it and stops
            log.exception("simulator %s failed", member.profile.name)
            self.errors.append(exc)
        finally:
            member.count()
            member.publisher = None

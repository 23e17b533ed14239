"""The worker's /health document: ready when it holds partitions, serves, and progresses.

Serves: every profile has a model. Progress: batches complete while it lags, and its agent
is not crash-looping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from assetwatch.agents.worker.metrics import Metrics, Totals
from assetwatch.agents.worker.progress import AgentProgress
from assetwatch.agents.worker.status import StreamStatus
from assetwatch.models.bundle import ScoringModel


class StatusSource(Protocol):
    """Where :class:`Health` reads the stream's state (the Faust probe; a fake in tests)."""

    def status(self) -> StreamStatus:
        """The worker's place in the consumer group now."""


def unready_reasons(
    status: StreamStatus, served: Mapping[str, ScoringModel], profiles: Sequence[str]
) -> list[str]:
    """Why the worker is not ready to score; empty when it is."""
    reasons = []
    if status.broker != "connected":
        reasons.append(f"broker {status.broker}")
    if status.rebalancing:
        reasons.append("rebalancing")
    if status.recovering:
        reasons.append("recovering table state")
    if not status.partitions:
        reasons.append("no telemetry partition assigned")
    missing = [profile for profile in profiles if profile not in served]
    if missing:
        reasons.append(f"no model loaded for {', '.join(missing)}")
    return reasons


def stall_reasons(progress: AgentProgress, lag: int, lagging_since: float | None,
                  now: float, stall_s: float) -> list[str]:
    """Why the worker is not making progress; empty when it is.

    Stalled: lag is non-zero and no batch completed for ``stall_s``, counted from the later
    of the last batch and when the lag was first seen (an idle worker that just got
    readings is not stalled). Crash-looping: the agent crashed within ``stall_s``.
    """
    reasons = []
    if progress.fatal is not None:
        reasons.append(progress.fatal)
    if progress.last_crash_s is not None and now - progress.last_crash_s < stall_s:
        ago = now - progress.last_crash_s
        reasons.append(f"agent crashed {progress.crashes} times, last {ago:.0f} s ago "
                       f"({progress.last_crash})")
    since = max((t for t in (progress.last_batch_s, lagging_since) if t is not None),
                default=None)
    if lag > 0 and since is not None and now - since > stall_s:
        reasons.append(f"no batch completed for {now - since:.0f} s while lag is {lag}")
    return reasons


def health_document(
    status: StreamStatus, served: Mapping[str, ScoringModel], profiles: Sequence[str],
    totals: Totals, uptime_s: float, stalled: Sequence[str] = (),
) -> dict[str, Any]:
    """The JSON body of /health."""
    reasons = unready_reasons(status, served, profiles) + list(stalled)
    average = totals.average_failure_probability
    return {
        "status": "not_ready" if reasons else "ready",
        "reasons": reasons,
        "uptime_s": round(uptime_s, 1),
        "broker": {"state": status.broker, "rebalancing": status.rebalancing,
                   "recovering": status.recovering},
        "partitions": list(status.partitions),
        "consumer_lag": {str(partition): lag for partition, lag in sorted(status.lag.items())},
        "models": {profile: {"name": model.name, "version": model.version}
                   for profile, model in sorted(served.items())},
        "totals": {"readings": totals.readings, "predictions": totals.predictions,
                   "dead_letters": totals.dead_letters, "anomalies": totals.anomalies,
                   "skipped_replays": totals.skipped_replays},
        "average_failure_probability": (None if average is None or not math.isfinite(average)
                                        else round(average, 6)),
    }


class Health:
    """Answers /health and /live from the metrics, the served models and the stream."""

    def __init__(
        self, profiles: Sequence[str], metrics: Metrics, stream: StatusSource,
        clock: Callable[[], float] = time.monotonic, progress: AgentProgress | None = None,
        stall_s: float = 60.0,
    ) -> None:
        self._profiles = tuple(profiles)
        self._metrics = metrics
        self._stream = stream
        self._clock = clock
        self._started = clock()
        self._progress = progress or AgentProgress(clock=clock)
        self._stall_s = stall_s
        self._lagging_since: float | None = None
        """When a check first saw lag since it was last 0, for :func:`stall_reasons`."""

    def check(self) -> tuple[bool, dict[str, Any]]:
        """(ready, document) for /health."""
        status = self._stream.status()
        now, lag = self._progress.clock(), sum(status.lag.values())
        if lag == 0:
            self._lagging_since = None
        elif self._lagging_since is None:
            self._lagging_since = now
        stalled = stall_reasons(self._progress, lag, self._lagging_since, now, self._stall_s)
        document = health_document(status, self._metrics.served(), self._profiles,
                                   self._metrics.totals(), self.uptime_s(), stalled)
        return not document["reasons"], document

    def failure(self) -> str | None:
        """Why the worker is exiting (then /live answers 503), or None while it can go on."""
        return self._progress.fatal

    def uptime_s(self) -> float:
        """Seconds since the worker started, reported by /live."""
        return self._clock() - self._started

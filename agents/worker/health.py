"""The worker's /health document: ready when it holds partitions and serves every profile."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from assetwatch.agents.worker.metrics import Metrics, Totals
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


def health_document(
    status: StreamStatus, served: Mapping[str, ScoringModel], profiles: Sequence[str],
    totals: Totals, uptime_s: float,
) -> dict[str, Any]:
    """The JSON body of /health."""
    reasons = unready_reasons(status, served, profiles)
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._profiles = tuple(profiles)
        self._metrics = metrics
        self._stream = stream
        self._clock = clock
        self._started = clock()

    def check(self) -> tuple[bool, dict[str, Any]]:
        """(ready, document) for /health."""
        document = health_document(self._stream.status(), self._metrics.served(),
                                   self._profiles, self._metrics.totals(), self.uptime_s())
        return not document["reasons"], document

    def uptime_s(self) -> float:
        """Seconds since the worker started, reported by /live."""
        return self._clock() - self._started

"""SENSOR_SILENT alerts: an asset of this worker's partitions that stopped reporting.

Silence is about arrival, so it is measured on the worker's monotonic clock, not event
time. Only assets whose telemetry partition this worker holds are watched: an asset whose
partition moved to another worker in a rebalance is forgotten here, not reported silent.
One RAISED record per silence, one RECOVERED record when the asset reports again.
An asset silent for ``silence_forget_s`` is forgotten (no RECOVERED follows; a new report
starts watching it afresh), so a one-off id, a typo say, does not stay in memory for as long
as the partition is held.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from assetwatch.agents.kafka import clients
from assetwatch.agents.kafka.registry import output_wires
from assetwatch.agents.worker.metrics import Metrics
from assetwatch.schemas.codecs import codec
from assetwatch.scoring.alerts import asset_alert_record
from assetwatch.settings import Settings
from assetwatch.text import loggable

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 1.0
"""At shutdown, how long to wait for the last alerts' delivery (the loop is stopping)."""

Send = Callable[[bytes, bytes], None]
"""Publishes one encoded alert: (key, value)."""

Seen = Mapping[str, tuple[int, str, int]]
"""asset id -> (telemetry partition, asset type, event time in ms of its latest reading)."""


@dataclass
class _Asset:
    partition: int
    asset_type: str
    event_ms: int
    arrived: float


class SilenceWatch:
    """Tracks when each asset last reported; raises and clears SENSOR_SILENT alerts."""

    def __init__(self, settings: Settings, metrics: Metrics,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._settings, self._metrics = settings, metrics
        self._after_s = settings.silence_after_s
        self._forget_s = settings.silence_forget_s
        self._clock, self._wall = clock, wall
        self._assets: dict[str, _Asset] = {}
        self._silent: set[str] = set()
        self._assigned: Callable[[], set[int]] | None = None
        self._send: Send | None = None
        self._flush: Callable[[float], int] | None = None
        """The default producer's flush, to serve its last delivery reports when stopping."""
        self._codec = codec("AssetAlert")

    def attach(self, assigned: Callable[[], set[int]], send: Send | None = None) -> None:
        """Where to ask for the telemetry partitions this worker holds now, and how to alert.

        Default ``send``: a producer to the asset-alerts topic.
        """
        self._assigned = assigned
        if send is None:
            producer = clients.producer(self._settings, {"linger.ms": 5})
            self._flush = producer.flush
            topic = self._settings.asset_alerts_topic
            wire = output_wires(self._settings)[topic]

            def send(key: bytes, value: bytes) -> None:
                producer.produce(topic, wire.frame(value), key, headers=wire.headers)
                producer.poll(0)

        self._send = send

    @property
    def watched(self) -> int:
        """Assets tracked now (what this watch holds in memory)."""
        return len(self._assets)

    def seen(self, seen: Seen) -> None:
        """Assets of a processed batch (once per batch)."""
        now = self._clock()
        for asset, (partition, asset_type, event_ms) in seen.items():
            if asset in self._silent:
                self._silent.discard(asset)
                self._publish("RECOVERED", "INFO", asset, asset_type, event_ms)
            self._assets[asset] = _Asset(partition, asset_type, event_ms, now)

    def check(self) -> list[str]:
        """Raise for assets silent longer than ``silence_after_s``; return them."""
        if self._assigned is None or not self._after_s:
            return []
        assigned = self._assigned()
        now = self._clock()
        raised = []
        for asset, state in list(self._assets.items()):
            gone = self._forget_s and now - state.arrived > self._forget_s
            if state.partition not in assigned or gone:
                del self._assets[asset]  # moved away (not ours to watch) or silent for good
                self._silent.discard(asset)
            elif asset not in self._silent and now - state.arrived > self._after_s:
                self._silent.add(asset)
                raised.append(asset)
                self._publish("RAISED", "WARNING", asset, state.asset_type, state.event_ms)
        return raised

    async def run(self) -> None:
        """Check periodically (a quarter of the silence time, at most every 5 s)."""
        if not self._after_s:
            return
        period = min(self._after_s / 4, 5.0)
        try:
            while True:
                await asyncio.sleep(period)  # a timer, not a wait for some other work
                self.check()
        finally:  # serve the delivery reports: a destroyed producer holding them warns
            if self._flush is not None:
                self._flush(FLUSH_TIMEOUT_S)

    def _publish(self, state: str, severity: str, asset: str, asset_type: str,
                 event_ms: int) -> None:
        log.warning("asset %s: sensor silent %s", loggable(asset), state.lower())
        record: dict[str, Any] = asset_alert_record(
            "SENSOR_SILENT", state, severity, asset, asset_type, event_ms,
            int(self._wall() * 1000))
        self._metrics.asset_alert()
        if self._send is not None:
            self._send(asset.encode(), self._codec.encode(record))

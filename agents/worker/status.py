"""The worker's place in its consumer group, as readiness (/health) sees it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StreamStatus:
    """The worker's place in the consumer group, as far as readiness is concerned."""

    broker: str
    """``starting``, ``connected`` (open connection and known group coordinator),
    ``disconnected``, ``unresponsive`` (the event loop did not answer) or ``stopped``."""
    rebalancing: bool = False
    recovering: bool = False
    partitions: tuple[int, ...] = ()
    """Assigned partitions of the telemetry topic."""
    lag: Mapping[int, int] = field(default_factory=dict)
    """Fetch high watermark minus committed offset, where both are known yet."""

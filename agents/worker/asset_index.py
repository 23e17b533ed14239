"""What the query API knows about the assets of this worker's partitions, fed by batch reports.

The scoring helper sends back, per asset of a batch, its newest predictions still encoded
(bytes: cheap to pickle, decoded only when someone asks) and its newest feature row. The
index keeps them in a bounded map per partition, so memory stays flat however many asset
ids pass, and a revoked partition's assets are dropped at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assetwatch.schemas.codecs import codec
from assetwatch.scoring.outcome import RECENT_PREDICTIONS, BatchReport

ASSETS_PER_PARTITION = 20_000
"""Assets an index keeps per partition; the longest unheard-of go first."""


@dataclass
class AssetEntry:
    """One asset's newest outputs, as the scoring helper reported them."""

    partition: int
    profile: str
    recent: deque[bytes] = field(default_factory=lambda: deque(maxlen=RECENT_PREDICTIONS))
    features: tuple[tuple[str, ...], np.ndarray] | None = None

    def predictions(self) -> list[dict[str, Any]]:
        """The kept predictions, newest first, decoded."""
        prediction = codec("Prediction")
        return [prediction.decode(raw) for raw in reversed(self.recent)]

    def copy(self) -> AssetEntry:
        """A snapshot an HTTP thread can read while the loop goes on recording."""
        return AssetEntry(self.partition, self.profile,
                          deque(self.recent, maxlen=RECENT_PREDICTIONS), self.features)

    def feature_values(self) -> dict[str, float]:
        """The newest feature row by feature name (empty before the first)."""
        if self.features is None:
            return {}
        names, row = self.features
        return dict(zip(names, (float(v) for v in row), strict=True))


class AssetIndex:
    """Per partition, asset id -> :class:`AssetEntry`; written on the loop, read by HTTP threads."""

    def __init__(self, per_partition: int = ASSETS_PER_PARTITION) -> None:
        self._per_partition = per_partition
        self._partitions: dict[int, OrderedDict[str, AssetEntry]] = {}
        self._lock = threading.Lock()

    def record(self, report: BatchReport) -> None:
        """Take in a delivered batch's newest predictions and feature rows."""
        with self._lock:
            for asset, encoded in report.recent.items():
                partition, profile, _ = report.seen[asset]
                assets = self._partitions.setdefault(partition, OrderedDict())
                entry = assets.pop(asset, None) or AssetEntry(partition, profile)
                entry.profile = profile
                entry.recent.extend(encoded)
                entry.features = report.latest.get(asset, entry.features)
                assets[asset] = entry  # newest last
                if len(assets) > self._per_partition:
                    assets.popitem(last=False)

    def retain(self, partitions: Iterable[int]) -> None:
        """Forget the partitions this worker no longer holds."""
        keep = set(partitions)
        with self._lock:
            for partition in [p for p in self._partitions if p not in keep]:
                del self._partitions[partition]

    def get(self, asset: str) -> AssetEntry | None:
        """The entry of ``asset`` on any held partition, or None."""
        with self._lock:
            for assets in self._partitions.values():
                if asset in assets:
                    return assets[asset].copy()
        return None

    def entries(self) -> list[tuple[str, AssetEntry]]:
        """Copies of every held asset's entry, safe to read off the lock."""
        with self._lock:
            return [(asset, entry.copy()) for assets in self._partitions.values()
                    for asset, entry in assets.items()]

"""Per-asset failure-risk alerts from a stream of predictions: pure, no broker.

A reading is *flagged* when the model calls it an anomaly or its failure probability reaches
``threshold``. An asset is RAISED when at least ``k`` of its last ``n`` readings are flagged,
and RECOVERED when none of its last ``n`` is; after a raise it cannot raise again for
``cooldown_s`` of event time, so subscribers get one alert per episode, not one per reading.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

CRITICAL_PROBABILITY = 0.8
"""Mean failure probability of the flagged readings from which an alert is CRITICAL."""
CONTRIBUTING = 3


@dataclass(frozen=True)
class AlertConfig:
    """The k-of-n rule, the flag threshold and the cooldown (see the module docstring)."""

    k: int = 3
    n: int = 5
    threshold: float = 0.5
    cooldown_s: float = 300.0

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise ValueError("asset alerts need 1 <= k <= n")


@dataclass(frozen=True)
class AssetTransition:
    """A change of an asset's alert state, with what the alert record reports."""

    state: str
    """RAISED or RECOVERED."""
    severity: str
    flagged: int
    failure_probability: float
    contributing: tuple[str, ...]


@dataclass
class _Asset:
    recent: deque[tuple[bool, float, tuple[str, ...]]]
    raised: bool = False
    last_raise_ms: int | None = None
    hits: int = 0
    """Flagged entries among ``recent``."""


MAX_TRACKED_ASSETS = 10_000
"""Assets whose k-of-n state is kept; the least recently seen beyond it is forgotten, so
one-off ids cannot grow a worker's memory without bound (a forgotten raised alert gets no
RECOVERED; the asset starts afresh if it comes back)."""


@dataclass
class AssetAlertTracker:
    """The k-of-n state of recent assets; feed it predictions in event order per asset."""

    config: AlertConfig
    max_assets: int = MAX_TRACKED_ASSETS
    _assets: dict[str, _Asset] = field(default_factory=dict)

    def flags(self, anomaly: bool, failure_probability: float) -> bool:
        """True when a prediction is flagged: only flagged ones need their top features."""
        return anomaly or failure_probability >= self.config.threshold

    def observe(self, asset: str, event_ms: int, anomaly: bool, failure_probability: float,
                top_features: tuple[str, ...]) -> AssetTransition | None:
        """Fold one prediction into its asset's state; the transition it causes, if any.

        ``top_features`` counts only if the prediction is flagged (see :meth:`flags`).
        """
        config = self.config
        state = self._assets.pop(asset, None)  # re-inserted last: the dict is in LRU order
        if state is None:
            state = _Asset(deque(maxlen=config.n))
            while len(self._assets) >= self.max_assets:
                del self._assets[next(iter(self._assets))]
        self._assets[asset] = state
        flagged = self.flags(anomaly, failure_probability)
        recent = state.recent
        if len(recent) == config.n and recent[0][0]:
            state.hits -= 1  # the oldest entry leaves as this one comes in
        recent.append((flagged, failure_probability, top_features if flagged else ()))
        state.hits += flagged
        if not state.raised:
            if state.hits < config.k or (state.last_raise_ms is not None and event_ms
                                         - state.last_raise_ms < config.cooldown_s * 1000):
                return None
            state.raised, state.last_raise_ms = True, event_ms
            hits = [entry for entry in recent if entry[0]]
            mean = sum(p for _, p, _ in hits) / len(hits)
            counts = Counter(name for _, _, names in hits for name in names)
            return AssetTransition(
                "RAISED", "CRITICAL" if mean >= CRITICAL_PROBABILITY else "WARNING",
                len(hits), mean, tuple(name for name, _ in counts.most_common(CONTRIBUTING)))
        if state.hits:
            return None
        state.raised = False
        return AssetTransition("RECOVERED", "INFO", 0, 0.0, ())

"""Which model version a worker serves for each profile, and which it shadow-scores.

The rules only, no I/O: the registry, the load-and-check, the scorer, the operator alerts
and the metrics are handed in, so the rules are tested with hand-written fakes
(``tests/unit/test_served_models.py``). :mod:`assetwatch.agents.worker.lifecycle` wires them
to MLflow, the broker and the scoring helper.

- The registry is the source of truth: a refresh serves the version the alias names now, so
  a repeated, stale or reordered update changes nothing.
- A version that fails to load or its checks is never served, nor tried again: the current
  one keeps serving and an operator alert says why.
- An unreachable registry keeps the current models.
- With shadow scoring on, the ``@challenger`` is shadow-scored beside the champion, until it
  is removed, promoted (then there is nothing to compare with) or fails its checks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Protocol

from assetwatch.models.bundle import ScoringModel
from assetwatch.redaction import mask_credentials

log = logging.getLogger(__name__)


class Registry(Protocol):
    """The versions the aliases name, and a checked load of one (blocking calls)."""

    def champion(self, profile: str) -> str | None:
        """The version the served alias names, None if unset."""

    def challenger(self, profile: str) -> str | None:
        """The version ``@challenger`` names, None if unset."""

    def load_checked(self, profile: str, version: str) -> ScoringModel:
        """``version``, loaded and checked; raises if it must not be served."""


class Scorer(Protocol):
    """Where the served models take effect, from the next batch on."""

    async def swap(self, model: ScoringModel) -> None:
        """Serve ``model`` for its profile."""

    async def shadow(self, profile: str, model: ScoringModel | None) -> None:
        """Shadow-score ``profile`` with ``model``; None stops shadow scoring."""


class AlertSink(Protocol):
    """Operator alerts: a model swapped in or rejected."""

    def publish(self, kind: str, name: str, version: str, serving: str, reason: str) -> None:
        """Send one alert about ``name`` ``version``; ``serving`` is what is served after."""


class Counters(Protocol):
    """The metrics of the lifecycle."""

    def swapped(self, model: ScoringModel) -> None:
        """``model`` was swapped in."""

    def rejected(self, profile: str) -> None:
        """A candidate of ``profile`` was rejected."""


class ServedModels:
    """The champion and shadow of every profile, kept at what the registry names."""

    def __init__(self, champions: Mapping[str, ScoringModel], registry: Registry,
                 scorer: Scorer, alerts: AlertSink, counters: Counters, *,
                 shadow_scoring: bool, rejected: Iterable[tuple[str, str]] = ()) -> None:
        self._champions = dict(champions)
        self._shadows: dict[str, ScoringModel] = {}
        self._registry, self._scorer = registry, scorer
        self._alerts, self._counters = alerts, counters
        self._shadow_scoring = shadow_scoring
        self._rejected = set(rejected)
        """(profile, version) never to try again: rejected here or at start-up."""

    def champion(self, profile: str) -> ScoringModel:
        """The model served for ``profile``."""
        return self._champions[profile]

    def shadow(self, profile: str) -> ScoringModel | None:
        """The challenger shadow-scored for ``profile``, if any."""
        return self._shadows.get(profile)

    async def refresh(self, profile: str) -> None:
        """Serve the version the alias names now, if it differs and passes the checks.

        With shadow scoring on, shadow-score with the ``@challenger`` likewise.
        """
        try:
            version = await asyncio.to_thread(self._registry.champion, profile)
            challenger = (await asyncio.to_thread(self._registry.challenger, profile)
                          if self._shadow_scoring else None)
        except Exception as exc:  # an unreachable registry must not stop serving
            log.warning("registry check for %s failed, keeping the current model: %s",
                        profile, mask_credentials(str(exc)))
            return
        await self._refresh_champion(profile, version)
        if self._shadow_scoring:
            await self._refresh_shadow(profile, challenger)

    async def _refresh_champion(self, profile: str, version: str | None) -> None:
        current = self._champions[profile]
        if version is None or version == current.version:
            return
        if (profile, version) in self._rejected:
            return
        try:
            model = await asyncio.to_thread(self._registry.load_checked, profile, version)
        except Exception as exc:  # whatever is wrong with it, it is not served
            self._reject(profile, version)
            log.error("rejected %s version %s, still serving %s: %s",
                      current.name, version, current.version, exc)
            self._alerts.publish("MODEL_REJECTED", current.name, version, current.version,
                                 str(exc))
            return
        await self._scorer.swap(model)
        self._champions[profile] = model
        self._counters.swapped(model)
        log.info("now serving %s version %s (was %s)", model.name, version, current.version)
        self._alerts.publish("MODEL_SWAPPED", model.name, version, version,
                             f"swapped in for version {current.version}")

    async def _refresh_shadow(self, profile: str, version: str | None) -> None:
        current = self._shadows.get(profile)
        if version == self._champions[profile].version:
            version = None  # the challenger was promoted: nothing to compare with
        if version == (None if current is None else current.version):
            return
        model = None
        if version is not None and (profile, version) not in self._rejected:
            try:
                model = await asyncio.to_thread(self._registry.load_checked, profile, version)
            except Exception as exc:  # a broken challenger is not shadow-scored either
                self._reject(profile, version)
                log.error("rejected challenger %s version %s: %s",
                          self._champions[profile].name, version, exc)
        if model is None and current is None:
            return
        await self._scorer.shadow(profile, model)
        if model is None:
            self._shadows.pop(profile, None)
            log.info("shadow scoring of %s stopped", profile)
        else:
            self._shadows[profile] = model
            log.info("shadow scoring %s with %s version %s", profile, model.name, version)

    def _reject(self, profile: str, version: str) -> None:
        self._rejected.add((profile, version))
        self._counters.rejected(profile)

"""The served-model rules: swap, reject, keep, shadow, roll back; hand-written fakes, no broker."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import pytest

from assetwatch.agents.worker.served_models import ServedModels
from assetwatch.errors import ModelRejectedError, RegistryUnavailableError
from assetwatch.models.bundle import ModelBundle, ScoringModel

NAME = "assetwatch-cnc"


@dataclasses.dataclass
class FakeRegistry:
    """Aliases as plain dicts; versions in ``broken`` fail their checks."""

    bundle: ModelBundle
    champions: dict[str, str] = dataclasses.field(default_factory=dict)
    challengers: dict[str, str] = dataclasses.field(default_factory=dict)
    broken: set[str] = dataclasses.field(default_factory=set)
    unreachable: bool = False
    loads: list[str] = dataclasses.field(default_factory=list)

    def champion(self, profile: str) -> str | None:
        if self.unreachable:
            raise RegistryUnavailableError("registry down")
        return self.champions.get(profile)

    def challenger(self, profile: str) -> str | None:
        return self.challengers.get(profile)

    def load_checked(self, profile: str, version: str) -> ScoringModel:
        self.loads.append(version)
        if version in self.broken:
            raise ModelRejectedError("checks", f"version {version} scores NaN")
        return ScoringModel(NAME, version, self.bundle)


@dataclasses.dataclass
class FakeScorer:
    swaps: list[str] = dataclasses.field(default_factory=list)
    shadows: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)

    async def swap(self, model: ScoringModel) -> None:
        self.swaps.append(model.version)

    async def shadow(self, profile: str, model: ScoringModel | None) -> None:
        self.shadows.append((profile, None if model is None else model.version))


@dataclasses.dataclass
class FakeAlerts:
    sent: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
    """(kind, version, serving version)."""

    def publish(self, kind: str, name: str, version: str, serving: str, reason: str) -> None:
        assert name == NAME
        self.sent.append((kind, version, serving))


@dataclasses.dataclass
class FakeCounters:
    swapped_in: list[str] = dataclasses.field(default_factory=list)
    rejections: list[str] = dataclasses.field(default_factory=list)

    def swapped(self, model: ScoringModel) -> None:
        self.swapped_in.append(model.version)

    def rejected(self, profile: str) -> None:
        self.rejections.append(profile)


@dataclasses.dataclass
class World:
    served: ServedModels
    registry: FakeRegistry
    scorer: FakeScorer
    alerts: FakeAlerts
    counters: FakeCounters

    def refresh(self) -> None:
        asyncio.run(self.served.refresh("cnc"))


@pytest.fixture
def world(cnc_model: ScoringModel) -> Callable[..., World]:
    """Serving cnc version 1; the registry's champion is version 1 until a test moves it."""

    def make(shadow_scoring: bool = False, rejected: tuple[tuple[str, str], ...] = ()
             ) -> World:
        registry = FakeRegistry(cnc_model.bundle, champions={"cnc": "1"})
        scorer, alerts, counters = FakeScorer(), FakeAlerts(), FakeCounters()
        served = ServedModels({"cnc": ScoringModel(NAME, "1", cnc_model.bundle)}, registry,
                              scorer, alerts, counters, shadow_scoring=shadow_scoring,
                              rejected=rejected)
        return World(served, registry, scorer, alerts, counters)

    return make


def test_a_new_champion_version_swaps_in(world: Callable[..., World]) -> None:
    w = world()
    w.registry.champions["cnc"] = "2"

    w.refresh()

    assert w.served.champion("cnc").version == "2"
    assert w.scorer.swaps == ["2"]
    assert w.counters.swapped_in == ["2"]
    assert w.alerts.sent == [("MODEL_SWAPPED", "2", "2")]


def test_a_failing_version_is_rejected_with_an_alert_and_the_current_keeps_serving(
        world: Callable[..., World]) -> None:
    w = world()
    w.registry.champions["cnc"] = "2"
    w.registry.broken.add("2")

    w.refresh()
    w.refresh()  # not tried again

    assert w.served.champion("cnc").version == "1"
    assert w.scorer.swaps == []
    assert w.registry.loads == ["2"]
    assert w.counters.rejections == ["cnc"]
    assert w.alerts.sent == [("MODEL_REJECTED", "2", "1")]


def test_a_version_rejected_at_start_up_is_not_tried(world: Callable[..., World]) -> None:
    w = world(rejected=(("cnc", "2"),))
    w.registry.champions["cnc"] = "2"

    w.refresh()

    assert (w.served.champion("cnc").version, w.registry.loads, w.alerts.sent) == ("1", [], [])


def test_a_repeated_or_stale_update_changes_nothing(world: Callable[..., World]) -> None:
    w = world()
    w.refresh()  # the registry names what is served
    w.registry.champions["cnc"] = "2"
    w.refresh()
    w.refresh()  # the same update again

    assert w.scorer.swaps == ["2"]
    assert w.registry.loads == ["2"]
    assert len(w.alerts.sent) == 1


def test_an_unset_alias_or_an_unreachable_registry_keeps_the_current_model(
        world: Callable[..., World]) -> None:
    w = world()
    del w.registry.champions["cnc"]
    w.refresh()
    w.registry.champions["cnc"] = "2"
    w.registry.unreachable = True
    w.refresh()

    assert (w.served.champion("cnc").version, w.scorer.swaps, w.alerts.sent) == ("1", [], [])


def test_a_rollback_brings_the_previous_version_back(world: Callable[..., World]) -> None:
    w = world()
    w.registry.champions["cnc"] = "2"
    w.refresh()
    w.registry.champions["cnc"] = "1"
    w.refresh()

    assert w.served.champion("cnc").version == "1"
    assert w.scorer.swaps == ["2", "1"]
    assert w.alerts.sent == [("MODEL_SWAPPED", "2", "2"), ("MODEL_SWAPPED", "1", "1")]


def test_a_challenger_is_shadow_scored_until_it_is_removed(
        world: Callable[..., World]) -> None:
    w = world(shadow_scoring=True)
    w.registry.challengers["cnc"] = "3"
    w.refresh()
    shadowed = w.served.shadow("cnc")
    w.refresh()  # still the same challenger
    del w.registry.challengers["cnc"]
    w.refresh()

    assert shadowed is not None and shadowed.version == "3"
    assert w.served.shadow("cnc") is None
    assert w.scorer.shadows == [("cnc", "3"), ("cnc", None)]
    assert w.served.champion("cnc").version == "1"
    assert w.alerts.sent == []


def test_a_promoted_challenger_stops_shadowing(world: Callable[..., World]) -> None:
    w = world(shadow_scoring=True)
    w.registry.challengers["cnc"] = "3"
    w.refresh()
    w.registry.champions["cnc"] = "3"
    w.refresh()

    assert w.served.champion("cnc").version == "3"
    assert w.served.shadow("cnc") is None
    assert w.scorer.shadows == [("cnc", "3"), ("cnc", None)]


def test_a_broken_challenger_is_rejected_without_an_alert_and_not_shadowed(
        world: Callable[..., World]) -> None:
    w = world(shadow_scoring=True)
    w.registry.challengers["cnc"] = "3"
    w.registry.broken.add("3")
    w.refresh()
    w.refresh()

    assert w.served.shadow("cnc") is None
    assert w.scorer.shadows == []
    assert w.registry.loads == ["3"]
    assert (w.counters.rejections, w.alerts.sent) == (["cnc"], [])


def test_without_shadow_scoring_the_challenger_is_not_read(
        world: Callable[..., World]) -> None:
    w = world(shadow_scoring=False)
    w.registry.challengers["cnc"] = "3"
    w.refresh()

    assert (w.served.shadow("cnc"), w.scorer.shadows, w.registry.loads) == (None, [], [])

"""Factories and shared fixtures of the broker-free unit tests."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from assetwatch.features.profiles import Profile, load_profile
from assetwatch.models.bundle import BatchScores, ModelBundle, ScoringModel
from assetwatch.models.training import TrainingResult, synthetic_readings, train_models
from assetwatch.settings import Settings

NOW_MS = 1_700_003_600_000
"""A whole second, so a clock returning ``NOW_MS / 1000`` gives back exactly NOW_MS."""
CNC_SENSORS = {"temperature": 65.0, "vibration": 2.5, "spindle_speed": 1500.0, "power": 12.0}
MODEL_NAME = "assetwatch-cnc"
MODEL_VERSION = "7"


@pytest.fixture(scope="session")
def cnc() -> Profile:
    return load_profile("cnc")


@pytest.fixture(scope="session")
def pump() -> Profile:
    return load_profile("pump")


@pytest.fixture(scope="session")
def now_ms() -> int:
    """The fixed "now" of every test clock, in epoch milliseconds."""
    return NOW_MS


@pytest.fixture
def make_reading(now_ms: int) -> Callable[..., dict[str, Any]]:
    """A valid cnc TelemetryReading a minute old; ``sensors`` merges, ``drop`` removes sensors."""
    ids = itertools.count()

    def make(
        *, sensors: dict[str, Any] | None = None, drop: tuple[str, ...] = (), **fields: Any
    ) -> dict[str, Any]:
        values = {**CNC_SENSORS, **(sensors or {})}
        for name in drop:
            del values[name]
        reading: dict[str, Any] = {
            "event_id": f"evt-{next(ids)}",
            "asset_id": "cnc-001",
            "asset_type": "cnc",
            "timestamp": now_ms - 60_000,
            "sensors": values,
        }
        reading.update(fields)
        return reading

    return make


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Settings built directly (no environment file), cnc only unless overridden."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"profiles": ("cnc",), **overrides}
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture(scope="session")
def cnc_training(cnc: Profile) -> TrainingResult:
    """A tiny cnc model, trained once for the whole session (about a second)."""
    readings = synthetic_readings(cnc, n_assets=4, hours=0.5, seed=1)
    return train_models(cnc, readings, trees=10, seed=0)


@pytest.fixture(scope="session")
def cnc_model(cnc_training: TrainingResult) -> ScoringModel:
    return ScoringModel(MODEL_NAME, MODEL_VERSION, cnc_training.bundle)


@dataclasses.dataclass(frozen=True)
class ConstantBundle(ModelBundle):
    """A broken model seen in the field: the same failure probability for every row."""

    def score(self, features: np.ndarray) -> BatchScores:
        scores = super().score(features)
        return dataclasses.replace(scores, failure_probability=np.full(len(features), 0.98))


@dataclasses.dataclass(frozen=True)
class NaNAboveVibrationBundle(ModelBundle):
    """A broken model seen in the field: NaN whenever vibration is above 20 mm/s.

    A legal value that realistic reference rows never reach.
    """

    def score(self, features: np.ndarray) -> BatchScores:
        scores = super().score(features)
        high = features[:, self.feature_names.index("vibration")] > 20.0
        return dataclasses.replace(
            scores, failure_probability=np.where(high, np.nan, scores.failure_probability),
            anomaly_score=np.where(high, np.nan, scores.anomaly_score))


def _broken(model: ScoringModel, kind: type[ModelBundle]) -> ScoringModel:
    fields = {f.name: getattr(model.bundle, f.name) for f in dataclasses.fields(model.bundle)}
    return ScoringModel(model.name, "9", kind(**fields))


@pytest.fixture(scope="session")
def constant_model(cnc_model: ScoringModel) -> ScoringModel:
    """The trained cnc model (as version 9) answering 0.98 for every row."""
    return _broken(cnc_model, ConstantBundle)


@pytest.fixture(scope="session")
def nan_above_vibration_model(cnc_model: ScoringModel) -> ScoringModel:
    """The trained cnc model (as version 9) answering NaN above vibration 20 mm/s."""
    return _broken(cnc_model, NaNAboveVibrationBundle)

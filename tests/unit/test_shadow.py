"""Shadow scoring in the processor: the challenger scores beside the champion."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from assetwatch.agents.commands.simulate import SimulationPlan, simulated_readings
from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import ScoringModel
from assetwatch.models.training import synthetic_readings, train_models
from assetwatch.schemas.codecs import codec
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound, Output
from assetwatch.scoring.shadow import ShadowStats
from assetwatch.settings import Settings


@pytest.fixture(scope="module")
def challenger(cnc: Profile) -> ScoringModel:
    result = train_models(cnc, synthetic_readings(cnc, n_assets=4, hours=0.5, seed=2),
                          trees=10, seed=5)
    return ScoringModel("assetwatch-cnc", "9", result.bundle)


def _batch(cnc: Profile, now_ms: int) -> list[Inbound]:
    """200 simulated readings of 4 assets, two of them degrading."""
    encode = codec("TelemetryReading").encode
    plan = SimulationPlan(assets=4, count=200, rate=1e9, failing=2, ramp_s=50, seed=3)
    readings = simulated_readings(cnc, plan, threading.Event(), lambda: now_ms / 1000)
    return [Inbound(r["asset_id"].encode(), encode(r), "t", 0, i)
            for i, r in enumerate(readings)]


def _decoded(records: list[Any]) -> list[dict[str, Any]]:
    return [codec("Prediction").decode(r.value) for r in records]


def test_the_challenger_scores_every_row_and_the_champion_is_unchanged(
    make_settings: Callable[..., Settings], cnc: Profile, cnc_model: ScoringModel,
    challenger: ScoringModel, now_ms: int,
) -> None:
    settings, batch = make_settings(), _batch(cnc, now_ms)
    clock = lambda: now_ms / 1000  # noqa: E731 (a fixed processing time for both runs)
    alone = BatchProcessor(settings, {"cnc": cnc}, {"cnc": cnc_model}.__getitem__, clock)
    shadowed = BatchProcessor(settings, {"cnc": cnc}, {"cnc": cnc_model}.__getitem__, clock,
                              shadows={"cnc": challenger})
    plain = alone.process(batch, {}.get)
    both = shadowed.process(batch, {}.get)

    assert _decoded(both.predictions) == _decoded(plain.predictions)
    shadow = _decoded(both.records[Output.SHADOW_PREDICTION])
    champion = _decoded(both.predictions)
    assert [p["event_id"] for p in shadow] == [p["event_id"] for p in champion]
    assert {p["model_version"] for p in shadow} == {"9"}
    features = np.array([[f["value"] for f in p["top_features"]] for p in shadow])
    assert np.isfinite(features).all()

    stats = both.shadow["cnc"]
    assert (stats.challenger_version, stats.rows) == ("9", len(batch))
    assert stats.champion_flags == sum(p["is_anomaly"] for p in champion)
    assert stats.challenger_flags == sum(p["is_anomaly"] for p in shadow)
    assert stats.agreeing_flags == sum(
        a["is_anomaly"] == b["is_anomaly"] for a, b in zip(champion, shadow, strict=True))
    x = [p["anomaly_score"] for p in champion]
    y = [p["anomaly_score"] for p in shadow]
    assert stats.correlation() == pytest.approx(float(np.corrcoef(x, y)[0, 1]), rel=1e-9)
    assert both.report(0.0).shadow == both.shadow


def test_a_failing_challenger_only_loses_shadow_records(
    make_settings: Callable[..., Settings], cnc: Profile, cnc_model: ScoringModel,
    challenger: ScoringModel, now_ms: int,
) -> None:
    broken = dataclasses.replace(challenger, bundle=dataclasses.replace(
        challenger.bundle, classifier_onnx=b"not onnx"))
    processor = BatchProcessor(make_settings(), {"cnc": cnc}, {"cnc": cnc_model}.__getitem__,
                               lambda: now_ms / 1000, shadows={"cnc": broken})
    outcome = processor.process(_batch(cnc, now_ms), {}.get)
    assert len(outcome.predictions) == 200 and outcome.dead_letters == []
    assert outcome.records[Output.SHADOW_PREDICTION] == [] and outcome.shadow == {}


def test_stats_add_up_and_a_new_challenger_starts_afresh() -> None:
    a = ShadowStats("2", 2, 1, 0, 1, (1.0, 2.0, 1.0, 2.0, 1.0))
    assert a.plus(a) == ShadowStats("2", 4, 2, 0, 2, (2.0, 4.0, 2.0, 4.0, 2.0))
    b = ShadowStats("3", 1, 0, 0, 1, (0.0, 0.0, 0.0, 0.0, 0.0))
    assert a.plus(b) == b
    assert b.correlation() is None

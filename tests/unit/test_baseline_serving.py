"""Baselines in the batch core: calibrating predictions, no alerts while calibrating, resets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import BatchScores, ScoringModel
from assetwatch.schemas.codecs import codec
from assetwatch.scoring.outcome import Outcome
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound, Output
from assetwatch.settings import Settings

TOPIC = "assetwatch.telemetry"
ASSET = "cnc-007"


@dataclass(frozen=True)
class CertainFailure:
    """A bundle sure that every row fails: any alert it could raise, it raises."""

    feature_names: tuple[str, ...]
    reference: None = None

    def score(self, features: np.ndarray) -> BatchScores:
        n = len(features)
        return BatchScores(anomaly_score=np.ones(n), is_anomaly=np.ones(n, bool),
                           failure_probability=np.ones(n),
                           top_index=np.zeros((n, 3), np.int64), top_z=np.zeros((n, 3)))


@pytest.fixture
def processor(make_settings: Callable[..., Settings], cnc: Profile,
              now_ms: int) -> BatchProcessor:
    model: Any = ScoringModel("assetwatch-cnc", "1", CertainFailure(cnc.feature_names))  # type: ignore[arg-type]
    return BatchProcessor(make_settings(), {"cnc": cnc}, lambda _: model,
                          clock=lambda: now_ms / 1000)


def _readings(cnc: Profile, now_ms: int, n: int, shift_from: int) -> list[bytes]:
    """One asset at 1 Hz ending a minute ago; vibration far up from ``shift_from`` on."""
    rng = np.random.default_rng(0)
    start = now_ms - 60_000 - 1000 * n
    out = []
    for i in range(n):
        sensors = {s.name: s.baseline + s.noise * float(rng.standard_normal())
                   for s in cnc.sensors}
        if i >= shift_from:
            sensors["vibration"] += 30 * next(s.noise for s in cnc.sensors
                                              if s.name == "vibration")
        out.append(codec("TelemetryReading").encode({
            "event_id": f"e-{i}", "asset_id": ASSET, "asset_type": "cnc",
            "timestamp": start + 1000 * i, "sensors": sensors}))
    return out


def _run(processor: BatchProcessor, values: list[bytes], store: dict[bytes, bytes],
         first_offset: int) -> Outcome:
    batch = [Inbound(ASSET.encode(), v, TOPIC, 0, first_offset + i)
             for i, v in enumerate(values)]
    outcome = processor.score(processor.prepare(batch, store.get))
    store.update({asset: raw for asset, (_, raw) in outcome.states.items()})
    return outcome


def _predictions(outcome: Outcome) -> list[dict[str, Any]]:
    return [codec("Prediction").decode(p.value) for p in outcome.predictions]


def test_calibrating_readings_say_so_raise_nothing_and_later_shifts_are_flagged(
    processor: BatchProcessor, cnc: Profile, now_ms: int
) -> None:
    n_calibration = cnc.baseline.calibration_readings
    values = _readings(cnc, now_ms, n_calibration + 300, shift_from=n_calibration + 100)
    store: dict[bytes, bytes] = {}

    calibration = _run(processor, values[:n_calibration], store, 0)
    judged = _run(processor, values[n_calibration:], store, n_calibration)

    during = _predictions(calibration)
    assert len(during) == n_calibration and calibration.records[Output.ASSET_ALERT] == []
    assert all(p["calibrating"] and not p["is_anomaly"] for p in during)
    after = _predictions(judged)
    assert not any(p["calibrating"] for p in after)
    assert not any(p["is_anomaly"] for p in after[:100])
    assert all(p["is_anomaly"] for p in after[-100:])
    assert judged.anomalies == sum(p["is_anomaly"] for p in after)
    # the certain failure, now that it is judged
    assert len(judged.records[Output.ASSET_ALERT]) == 1


def _calibrated(processor: BatchProcessor, cnc: Profile, now_ms: int
                ) -> tuple[list[bytes], dict[bytes, bytes], bytes]:
    """20 readings after a finished calibration, the stored state and a reset order."""
    n_calibration = cnc.baseline.calibration_readings
    values = _readings(cnc, now_ms, n_calibration + 20, shift_from=10**9)
    store: dict[bytes, bytes] = {}
    _run(processor, values[:n_calibration], store, 0)
    reset = codec("BaselineReset").encode({"asset_id": ASSET, "asset_type": "cnc",
                                           "requested_timestamp": now_ms, "reason": "repair"})
    return values[n_calibration:], store, reset


def test_a_reset_order_makes_the_asset_calibrate_afresh_and_is_not_reapplied(
    processor: BatchProcessor, cnc: Profile, now_ms: int
) -> None:
    n_calibration = cnc.baseline.calibration_readings
    after, store, reset = _calibrated(processor, cnc, now_ms)

    outcome = _run(processor, [reset, *after], store, n_calibration)
    replayed = _run(processor, [reset], store, n_calibration)

    assert outcome.dead_letters == []
    assert all(p["calibrating"] for p in _predictions(outcome))
    assert replayed.states == {}


def test_a_reset_within_a_batch_takes_effect_from_its_place_in_it(
    processor: BatchProcessor, cnc: Profile, now_ms: int
) -> None:
    """The readings before the order are judged against the old baseline, those after calibrate."""
    after, store, reset = _calibrated(processor, cnc, now_ms)

    outcome = _run(processor, [*after[:12], reset, *after[12:]], store,
                   cnc.baseline.calibration_readings)

    assert [p["calibrating"] for p in _predictions(outcome)] == [False] * 12 + [True] * 8
    assert outcome.dead_letters == []


def test_a_reset_for_an_unserved_profile_is_a_dead_letter(
    processor: BatchProcessor, now_ms: int
) -> None:
    reset = codec("BaselineReset").encode({"asset_id": ASSET, "asset_type": "loom",
                                           "requested_timestamp": now_ms, "reason": None})

    outcome = _run(processor, [reset], {}, 0)

    letters = [codec("DeadLetter").decode(d.value) for d in outcome.dead_letters]
    assert [d["reason"] for d in letters] == ["unknown_asset_type"]

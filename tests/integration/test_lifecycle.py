"""Model lifecycle on a real broker and registry: promote, reject, roll back, in two workers."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from assetwatch.agents.commands.simulate import SimulationPlan, simulated_readings
from assetwatch.agents.kafka.consumer import Record, RecordReader
from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.agents.worker.lifecycle import announce
from assetwatch.cli import main
from assetwatch.features.profiles import load_profile
from assetwatch.models.registry import (
    CHALLENGER,
    SERVING_DIR,
    RegistryConfig,
    promote,
    register,
    rollback,
)
from assetwatch.models.training import TrainingResult, synthetic_readings, train_models
from assetwatch.settings import Settings
from tests.integration.conftest import (
    ReadingStream,
    WorkerProcess,
    collect,
    settings_env,
)

pytestmark = pytest.mark.integration

PROFILE = "cnc"


def _trained(seed: int) -> TrainingResult:
    profile = load_profile(PROFILE)
    return train_models(profile, synthetic_readings(profile, 4, 0.5, seed), trees=10, seed=seed)


def _readings(count: int, seed: int, prefix: str) -> list[dict[str, Any]]:
    plan = SimulationPlan(assets=24, count=count, rate=1e9, seed=seed, asset_prefix=prefix)
    return list(simulated_readings(load_profile(PROFILE), plan, threading.Event(), time.time))


def _alerts(records: list[Record], kind: str, version: str) -> set[str]:
    """Workers that raised ``kind`` for ``version``."""
    return {r.fields["worker"] for r in records
            if r.kind == "OperatorAlert" and r.fields["kind"] == kind
            and r.fields["version"] == version}


def _predictions(records: list[Record], readings: list[dict[str, Any]]) -> list[Record]:
    ids = {r["event_id"] for r in readings}
    return [r for r in records if r.kind == "Prediction" and r.fields["event_id"] in ids]


def _answered(settings: Settings, readings: list[dict[str, Any]],
              workers: tuple[WorkerProcess, ...]) -> list[Record]:
    """Predictions of ``readings``, once every one of them has one; exactly one each."""
    ids = {r["event_id"] for r in readings}
    records = collect(
        settings, [settings.predictions_topic, settings.dead_letter_topic],
        lambda rs: ids <= {r.fields.get("event_id") for r in rs}, workers=workers)
    assert [r.fields["reason"] for r in records
            if r.kind == "DeadLetter" and r.fields["event_id"] in ids] == []
    answered = _predictions(records, readings)
    assert sorted(r.fields["event_id"] for r in answered) == sorted(ids)  # none twice
    return answered


def _wait_for_alerts(settings: Settings, kind: str, version: str,
                     workers: tuple[WorkerProcess, ...]) -> None:
    collect(settings, [settings.operator_alerts_topic],
            lambda rs: len(_alerts(rs, kind, version)) == len(workers), workers=workers)


def _cli(monkeypatch: pytest.MonkeyPatch, settings: Settings,
         capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    """Run an ``assetwatch`` verb as a user would, with the test's settings; its JSON line."""
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    assert main(list(argv)) == 0
    return dict(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))


def test_promote_reject_and_rollback_reach_every_worker_without_a_restart(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Its own registry, so moving aliases does not touch the other tests' models. The
    # periodic registry check is pushed out of the test's reach: updates must arrive by topic.
    settings = make_settings(data_dir=tmp_path / "registry", profiles=(PROFILE,),
                             model_check_interval_s=3600)
    config = RegistryConfig.from_settings(settings)
    v1 = register(config, _trained(seed=21))
    v2 = register(config, _trained(seed=22), alias=CHALLENGER)
    good = _trained(seed=23).bundle
    reordered = dataclasses.replace(good, feature_names=tuple(reversed(good.feature_names)))
    v3 = register(config, TrainingResult(reordered, {}, {}), alias="broken")

    workers = (start_worker(settings), start_worker(settings))
    warmup = _readings(480, seed=1, prefix="warm")
    publish(ReadingPublisher(settings), warmup)
    assert {r.fields["model_version"] for r in _answered(settings, warmup, workers)} == {v1}

    # Promote while readings flow: they flow before the promotion and on past both swaps.
    stream = ReadingStream(settings, _readings(48_000, seed=2, prefix="flow"), rate=400)
    stream.until_sent(200, workers)
    promoted = _cli(monkeypatch, settings, capsys, "promote", "--profile", PROFILE)
    assert (promoted["version"], promoted["previous"]) == (v2, v1)
    _wait_for_alerts(settings, "MODEL_SWAPPED", v2, workers)
    stream.until_sent(stream.sent + 200, workers)
    flowing = stream.stop()
    after = _readings(480, seed=3, prefix="after")
    publish(ReadingPublisher(settings), after)
    answered = _answered(settings, flowing, workers)
    assert {r.fields["model_version"] for r in answered} == {v1, v2}  # swapped mid-stream
    by_partition: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for record in answered:
        by_partition[record.partition].append((record.offset, record.fields["model_version"]))
    for partition, scored in by_partition.items():  # once v2 scored, v1 never again
        versions = [version for _, version in sorted(scored)]
        assert versions == sorted(versions, key=[v1, v2].index), partition
    assert {r.fields["model_version"] for r in _answered(settings, after, workers)} == {v2}

    # A version that cannot serve the profile is rejected; v2 keeps serving.
    announce(settings, promote(config, PROFILE, v3), "PROMOTE")
    _wait_for_alerts(settings, "MODEL_REJECTED", v3, workers)
    rejected = _readings(480, seed=4, prefix="rejected")
    publish(ReadingPublisher(settings), rejected)
    assert {r.fields["model_version"] for r in _answered(settings, rejected, workers)} == {v2}

    # Rolling back twice: to v2 (already served), then to v1.
    assert rollback(config, PROFILE).version == v2
    move = _cli(monkeypatch, settings, capsys, "rollback", "--profile", PROFILE)
    assert (move["version"], move["previous"]) == (v1, v2)
    _wait_for_alerts(settings, "MODEL_SWAPPED", v1, workers)
    back = _readings(480, seed=5, prefix="back")
    publish(ReadingPublisher(settings), back)
    assert {r.fields["model_version"] for r in _answered(settings, back, workers)} == {v1}


def test_shadow_scoring_publishes_the_challengers_predictions_beside_the_champions(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
) -> None:
    # A challenger registered while the worker runs is picked up by the periodic check.
    settings = make_settings(data_dir=tmp_path / "registry", profiles=(PROFILE,),
                             shadow_scoring=True, model_check_interval_s=1)
    config = RegistryConfig.from_settings(settings)
    v1 = register(config, _trained(seed=21))
    worker = start_worker(settings)
    warmup = _readings(240, seed=6, prefix="warm")
    publish(ReadingPublisher(settings), warmup)
    _answered(settings, warmup, (worker,))
    v2 = register(config, _trained(seed=22), alias=CHALLENGER)
    topics = [settings.predictions_topic, settings.shadow_predictions_topic]

    # Keep readings coming until the worker shadow-scores (its next registry check).
    flowing: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    with RecordReader(settings, [topics[1]]) as reader:
        while not reader.poll(0.5):
            assert time.monotonic() < deadline, "no shadow prediction within 120 s"
            assert worker.process.poll() is None, worker.log_text()[-3000:]
            chunk = _readings(24, seed=100 + len(flowing), prefix=f"flow{len(flowing)}")
            publish(ReadingPublisher(settings), chunk)
            flowing += chunk
    after = _readings(480, seed=7, prefix="after")
    publish(ReadingPublisher(settings), after)
    ids = {r["event_id"] for r in after}
    sent = warmup + flowing + after

    def complete(rs: list[Record]) -> bool:
        on = {topic: {r.fields["event_id"] for r in rs if r.topic == topic} for topic in topics}
        return ids <= on[topics[1]] and {r["event_id"] for r in sent} <= on[topics[0]]

    records = collect(settings, topics, complete, workers=(worker,))

    champion = [r.fields for r in records if r.topic == topics[0]]
    shadow = [r.fields for r in records if r.topic == topics[1]]
    assert {p["model_version"] for p in champion} == {v1}
    assert {p["model_version"] for p in shadow} == {v2}
    assert sorted(p["event_id"] for p in champion) == sorted(r["event_id"] for r in sent)
    assert sorted(p["event_id"] for p in shadow if p["event_id"] in ids) == sorted(ids)


def test_a_worker_started_on_a_rejected_champion_serves_the_previous_good_version(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
) -> None:
    # @champion names v3 (its detector graph corrupt); before it v2 (features reordered),
    # before that v1 (good). Both were promoted unchecked, as a champion set by hand would be.
    settings = make_settings(data_dir=tmp_path / "registry", profiles=(PROFILE,),
                             model_check_interval_s=3600)
    config = RegistryConfig.from_settings(settings)
    v1 = register(config, _trained(seed=21))
    good = _trained(seed=22).bundle
    reordered = dataclasses.replace(good, feature_names=tuple(reversed(good.feature_names)))
    v2 = register(config, TrainingResult(reordered, {}, {}), alias=CHALLENGER)
    v3 = register(config, _trained(seed=23), alias=CHALLENGER)
    promote(config, PROFILE, v2)
    promote(config, PROFILE, v3)
    uri = MlflowClient(config.tracking_uri, config.tracking_uri) \
        .get_model_version_download_uri(config.model_name(PROFILE), v3)
    (Path(uri.removeprefix("file://")) / "artifacts" / SERVING_DIR / "detector.onnx") \
        .write_bytes(b"\x00" * 200)

    worker = start_worker(settings)
    readings = _readings(480, seed=8, prefix="start")
    publish(ReadingPublisher(settings), readings)

    assert {r.fields["model_version"] for r in _answered(settings, readings, (worker,))} == {v1}
    alerts = collect(settings, [settings.operator_alerts_topic],
                     lambda rs: {v2, v3} <= {r.fields["version"] for r in rs}, workers=(worker,))
    reasons = {r.fields["version"]: r.fields["reason"] for r in alerts
               if r.fields["kind"] == "MODEL_REJECTED"}
    assert reasons[v3].startswith("at start-up: load: detector.onnx does not match")
    assert reasons[v2].startswith("at start-up: features: ")
    assert {r.fields["serving_version"] for r in alerts} == {v1}
    assert f"serving {config.model_name(PROFILE)} version {v1} from the registry instead of " \
           f"{v3}, {v2} (rejected)" in worker.log_text()

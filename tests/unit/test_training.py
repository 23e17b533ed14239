"""Training from labelled files: reading, the time split, the search and the logged run."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.models import get_model_info
from mlflow.tracking import MlflowClient

from assetwatch import cli
from assetwatch.errors import ConfigError
from assetwatch.features.profiles import Profile
from assetwatch.features.readings import read_labelled_readings
from assetwatch.models.reference import FeatureReference
from assetwatch.models.registry import (
    CHALLENGER,
    PLOTS_DIR,
    REFERENCE_FILE,
    TRIALS_FILE,
    RegistryConfig,
    register,
)
from assetwatch.models.search import CONTAMINATIONS
from assetwatch.models.training import TrainingResult, time_split, train_models
from assetwatch.retrain import TrainRequest, run_training
from assetwatch.settings import Settings
from tests.data import SKAB_VALVE1

SKAB_CSV = SKAB_VALVE1 / "1.csv"
SKAB_ROWS = slice(250, None)
"""895 rows; anomalies (rows 572-973 of the file) fall in both parts of the time split."""
TRIALS = 4
SEARCH_PARAMS = ("n_estimators", "max_depth", "min_samples_leaf")


@pytest.fixture(scope="module")
def skab_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A slice of SKAB valve1/1.csv, in SKAB's own format (``;``, datetime, anomaly)."""
    lines = SKAB_CSV.read_text().splitlines()
    path = tmp_path_factory.mktemp("skab") / "valve1-1.csv"
    path.write_text("\n".join([lines[0], *lines[1:][SKAB_ROWS]]) + "\n")
    return path


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> RegistryConfig:
    """One SQLite registry for the module (creating its tables takes seconds)."""
    root = tmp_path_factory.mktemp("registry")
    return RegistryConfig(tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                          artifact_root=root / "artifacts", local_dir=root / "models")


@pytest.fixture(scope="module")
def searched(skab_csv: Path, pump: Profile) -> TrainingResult:
    readings = read_labelled_readings(skab_csv, pump, label_column="anomaly")
    return train_models(pump, readings, trees=6, seed=3, trials=TRIALS)


def test_skab_csv_reads_with_its_anomaly_column_as_labels(skab_csv: Path, pump: Profile) -> None:
    readings = read_labelled_readings(skab_csv, pump, label_column="anomaly")

    assert list(readings.columns) == ["asset_id", "timestamp", *pump.sensor_names, "label"]
    # Unique per path: <profile>-<folder>-<stem>
    assert len(readings) == 895
    assert set(readings["asset_id"]) == {f"pump-{skab_csv.parent.name}-valve1-1"}
    assert readings["timestamp"].is_monotonic_increasing
    assert readings["timestamp"].iloc[1] - readings["timestamp"].iloc[0] == 1000
    assert set(readings["label"]) == {0, 1}


def test_parquet_keeps_asset_ids_epoch_ms_and_drops_what_serving_rejects(
    tmp_path: Path, pump: Profile
) -> None:
    frame = pd.DataFrame({name: [s.baseline] * 3 for name, s in
                          zip(pump.sensor_names, pump.sensors, strict=True)})
    frame.loc[2, "current"] = 1e6  # out of range: a worker dead-letters it
    frame.insert(0, "timestamp", [1_700_000_000_000, 1_700_000_001_000, 1_700_000_002_000])
    frame.insert(0, "asset_id", ["p-1", "p-2", "p-1"])
    frame["failed"] = [0, 1, 0]
    frame.to_parquet(tmp_path / "readings.parquet")

    readings = read_labelled_readings(tmp_path / "readings.parquet", pump, "failed")

    assert readings["asset_id"].tolist() == ["p-1", "p-2"]
    assert readings["timestamp"].tolist() == [1_700_000_000_000, 1_700_000_001_000]
    assert readings["label"].tolist() == [0, 1]


@pytest.mark.parametrize(("change", "label", "message"), [
    (lambda f: f, "label", "no label column 'label'"),
    (lambda f: f.drop(columns=["Current"]), "anomaly", "no column for pump sensor current"),
    (lambda f: f.assign(anomaly=2), "anomaly", r"must hold 0 or 1, found \[2"),
    (lambda f: f.drop(columns=["datetime"]), "anomaly", "no time column"),
    (lambda f: f.assign(Pressure="high"), "anomaly", "'Pressure' is not numeric"),
])
def test_unusable_files_raise_config_errors_naming_the_problem(
    skab_csv: Path, pump: Profile, tmp_path: Path, change: Any, label: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    change(pd.read_csv(skab_csv, sep=";")).to_csv(path, sep=";", index=False)

    with pytest.raises(ConfigError, match=message):
        read_labelled_readings(path, pump, label)


def test_missing_file_is_a_config_error(tmp_path: Path, pump: Profile) -> None:
    with pytest.raises(ConfigError, match="cannot read readings"):
        read_labelled_readings(tmp_path / "none.csv", pump)


def test_time_split_validates_on_the_newest_readings_never_shuffled() -> None:
    timestamps = np.random.default_rng(0).permutation(100) * 1000
    labels = (timestamps >= 40_000).astype(int)
    split = time_split(timestamps[:, None].astype(float), labels, timestamps)

    assert split.x_train[:, 0].tolist() == [i * 1000.0 for i in range(75)]
    assert split.x_val[:, 0].tolist() == [i * 1000.0 for i in range(75, 100)]
    assert (split.train_end_ms, split.validation_start_ms) == (74_000, 75_000)
    with pytest.raises(ConfigError, match="only label 0"):
        time_split(timestamps[:, None].astype(float), labels * 0, timestamps)


def test_search_runs_its_trials_and_keeps_the_best_by_validation_f1(
    searched: TrainingResult,
) -> None:
    trials = searched.trials
    best = max(trials, key=lambda t: t.f1)  # the first of equals, as Optuna

    assert [t.number for t in trials] == list(range(TRIALS))
    assert {k: searched.params[k] for k in SEARCH_PARAMS} == best.params
    assert searched.metrics["search_best_f1"] == best.f1
    assert all(3 <= t.params["n_estimators"] <= 12 for t in trials)  # around trees=6
    assert searched.params["contamination"] in CONTAMINATIONS
    assert searched.params["train_end_ms"] <= searched.params["validation_start_ms"]
    assert searched.metrics["samples"] == 895
    assert searched.metrics["validation_positives"] > 0 < searched.metrics["train_positives"]


def test_search_is_deterministic_for_a_seed(skab_csv: Path, pump: Profile,
                                            searched: TrainingResult) -> None:
    readings = read_labelled_readings(skab_csv, pump, label_column="anomaly")
    again = train_models(pump, readings, trees=6, seed=3, trials=2)

    assert [t.params for t in again.trials] == [t.params for t in searched.trials[:2]]
    assert [t.f1 for t in again.trials] == [t.f1 for t in searched.trials[:2]]


def _client(config: RegistryConfig) -> MlflowClient:
    return MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)


def test_a_run_registered_without_plots_keeps_everything_else(
    config: RegistryConfig, searched: TrainingResult
) -> None:
    version = register(config, searched, alias=CHALLENGER, plots=False)  # as bootstraps do
    client = _client(config)
    run_id = str(client.get_model_version("assetwatch-pump", version).run_id)
    assert client.list_artifacts(run_id, PLOTS_DIR) == []
    assert REFERENCE_FILE in {a.path for a in client.list_artifacts(run_id)}
    assert TRIALS_FILE in {a.path for a in client.list_artifacts(run_id, "search")}


def test_the_registered_run_has_metrics_plots_reference_and_trials(
    config: RegistryConfig, searched: TrainingResult
) -> None:
    version = register(config, searched, alias=CHALLENGER)
    client = _client(config)
    run_id = str(client.get_model_version("assetwatch-pump", version).run_id)
    run = client.get_run(run_id)

    assert {"f1", "precision", "recall", "roc_auc", "pr_auc", "samples", "train_rows",
            "validation_rows", "feature_count", "training_seconds"} <= set(run.data.metrics)
    assert run.data.metrics["feature_count"] == len(searched.bundle.feature_names)
    plots = {a.path for a in client.list_artifacts(run_id, PLOTS_DIR)}
    assert plots == {f"{PLOTS_DIR}/{name}" for name in
                     ("confusion_matrix.png", "roc_curve.png", "feature_importance.png")}
    local = Path(client.download_artifacts(run_id, ""))
    for path in plots:
        assert (local / path).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    signature = get_model_info(f"models:/assetwatch-pump/{version}").signature
    assert signature.inputs.input_names() == list(searched.bundle.feature_names)

    reference = FeatureReference.from_json(json.loads((local / REFERENCE_FILE).read_text()))
    expected = searched.bundle.reference
    assert expected is not None and reference.names == expected.names
    np.testing.assert_array_equal(reference.inner_edges, expected.inner_edges)
    np.testing.assert_array_equal(reference.frequencies, expected.frequencies)

    logged = json.loads((local / TRIALS_FILE).read_text())["trials"]
    best = {k: str(v) for k, v in max(logged, key=lambda t: t["f1"])["params"].items()}
    assert {k: run.data.params[k] for k in SEARCH_PARAMS} == best
    assert best in [{k: str(v) for k, v in t["params"].items()} for t in logged]
    steps = client.get_metric_history(run_id, "trial_f1")
    assert sorted(m.step for m in steps) == list(range(TRIALS))


def test_cli_trains_from_a_file_and_registers_a_challenger(
    skab_csv: Path, config: RegistryConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the checkout
    monkeypatch.setenv("ASSETWATCH_MLFLOW_TRACKING_URI", config.tracking_uri)
    monkeypatch.setenv("ASSETWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ASSETWATCH_TRAIN_TREES", "4")
    argv = ["train", "--profile", "pump", "--input", str(skab_csv), "--label-column",
            "anomaly", "--trials", "1"]

    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    challenger = _client(config).get_model_version_by_alias("assetwatch-pump", CHALLENGER)
    assert printed["pump"]["version"] == str(challenger.version)
    assert printed["pump"]["alias"] == CHALLENGER
    assert printed["pump"]["samples"] == 895
    assert cli.main(["train", "--input", str(skab_csv)]) == 1  # two served profiles


@pytest.mark.parametrize("flags", [["--every", "0"], ["--trials", "-1"]])
def test_cli_refuses_a_non_positive_schedule_and_negative_trials(flags: list[str]) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", *flags])


def test_schedule_trains_promotes_and_stops_when_interrupted_while_waiting(
    skab_csv: Path, config: RegistryConfig, make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(mlflow_tracking_uri=config.tracking_uri, train_trees=4,
                             data_dir=config.local_dir.parent)
    handlers: list[Any] = []
    monkeypatch.setattr(signal, "signal", lambda *a: handlers.append(a))
    emitted: list[dict[str, Any]] = []
    promoted: list[tuple[str, str]] = []
    waits: list[float] = []

    def interrupted(seconds: float) -> None:
        waits.append(seconds)
        raise KeyboardInterrupt  # Ctrl-C (or SIGTERM) while waiting for the next round

    request = TrainRequest(("pump",), (skab_csv,), "anomaly", every_h=0.5)
    status = run_training(settings, request, lambda *move: promoted.append(move),
                          emitted.append, sleep=interrupted)

    assert (status, waits) == (0, [1800.0])
    assert [e["pump"]["version"] for e in emitted] == [promoted[0][1]]
    assert promoted == [("pump", promoted[0][1])]
    assert handlers == [(signal.SIGTERM, signal.default_int_handler)]

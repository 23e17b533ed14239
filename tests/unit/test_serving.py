"""Serving-side model loading on a real (SQLite-backed) MLflow store.

Checked promotion, the start-up fallback chain, and loading that never unpickles.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pytest
from mlflow.tracking import MlflowClient

from assetwatch.cli import main
from assetwatch.errors import ModelRejectedError, ModelUnavailableError
from assetwatch.features.profiles import Profile
from assetwatch.models import pyfunc, registry
from assetwatch.models.registry import CHALLENGER, RegistryConfig, promote, register
from assetwatch.models.serving import load_serving_model, load_version, promote_checked
from assetwatch.models.training import TrainingResult
from assetwatch.settings import Settings


@pytest.fixture
def config(tmp_path: Path) -> RegistryConfig:
    """The registry ``Settings(data_dir=tmp_path)`` names, so the CLI finds it too."""
    root = (tmp_path / "data").resolve()
    return RegistryConfig(tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                          artifact_root=root / "mlartifacts", local_dir=root / "models")


def _reordered(training: TrainingResult) -> TrainingResult:
    bundle = training.bundle
    return TrainingResult(dataclasses.replace(
        bundle, feature_names=tuple(reversed(bundle.feature_names))), {}, {})


def _serving_dir(config: RegistryConfig, profile: str, version: str) -> Path:
    uri = MlflowClient(config.tracking_uri, config.tracking_uri) \
        .get_model_version_download_uri(config.model_name(profile), version)
    return Path(uri.removeprefix("file://")) / "artifacts" / registry.SERVING_DIR


def test_promote_refuses_a_version_that_fails_the_checks(
    config: RegistryConfig, cnc: Profile, cnc_training: TrainingResult,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    v1 = register(config, cnc_training)
    v2 = register(config, _reordered(cnc_training), alias=CHALLENGER)

    with pytest.raises(ModelRejectedError, match="not promoted") as caught:
        promote_checked(config, cnc, None)
    assert caught.value.step == "features"
    assert registry.served_version(config, "cnc") == v1

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ASSETWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ASSETWATCH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")  # never reached
    assert main(["promote", "--profile", "cnc", "--version", v2]) == 1
    error = capsys.readouterr().err
    assert f"version {v2}" in error and "features: not promoted (@champion unchanged)" in error
    assert registry.served_version(config, "cnc") == v1


def test_start_up_walks_back_past_every_rejected_champion(
    config: RegistryConfig, cnc: Profile, cnc_training: TrainingResult
) -> None:
    v1 = register(config, cnc_training)
    v2 = register(config, _reordered(cnc_training), alias=CHALLENGER)
    v3 = register(config, cnc_training, alias=CHALLENGER)
    promote(config, "cnc", v2)  # unchecked, as a champion set by hand or before checks
    promote(config, "cnc", v3)
    (_serving_dir(config, "cnc", v3) / "detector.onnx").write_bytes(b"\x00" * 200)

    served = load_serving_model(config, cnc, bootstrap=None)

    assert served.model.version == v1
    assert [(r.version, r.reason.split(":")[0]) for r in served.rejected] == [
        (v3, "load"), (v2, "features")]
    assert "detector.onnx does not match its SHA-256" in served.rejected[0].reason


def test_start_up_serves_the_local_artifact_when_no_registry_version_passes(
    config: RegistryConfig, cnc: Profile, cnc_training: TrainingResult
) -> None:
    v1 = register(config, cnc_training)
    (_serving_dir(config, "cnc", v1) / "bundle.json").write_text("{not json")

    served = load_serving_model(config, cnc, bootstrap=None)

    assert served.model.version == f"{v1}-local"
    assert [r.reason.split(":")[0] for r in served.rejected] == ["load"]
    assert "bundle.json" in served.rejected[0].reason


def _plant(marker: str) -> Any:
    """What a hostile pickle runs when it is loaded: leaves a mark, then looks harmless."""
    Path(marker).write_text("code ran on unpickle")
    return pyfunc.AssetModel()


class PlantedModel(pyfunc.AssetModel):
    marker = ""

    def __reduce__(self) -> tuple[Callable[[str], Any], tuple[str]]:
        return _plant, (self.marker,)


def test_serving_loads_a_version_without_running_its_pickles(
    config: RegistryConfig, cnc: Profile, cnc_training: TrainingResult, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.setattr(PlantedModel, "marker", str(marker))
    monkeypatch.setattr(pyfunc, "AssetModel", PlantedModel)
    version = register(config, cnc_training)
    (config.local_dir / "cnc.joblib").write_bytes(  # an old-style local pickle: never read
        (_serving_dir(config, "cnc", version).parent.parent / "python_model.pkl").read_bytes())

    assert load_version(config, "cnc", version).version == version
    assert load_serving_model(config, cnc, bootstrap=None).model.version == version
    promote(config, "cnc", register(config, cnc_training, alias=CHALLENGER))
    assert not marker.exists()

    mlflow.pyfunc.load_model(f"models:/{config.model_name('cnc')}/{version}")
    assert marker.exists()  # the control: the same version does run code when unpickled


def test_credentials_never_reach_the_logs_and_settings_pass_them_to_mlflow(
    cnc: Profile, tmp_path: Path, make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)  # restored (unset) after the test
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings = make_settings(data_dir=tmp_path,
                             mlflow_tracking_uri="http://ops:hunter2@127.0.0.1:9/",
                             mlflow_tracking_username="svc", mlflow_tracking_password="s3cret")
    config = RegistryConfig.from_settings(settings)
    assert "hunter2" not in repr(config) and "s3cret" not in repr(config)
    assert "s3cret" not in repr(settings)

    caplog.set_level(logging.INFO)
    with pytest.raises(ModelUnavailableError) as caught:
        load_serving_model(config, cnc, bootstrap=None)

    text = caplog.text + str(caught.value)
    assert "http://ops:***@127.0.0.1:9/" in text
    assert "hunter2" not in text and "s3cret" not in text
    assert (os.environ["MLFLOW_TRACKING_USERNAME"],
            os.environ["MLFLOW_TRACKING_PASSWORD"]) == ("svc", "s3cret")

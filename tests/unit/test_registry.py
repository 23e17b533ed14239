"""Registry aliases on a real (SQLite-backed) MLflow store: register, promote, roll back."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from assetwatch.errors import ModelUnavailableError
from assetwatch.models.artifacts import load_local
from assetwatch.models.registry import (
    CHALLENGER,
    RegistryConfig,
    promote,
    register,
    rollback,
    served_version,
)
from assetwatch.models.serving import load_version
from assetwatch.models.training import TrainingResult


@pytest.fixture
def config(tmp_path: Path) -> RegistryConfig:
    return RegistryConfig(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                          artifact_root=tmp_path / "artifacts", local_dir=tmp_path / "models")


def test_promote_and_rollback_walk_the_champion_history(
    config: RegistryConfig, cnc_training: TrainingResult
) -> None:
    assert served_version(config, "cnc") is None
    v1 = register(config, cnc_training)
    v2 = register(config, cnc_training, alias=CHALLENGER)
    v3 = register(config, cnc_training, alias=CHALLENGER)
    local = load_local(config.local_dir, "cnc")
    assert (served_version(config, "cnc"), local and local.version) == (v1, f"{v1}-local")

    with pytest.raises(ModelUnavailableError, match="no earlier"):
        rollback(config, "cnc")
    move = promote(config, "cnc")  # the challenger: v3
    assert (move.version, move.previous) == (v3, v1)
    assert promote(config, "cnc", v2).version == v2
    with pytest.raises(ModelUnavailableError, match="already"):
        promote(config, "cnc", v2)

    assert (rollback(config, "cnc").version, served_version(config, "cnc")) == (v3, v3)
    assert rollback(config, "cnc").version == v1
    assert load_version(config, "cnc", v1).version == v1
    with pytest.raises(ModelUnavailableError, match="no earlier"):
        rollback(config, "cnc")


def test_promote_without_a_challenger_says_so(
    config: RegistryConfig, cnc_training: TrainingResult
) -> None:
    register(config, cnc_training)
    with pytest.raises(ModelUnavailableError, match="no @challenger"):
        promote(config, "cnc")


def test_quiet_mlflow_drops_mlflow_warnings_and_progress_bars_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from assetwatch.models.registry import quiet_mlflow

    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_mlflow()
        for module in ("mlflow.pyfunc", "mlflow.store.tracking.sqlalchemy_store", "assetwatch.x"):
            warnings.warn_explicit("noise", UserWarning, "f.py", 1, module=module)
    assert [w.filename for w in caught] == ["f.py"]  # only assetwatch's own warning is kept
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"


@pytest.mark.parametrize("root_level", [logging.INFO, logging.DEBUG])
def test_quiet_mlflow_keeps_its_log_lines_and_prints_at_debug_only(
        root_level: int, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow.utils.logging_utils import eprint

    from assetwatch.models.registry import quiet_mlflow

    seen: list[tuple[str, str]] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append((record.name, record.levelname))  # type: ignore[method-assign]
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(root_level)
    try:
        quiet_mlflow()
        logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables")
        logging.getLogger("mlflow.pyfunc").warning("Passing a Python object as python_model")
        logging.getLogger("mlflow.tracking").error("the registry is gone")
        eprint("Successfully registered model 'x'.")
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    demoted = [("mlflow.store.db.utils", "DEBUG"), ("mlflow.pyfunc", "DEBUG")]
    assert seen == [*(demoted if root_level == logging.DEBUG else []),
                    ("mlflow.tracking", "ERROR")]
    assert "Successfully registered" not in capsys.readouterr().err

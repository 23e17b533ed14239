"""The one module that knows MLflow: register bundles, resolve aliases, load what workers serve.

Fallback chain when a worker asks for a profile's model: the registry alias
(``models:/<name>@<alias>``), then the local artifact saved beside the last registration,
then (if allowed) bootstrap training of the baseline, which is registered and aliased.

Lifecycle: ``assetwatch train`` registers a version as ``@challenger``; :func:`promote` points
the served alias (``@champion``) at it and :func:`rollback` points it back. The versions that
were champion, oldest first, are kept in the registered model's ``champion_history`` tag, so
a rollback knows where to go and can be repeated.

A training run logs the params and metrics of :class:`TrainingResult`, the validation plots
(``plots/*.png``), the training reference (``training_reference.json``), the search's trials
(``search/trials.json`` and the ``trial_f1`` metric, one step per trial) and the model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import mlflow
import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel  # type: ignore[attr-defined]
from mlflow.tracking import MlflowClient

from assetwatch.errors import ModelUnavailableError
from assetwatch.models.bundle import ModelBundle, ScoringModel
from assetwatch.models.training import TrainingResult
from assetwatch.settings import Settings

log = logging.getLogger(__name__)

BUNDLE_FILE = "bundle.joblib"
PLOTS_DIR = "plots"
REFERENCE_FILE = "training_reference.json"
"""The bundle's training reference (:meth:`FeatureReference.to_json`), as a run artifact."""
TRIALS_FILE = "search/trials.json"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
HISTORY_KEPT = 50
PIP_REQUIREMENTS = ["assetwatch", "scikit-learn", "numpy", "pandas", "joblib", "onnxruntime"]


@dataclass(frozen=True)
class RegistryConfig:
    """Where the registry is and what the served models are called."""

    tracking_uri: str
    artifact_root: Path
    local_dir: Path
    """Folder of the local fallback artifacts."""
    alias: str = "champion"
    name_prefix: str = "assetwatch"

    def model_name(self, profile: str) -> str:
        return f"{self.name_prefix}-{profile}"

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistryConfig:
        return cls(
            tracking_uri=settings.tracking_uri,
            artifact_root=settings.artifact_root,
            local_dir=(settings.data_dir / "models").resolve(),
            alias=settings.model_alias,
            name_prefix=settings.model_name_prefix,
        )


class AssetModel(PythonModel):
    """pyfunc face of a :class:`ModelBundle`, so any MLflow client can score it too."""

    bundle: ModelBundle

    def load_context(self, context: Any) -> None:
        self.bundle = joblib.load(context.artifacts["bundle"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return _predictions_frame(self.bundle, model_input)


def _predictions_frame(bundle: ModelBundle, features: pd.DataFrame) -> pd.DataFrame:
    scores = bundle.score(features[list(bundle.feature_names)].to_numpy(float))
    return pd.DataFrame({
        "anomaly_score": scores.anomaly_score,
        "is_anomaly": scores.is_anomaly,
        "failure_probability": scores.failure_probability,
    })


def _client(config: RegistryConfig) -> MlflowClient:
    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow.set_registry_uri(config.tracking_uri)
    return MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)


def _experiment_id(client: MlflowClient, config: RegistryConfig, profile: str) -> str:
    name = f"{config.name_prefix}-{profile}-training"
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = None
    if "://" not in config.tracking_uri or config.tracking_uri.startswith("sqlite:"):
        config.artifact_root.mkdir(parents=True, exist_ok=True)
        location = config.artifact_root.as_uri()
    return str(client.create_experiment(name, artifact_location=location))


def register(config: RegistryConfig, result: TrainingResult, alias: str | None = None) -> str:
    """Log a training run, register its bundle and point ``alias`` at it; return the version."""
    client = _client(config)
    bundle = result.bundle
    name = config.model_name(bundle.profile)
    experiment_id = _experiment_id(client, config, bundle.profile)
    sample = pd.DataFrame([bundle.feature_mean], columns=list(bundle.feature_names))
    signature = infer_signature(sample, _predictions_frame(bundle, sample))
    with (tempfile.TemporaryDirectory() as tmp,
          mlflow.start_run(experiment_id=experiment_id) as run):
        path = Path(tmp) / BUNDLE_FILE
        joblib.dump(bundle, path)
        mlflow.log_params(result.params)
        mlflow.log_metrics(result.metrics)
        _log_details(client, run.info.run_id, result, Path(tmp))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=AssetModel(),
            artifacts={"bundle": str(path)},
            signature=signature,
            input_example=None,
            pip_requirements=PIP_REQUIREMENTS,
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    alias = alias or config.alias
    client.set_registered_model_alias(name, alias, version)
    if alias == config.alias:  # the local fallback follows what is served
        _save_local(config, bundle, name, version)
    log.info("registered %s version %s as @%s", name, version, alias)
    return version


def _log_details(client: MlflowClient, run_id: str, result: TrainingResult, tmp: Path
                 ) -> None:
    """Plots, the training reference and the search's trials, as artifacts of the active run."""
    from assetwatch.models.plots import training_plots  # matplotlib loads only when a run is logged

    bundle, validation = result.bundle, result.validation
    if validation is not None:
        (tmp / PLOTS_DIR).mkdir()
        for name, png in training_plots(validation.labels, validation.failure_probability,
                                        bundle.feature_names,
                                        bundle.classifier.feature_importances_).items():
            (tmp / PLOTS_DIR / name).write_bytes(png)
        mlflow.log_artifacts(str(tmp / PLOTS_DIR), PLOTS_DIR)
    if bundle.reference is not None:
        mlflow.log_dict(bundle.reference.to_json(), REFERENCE_FILE)
    if result.trials:
        mlflow.log_dict({"trials": [dataclasses.asdict(t) for t in result.trials]}, TRIALS_FILE)
        now_ms = int(time.time() * 1000)
        client.log_batch(run_id, [Metric("trial_f1", t.f1, now_ms, t.number)
                                  for t in result.trials])


@dataclass(frozen=True)
class AliasMove:
    """The served alias of ``name`` moved from ``previous`` (None: unset) to ``version``."""

    name: str
    alias: str
    version: str
    previous: str | None


def _aliased_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def _history(client: MlflowClient, name: str) -> list[str]:
    tags = client.get_registered_model(name).tags
    return [v for v in tags.get(HISTORY_TAG, "").split(",") if v]


def _move_alias(client: MlflowClient, config: RegistryConfig, name: str, version: str,
                history: list[str]) -> AliasMove:
    previous = _aliased_version(client, name, config.alias)
    client.set_registered_model_alias(name, config.alias, version)
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history[-HISTORY_KEPT:]))
    log.info("%s@%s: %s -> %s", name, config.alias, previous, version)
    return AliasMove(name, config.alias, version, previous)


def served_version(config: RegistryConfig, profile: str, alias: str | None = None
                   ) -> str | None:
    """The version ``alias`` (default: the served alias) points at, None if unset: one
    cheap registry call."""
    return _aliased_version(_client(config), config.model_name(profile), alias or config.alias)


def promote(config: RegistryConfig, profile: str, version: str | None = None) -> AliasMove:
    """Point the served alias at ``version`` (default: the ``@challenger``)."""
    client = _client(config)
    name = config.model_name(profile)
    if version is None:
        version = _aliased_version(client, name, CHALLENGER)
        if version is None:
            raise ModelUnavailableError(f"{name} has no @{CHALLENGER} to promote")
    client.get_model_version(name, version)  # raises if the version does not exist
    history = _history(client, name)
    current = _aliased_version(client, name, config.alias)
    if current is not None and (not history or history[-1] != current):
        history.append(current)  # a champion set outside promote() still counts
    if history and history[-1] == version:
        raise ModelUnavailableError(f"{name} version {version} is already @{config.alias}")
    return _move_alias(client, config, name, version, [*history, version])


def rollback(config: RegistryConfig, profile: str) -> AliasMove:
    """Point the served alias back at the version that was served before the current one."""
    client = _client(config)
    name = config.model_name(profile)
    history = _history(client, name)
    if len(history) < 2:
        raise ModelUnavailableError(f"{name} has no earlier @{config.alias} to roll back to")
    return _move_alias(client, config, name, history[-2], history[:-1])


def load_version(config: RegistryConfig, profile: str, version: str) -> ScoringModel:
    """One registered version of the profile's model."""
    name = config.model_name(profile)
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    return ScoringModel(name=name, version=str(version), bundle=model.unwrap_python_model().bundle)


def _save_local(config: RegistryConfig, bundle: ModelBundle, name: str, version: str) -> None:
    config.local_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(bundle, config.local_dir / f"{bundle.profile}.joblib")
    meta = {"name": name, "version": version}
    (config.local_dir / f"{bundle.profile}.json").write_text(json.dumps(meta))


def load_from_registry(config: RegistryConfig, profile: str) -> ScoringModel | None:
    """The aliased version of the profile's model, or None if the alias is not set."""
    version = served_version(config, profile)
    return None if version is None else load_version(config, profile, version)


def load_local(config: RegistryConfig, profile: str) -> ScoringModel | None:
    """The local artifact saved at the last registration, or None."""
    meta_path = config.local_dir / f"{profile}.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    bundle = joblib.load(config.local_dir / f"{profile}.joblib")
    return ScoringModel(name=meta["name"], version=f"{meta['version']}-local", bundle=bundle)


def load_serving_model(
    config: RegistryConfig, profile: str, bootstrap: Callable[[], TrainingResult] | None
) -> ScoringModel:
    """Walk the fallback chain: registry alias, local artifact, bootstrap training."""
    try:
        model = load_from_registry(config, profile)
    except MlflowException as exc:
        log.warning("registry %s unavailable for %s: %s", config.tracking_uri, profile, exc)
        model = None
    if model is not None:
        log.info("serving %s version %s from the registry", model.name, model.version)
        return model
    model = load_local(config, profile)
    if model is not None:
        log.warning("no @%s in the registry: serving local artifact %s version %s",
                    config.alias, model.name, model.version)
        return model
    if bootstrap is None:
        raise ModelUnavailableError(
            f"no model for profile {profile!r}: registry has no {config.model_name(profile)}"
            f"@{config.alias}, no local artifact, bootstrap disabled"
        )
    log.warning("no model for profile %s anywhere: training and registering the baseline",
                profile)
    result = bootstrap()
    register(config, result)
    loaded = load_from_registry(config, profile)
    if loaded is None:
        raise ModelUnavailableError(f"bootstrap registration of {profile} could not be read back")
    return loaded

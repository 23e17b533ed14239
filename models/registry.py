"""The one module that knows MLflow: register bundles, move aliases, fetch serving artifacts.

A registered version carries its bundle twice: as data-only files (``artifacts/serving/``:
two ONNX graphs and ``bundle.json``, see :mod:`assetwatch.models.artifacts`), which is all
that serving ever downloads, and as an MLflow pyfunc (whose ``python_model.pkl`` MLflow
unpickles) plus ``estimators.joblib`` (the fitted scikit-learn forests) for people and MLflow
tools. Nothing here unpickles; :mod:`assetwatch.models.serving` loads and checks versions.

Lifecycle: ``assetwatch train`` registers a version as ``@challenger``; :func:`promote` points
the served alias (``@champion``) at it and :func:`rollback` points it back. The versions that
were champion, oldest first, are kept in the registered model's ``champion_history`` tag, so
a rollback knows where to go and can be repeated.

A training run logs the params and metrics of :class:`TrainingResult`, the validation plots
(``plots/*.png``), the training reference (``training_reference.json``), the search's trials
(``search/trials.json`` and the ``trial_f1`` metric, one step per trial) and the model.

Reading the registry (aliases, downloads) needs only MLflow's client (``mlflow-skinny``, core);
:func:`register` needs the ``train`` extra (pandas, joblib, the pyfunc flavour), imported
when it runs, so a serving worker never loads them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import mlflow.artifacts
import mlflow.utils.logging_utils
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import SecretStr

from assetwatch.errors import ModelArtifactError, ModelUnavailableError, RegistryUnavailableError
from assetwatch.extras import require_module, requires
from assetwatch.models.artifacts import SERVING_DIR, save_local, write_bundle
from assetwatch.redaction import mask_credentials
from assetwatch.settings import Settings

if TYPE_CHECKING:
    from assetwatch.models.training import TrainingResult

log = logging.getLogger(__name__)

ESTIMATORS_FILE = "estimators.joblib"
PLOTS_DIR = "plots"
REFERENCE_FILE = "training_reference.json"
"""The bundle's training reference (:meth:`FeatureReference.to_json`), as a run artifact."""
TRIALS_FILE = "search/trials.json"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
HISTORY_KEPT = 50
PIP_REQUIREMENTS = ["assetwatch", "numpy", "pandas", "onnxruntime"]


@dataclass(frozen=True)
class RegistryConfig:
    """Where the registry is and what the served models are called."""

    tracking_uri: str = field(repr=False)
    """May embed credentials: log :attr:`display_uri`, never this."""
    artifact_root: Path
    local_dir: Path
    """Folder of the local fallback artifacts."""
    alias: str = "champion"
    name_prefix: str = "assetwatch"
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)

    def model_name(self, profile: str) -> str:
        """Registered model name of ``profile``: ``<name_prefix>-<profile>``."""
        return f"{self.name_prefix}-{profile}"

    @property
    def display_uri(self) -> str:
        """The tracking URI as logs and errors may show it (password masked)."""
        return mask_credentials(self.tracking_uri)

    @classmethod
    def from_settings(cls, settings: Settings) -> RegistryConfig:
        """The registry part of the settings; local fallback models under ``data_dir``."""
        return cls(
            tracking_uri=settings.tracking_uri,
            artifact_root=settings.artifact_root,
            local_dir=(settings.data_dir / "models").resolve(),
            alias=settings.model_alias,
            name_prefix=settings.model_name_prefix,
            username=settings.mlflow_tracking_username,
            password=settings.mlflow_tracking_password,
        )


class _AtDebug(logging.Handler):
    """MLflow's and alembic's records, below ERROR demoted to DEBUG, to the root handlers.

    MLflow gives its loggers a handler of its own on stderr, so its INFO and WARNING lines
    ("Creating initial MLflow database tables", the CloudPickle warning) reached the terminal
    and the worker log whatever our level; now they are there only at DEBUG.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        root = logging.getLogger()
        if root.isEnabledFor(record.levelno):
            root.handle(record)


_AT_DEBUG = _AtDebug()


def quiet_mlflow() -> None:
    """Keep MLflow's progress bars, prints, warnings and log lines out of terminals and logs.

    Deprecations, "no input example", "Successfully registered model" and the like are noise
    there, once per model load or training; its log records remain, at DEBUG.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore", module=r"mlflow(\..*)?$")
    mlflow.utils.logging_utils.disable_logging()  # type: ignore[no-untyped-call]  # eprint()s
    for name in ("mlflow", "alembic"):
        logger = logging.getLogger(name)
        logger.handlers = [_AT_DEBUG]
        logger.propagate = False
        logger.setLevel(logging.NOTSET if name == "mlflow" else logging.WARNING)


def _client(config: RegistryConfig) -> MlflowClient:
    """A client of the configured registry.

    Credentials from settings reach MLflow through its own variables, the only way its REST
    client takes them.
    """
    quiet_mlflow()
    if config.tracking_uri.startswith("sqlite:"):  # mlflow-skinny has no SQL store
        require_module("sqlalchemy", "train", "the embedded MLflow store (a sqlite: tracking URI)",
                       "or point ASSETWATCH_MLFLOW_TRACKING_URI at a tracking server")
    if config.username is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = config.username
    if config.password is not None:
        os.environ["MLFLOW_TRACKING_PASSWORD"] = config.password.get_secret_value()
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


def register(config: RegistryConfig, result: TrainingResult, alias: str | None = None,
             plots: bool = True) -> str:
    """Log a training run, register its bundle and point ``alias`` at it; return the version.

    ``plots=False`` leaves out the plots (matplotlib's import and rendering cost seconds that a
    bootstrap baseline, a stand-in until ``assetwatch train``, should not add to a first start).
    """
    with requires("train", "registering a model version"):
        import mlflow.pyfunc
        import pandas as pd
        from mlflow.models import infer_signature

        from assetwatch.models.pyfunc import AssetModel, predictions_frame
    client = _client(config)
    bundle = result.bundle
    name = config.model_name(bundle.profile)
    experiment_id = _experiment_id(client, config, bundle.profile)
    sample = pd.DataFrame([bundle.feature_mean], columns=list(bundle.feature_names))
    signature = infer_signature(sample, predictions_frame(bundle, sample))
    with (tempfile.TemporaryDirectory() as tmp,
          mlflow.start_run(experiment_id=experiment_id) as run):
        serving = write_bundle(bundle, Path(tmp) / SERVING_DIR)
        mlflow.log_params(result.params)
        mlflow.log_metrics(result.metrics)
        _log_details(client, run.info.run_id, result, Path(tmp), plots)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=AssetModel(),
            artifacts={SERVING_DIR: str(serving)},
            signature=signature,
            input_example=None,
            pip_requirements=PIP_REQUIREMENTS,
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    alias = alias or config.alias
    client.set_registered_model_alias(name, alias, version)
    if alias == config.alias:  # the local fallback follows what is served
        save_local(config.local_dir, bundle, name, version)
    log.info("registered %s version %s as @%s", name, version, alias)
    return version


def _log_details(client: MlflowClient, run_id: str, result: TrainingResult, tmp: Path,
                 plots: bool) -> None:
    """Plots, the training reference and the search's trials, as artifacts of the active run."""
    import joblib  # the train extra's, like matplotlib: they load only when a run is logged

    bundle, validation, estimators = result.bundle, result.validation, result.estimators
    if estimators is not None:
        joblib.dump(estimators, tmp / ESTIMATORS_FILE)
        mlflow.log_artifact(str(tmp / ESTIMATORS_FILE))
    if plots and validation is not None and estimators is not None:
        from assetwatch.models.plots import training_plots  # matplotlib only for the plots

        (tmp / PLOTS_DIR).mkdir()
        for name, png in training_plots(validation.labels, validation.failure_probability,
                                        bundle.feature_names,
                                        estimators.classifier.feature_importances_).items():
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
    """The version ``alias`` (default: the served alias) points at, None if unset.

    One cheap registry call.
    """
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


def champion_history(config: RegistryConfig, profile: str) -> list[str]:
    """The versions that were served, oldest first, and the one the alias names now (last).

    Raises :class:`RegistryUnavailableError` when the registry cannot answer.
    """
    client = _client(config)
    name = config.model_name(profile)
    try:
        current = _aliased_version(client, name, config.alias)
        history = _history(client, name) if current is not None else []
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise RegistryUnavailableError(
            f"registry {config.display_uri} unavailable for {name}: "
            f"{mask_credentials(str(exc))}") from exc
    if current is not None and (not history or history[-1] != current):
        history.append(current)
    return history


def download_serving(config: RegistryConfig, profile: str, version: str, dst: Path) -> Path:
    """Download only the data-only bundle folder of one version (files: nothing is run)."""
    name = config.model_name(profile)
    try:
        uri = _client(config).get_model_version_download_uri(name, version)
        return Path(mlflow.artifacts.download_artifacts(
            artifact_uri=f"{uri.rstrip('/')}/artifacts/{SERVING_DIR}", dst_path=str(dst)))
    except (MlflowException, OSError) as exc:
        raise ModelArtifactError(f"downloading {name} version {version}'s {SERVING_DIR}/ "
                                 f"failed: {mask_credentials(str(exc))}") from exc

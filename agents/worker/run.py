"""``assetwatch worker``.

Prepare topics, load models through the fallback chain, run Faust with the telemetry agent
and the model watcher (hot swap).
"""

from __future__ import annotations

import logging
import socket
from functools import partial
from typing import TYPE_CHECKING

import faust
from prometheus_client import CollectorRegistry, ProcessCollector

from assetwatch.agents.endpoint import MonitoringServer
from assetwatch.agents.kafka.topics import ensure_topics
from assetwatch.agents.worker.app import create_app
from assetwatch.agents.worker.collector import tune_for_batches
from assetwatch.agents.worker.health import Health
from assetwatch.agents.worker.lifecycle import ModelWatcher, RegistryModels
from assetwatch.agents.worker.metrics import Metrics
from assetwatch.agents.worker.operator_alerts import OperatorAlerts
from assetwatch.agents.worker.probe import FaustProbe
from assetwatch.agents.worker.progress import AgentProgress
from assetwatch.agents.worker.query_api import AssetQueries
from assetwatch.agents.worker.scoring import make_scorer
from assetwatch.agents.worker.served_models import ServedModels
from assetwatch.agents.worker.silence import SilenceWatch
from assetwatch.extras import requires
from assetwatch.features.profiles import Profile, load_profiles
from assetwatch.models.registry import RegistryConfig
from assetwatch.models.serving import Served, load_serving_model
from assetwatch.settings import Settings

if TYPE_CHECKING:
    from assetwatch.models.training import TrainingResult

log = logging.getLogger(__name__)


def load_models(settings: Settings, profiles: dict[str, Profile],
                alerts: OperatorAlerts | None = None) -> dict[str, Served]:
    """The served model of every profile.

    The first of the fallback chain that loads and passes the checks; each candidate passed
    over raises a ``MODEL_REJECTED`` alert.
    """
    config = RegistryConfig.from_settings(settings)
    served = {}
    for name, profile in profiles.items():
        served[name] = load_serving_model(
            config, profile,
            partial(bootstrap_training, settings, profile) if settings.bootstrap_model else None,
        )
        if alerts is not None:
            _alert_rejections(alerts, served[name])
    return served


def bootstrap_training(settings: Settings, profile: Profile) -> TrainingResult:
    """Train the baseline of ``profile`` when nothing servable exists (the ``train`` extra).

    Imported here, not at the top: a serving worker with a champion never loads scikit-learn.
    """
    with requires("train", f"bootstrap training of a {profile.name!r} model (no servable "
                  "model in the registry or local artifacts)",
                  "or set ASSETWATCH_BOOTSTRAP_MODEL=false and register a model first"):
        from assetwatch.models.training import train_baseline
    return train_baseline(settings, profile)


def _alert_rejections(alerts: OperatorAlerts, served: Served) -> None:
    for rejection in served.rejected:
        alerts.publish("MODEL_REJECTED", rejection.name, rejection.version,
                       served.model.version, f"at start-up: {rejection.reason}")


def run_worker(settings: Settings) -> None:
    """Run one worker until it is stopped (SIGTERM/SIGINT shut it down cleanly).

    The metrics and health endpoint starts first, so /live answers (and /health says why it
    is not ready) while topics are prepared and models load.
    """
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    probe = FaustProbe(settings.telemetry_topic)
    metrics = Metrics(registry, lag=probe)
    progress = AgentProgress()
    queries = AssetQueries(metrics, settings.model_alias)
    health = Health(settings.profiles, metrics, probe, progress=progress,
                    stall_s=settings.health_stall_s)
    server = MonitoringServer(settings.metrics_port, registry, health, settings.http_host,
                              queries.routes(), threads=settings.http_threads,
                              timeout_s=settings.http_timeout_s, path_routes=queries.path_routes())
    queries.advertise(advertised_url(settings, server.port))
    server.start()
    try:
        _run(settings, metrics, probe, progress, queries)
    finally:
        server.close()


def advertised_url(settings: Settings, port: int) -> str:
    """Where the other workers reach this one: the setting, else this host and port."""
    if settings.advertised_url:
        return settings.advertised_url
    wildcard = settings.http_host in ("0.0.0.0", "::", "")
    return f"http://{socket.gethostname() if wildcard else settings.http_host}:{port}"


def _run(settings: Settings, metrics: Metrics, probe: FaustProbe, progress: AgentProgress,
         queries: AssetQueries) -> None:
    ensure_topics(settings)
    profiles = load_profiles(settings.profiles, settings.profiles_dir)
    queries.use_profiles(profiles)
    alerts = OperatorAlerts(settings)
    served = load_models(settings, profiles, alerts)
    models = {name: s.model for name, s in served.items()}
    rejected = {(name, r.version) for name, s in served.items() for r in s.rejected}
    for model in models.values():
        log.info("serving %s version %s", model.name, model.version)
        metrics.serve(model)
    for profile, _ in sorted(rejected):
        metrics.rejected(profile)
    scorer = make_scorer(settings, profiles, models, progress)
    served_models = ServedModels(models, RegistryModels(settings, profiles), scorer, alerts,
                                 metrics, shadow_scoring=settings.shadow_scoring,
                                 rejected=rejected)
    watcher = ModelWatcher(settings, profiles, served_models, alerts)
    # Faust creates <data_dir>/faust but not its parents; against a remote registry nothing
    # else (the SQLite store, local artifacts) has created data_dir by now.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        app = create_app(settings, scorer, metrics, probe, watcher,
                         SilenceWatch(settings, metrics), progress, queries)
        worker = faust.Worker(app, loglevel=settings.log_level, override_logging=False)
        tune_for_batches()
        worker.execute_from_commandline()
    finally:
        scorer.close()

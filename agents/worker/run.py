"""``assetwatch worker``: prepare topics, load models through the fallback chain, run Faust
with the telemetry agent and the model watcher (hot swap)."""

from __future__ import annotations

import logging
from functools import partial

import faust
from prometheus_client import CollectorRegistry, ProcessCollector

from assetwatch.agents.endpoint import MonitoringServer
from assetwatch.agents.kafka.topics import ensure_topics
from assetwatch.agents.worker.app import create_app
from assetwatch.agents.worker.health import Health
from assetwatch.agents.worker.lifecycle import ModelWatcher
from assetwatch.agents.worker.metrics import Metrics
from assetwatch.agents.worker.probe import FaustProbe
from assetwatch.agents.worker.scoring import make_scorer
from assetwatch.agents.worker.silence import SilenceWatch
from assetwatch.features.profiles import Profile, load_profiles
from assetwatch.models.bundle import ScoringModel
from assetwatch.models.registry import RegistryConfig, load_serving_model
from assetwatch.models.training import train_baseline
from assetwatch.settings import Settings

log = logging.getLogger(__name__)


def load_models(settings: Settings, profiles: dict[str, Profile]) -> dict[str, ScoringModel]:
    """The served model of every profile: registry, else local artifact, else bootstrap."""
    config = RegistryConfig.from_settings(settings)
    return {
        name: load_serving_model(
            config, name,
            partial(train_baseline, settings, profile) if settings.bootstrap_model else None,
        )
        for name, profile in profiles.items()
    }


def run_worker(settings: Settings) -> None:
    """Run one worker until it is stopped (SIGTERM/SIGINT shut it down cleanly).

    The metrics and health endpoint starts first, so /live answers (and /health says why it
    is not ready) while topics are prepared and models load.
    """
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    probe = FaustProbe(settings.telemetry_topic)
    metrics = Metrics(registry, lag=probe)
    server = MonitoringServer(settings.metrics_port, registry,
                              Health(settings.profiles, metrics, probe), settings.http_host,
                              threads=settings.http_threads, timeout_s=settings.http_timeout_s)
    server.start()
    try:
        _run(settings, metrics, probe)
    finally:
        server.close()


def _run(settings: Settings, metrics: Metrics, probe: FaustProbe) -> None:
    ensure_topics(settings)
    profiles = load_profiles(settings.profiles, settings.profiles_dir)
    models = load_models(settings, profiles)
    for model in models.values():
        log.info("serving %s version %s", model.name, model.version)
        metrics.serve(model)
    scorer = make_scorer(settings, profiles, models)
    watcher = ModelWatcher(settings, profiles, scorer, models, metrics)
    try:
        app = create_app(settings, scorer, metrics, probe, watcher,
                         SilenceWatch(settings, metrics))
        worker = faust.Worker(app, loglevel=settings.log_level, override_logging=False)
        worker.execute_from_commandline()
    finally:
        scorer.close()

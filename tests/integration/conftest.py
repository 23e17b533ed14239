"""Real parts for integration tests: a Kafka-protocol broker, an MLflow registry, workers.

Broker, in the order users expect: ``KAFKA_BOOTSTRAP_SERVERS`` when set (a real cluster);
testcontainers' Kafka when ``ASSETWATCH_TEST_DOCKER=1`` and a Docker engine answers;
otherwise the bundled tansu binary on a free 127.0.0.1 port (what CI here uses).
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from assetwatch.agents.kafka.consumer import Record, RecordReader
from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.agents.kafka.topics import ensure_topics
from assetwatch.agents.local.broker import start_broker
from assetwatch.agents.local.worker_process import WorkerProcess as LocalWorker
from assetwatch.agents.local.worker_process import settings_env as settings_env  # re-exported
from assetwatch.features.profiles import load_profile
from assetwatch.models.bundle import ScoringModel
from assetwatch.models.registry import RegistryConfig, register, served_version
from assetwatch.models.serving import load_version
from assetwatch.models.training import synthetic_readings, synthetic_reference, train_models
from assetwatch.settings import Settings
from tests.schema_registry_double import SchemaRegistryDouble

pytestmark = pytest.mark.integration


def _docker_kafka() -> Iterator[tuple[str, str]]:
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer() as kafka:
        yield kafka.get_bootstrap_server(), "none"


@pytest.fixture(scope="session")
def broker() -> Iterator[tuple[str, str]]:
    """(bootstrap servers, broker_compat) of the broker the tests run against."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ.get(
            "ASSETWATCH_BROKER_COMPAT", "none")
    elif os.environ.get("ASSETWATCH_TEST_DOCKER") == "1":
        yield from _docker_kafka()
    else:
        with start_broker() as embedded:
            yield embedded.bootstrap_servers, "tansu"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("assetwatch-data")


@pytest.fixture(scope="session")
def registered_models(data_dir: Path) -> dict[str, str]:
    """A small baseline per profile, trained once and registered as champion in a real store."""
    settings = Settings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]
    config = RegistryConfig.from_settings(settings)
    versions = {}
    for name in ("cnc", "pump"):
        profile = load_profile(name)
        readings = synthetic_readings(profile, n_assets=6, hours=1.0, seed=11)
        reference = synthetic_reference(profile, n_assets=6, seed=11)
        versions[name] = register(config, train_models(profile, readings, trees=25, seed=11,
                                                       reference=reference))
    return versions


@pytest.fixture
def schema_registry() -> Iterator[SchemaRegistryDouble]:
    """The HTTP Schema Registry TEST DOUBLE (no real registry installs here), one per test."""
    with SchemaRegistryDouble() as double:
        yield double


@pytest.fixture
def make_settings(
    broker: tuple[str, str], data_dir: Path, registered_models: dict[str, str]
) -> Callable[..., Settings]:
    """Settings for one test: its own topics and consumer group, the shared registry."""
    servers, compat = broker

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "kafka_bootstrap_servers": servers,
            "broker_compat": compat,
            "topic_prefix": f"t{uuid.uuid4().hex[:10]}",
            "data_dir": data_dir,
            "bootstrap_model": False,
            "log_level": "INFO",
            "metrics_port": 0,  # several workers per test, tests in parallel: no fixed port
            **overrides,
        }
        settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        ensure_topics(settings)
        return settings

    return make


class WorkerProcess(LocalWorker):
    """The shared worker helper; :meth:`alive` fails the test instead of raising."""

    def alive(self) -> None:
        """Fail the test, with the end of the worker's log, if the worker has exited."""
        if self.process.poll() is not None:
            pytest.fail(f"worker exited with {self.process.returncode}:\n"
                        f"{self.log_text()[-4000:]}")


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[Settings], WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def start(settings: Settings) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(workers)}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def collect(
    settings: Settings,
    topics: list[str],
    until: Callable[[list[Record]], bool],
    timeout_s: float = 120.0,
    workers: tuple[WorkerProcess, ...] = (),
) -> list[Record]:
    """Read ``topics`` from the start until ``until(records)`` holds; fail on timeout.

    Fails early, with the worker's log, if a worker process dies meanwhile.
    """
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    with RecordReader(settings, topics) as reader:
        while not until(records):
            for worker in workers:
                worker.alive()
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s}s with {len(records)} records")
            records.extend(reader.poll(1.0))
    return records


def http_get(url: str) -> tuple[int, str]:
    """Status and body of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def drift_divergence(settings: Settings, profile: str) -> dict[str, float]:
    """A profile's latest drift divergence per watched column, from the worker's /metrics."""
    status, text = http_get(f"http://127.0.0.1:{settings.metrics_port}/metrics")
    assert status == 200
    return {s.labels["feature"]: round(s.value, 4)
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == "assetwatch_drift_divergence" and s.labels.get("profile") == profile}


class ReadingStream:
    """Readings sent at ``rate`` per second from a thread, until stopped.

    The stream keeps flowing whatever happens meanwhile: give it far more readings than any
    wait needs.
    """

    def __init__(self, settings: Settings, readings: list[dict[str, Any]], rate: float) -> None:
        self._readings = readings
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=publish, args=(
            ReadingPublisher(settings), readings, rate, self._count, self._stop), daemon=True)
        self._thread.start()

    def _count(self, sent: int) -> None:
        self.sent = sent

    def until_sent(self, count: int, workers: tuple[WorkerProcess, ...]) -> None:
        """Wait until ``count`` readings are sent (the pool is far larger than any wait)."""
        poll_until(lambda: self.sent >= count, f"{count} readings sent",
                   lambda: [w.alive() for w in workers], timeout_s=60)

    def stop(self) -> list[dict[str, Any]]:
        """Stop sending; the readings sent (and flushed)."""
        self._stop.set()
        self._thread.join()
        assert self.sent < len(self._readings), "the stream ran dry before it was stopped"
        return self._readings[: self.sent]


def poll_until(check: Callable[[], Any], what: str, alive: Callable[[], None],
               timeout_s: float) -> Any:
    """Poll ``check`` until it returns something truthy.

    Fail on timeout or when ``alive`` finds the process under test gone. A refused connection
    counts as not yet.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        alive()
        try:
            result = check()
        except (urllib.error.URLError, ConnectionError):
            result = None  # not listening yet
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.2)  # polling interval, not synchronisation


def champion(settings: Settings, profile: str) -> ScoringModel:
    """The version ``@champion`` points at, loaded the way a worker loads it."""
    config = RegistryConfig.from_settings(settings)
    version = served_version(config, profile)
    assert version is not None, f"no @champion for {profile}"
    return load_version(config, profile, version)

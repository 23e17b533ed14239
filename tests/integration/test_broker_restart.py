"""The broker crashes and comes back while a worker runs: nothing lost, no worker restart.

tansu keeps its data on SeaweedFS (``s3://``), started here, independent of the session
broker. It is killed with SIGKILL while readings flow, stays down longer than the worker's
session timeout and starts again on the same port and storage. The producer retries through
the outage; the worker must reconnect by itself. Figures are printed like test_failures.py's.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from assetwatch.agents.commands.simulate import SimulationPlan
from assetwatch.agents.kafka.consumer import Record
from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.agents.kafka.topics import ensure_topics
from assetwatch.agents.local.broker import EmbeddedBroker, start_broker
from assetwatch.agents.local.seaweed import start_seaweedfs
from assetwatch.errors import BrokerError
from assetwatch.features.offline import compute_features
from assetwatch.features.profiles import load_profile
from assetwatch.schemas.codecs import decode_any
from assetwatch.settings import Settings
from tests.integration.conftest import WorkerProcess, champion, collect
from tests.integration.test_failures import _all_predicted, _figures, _readings, _topics

pytestmark = pytest.mark.integration

OUTAGE_S = 8.0
"""How long the broker stays down: longer than the worker's session timeout (6 s)."""


@pytest.fixture
def durable_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """Tansu on SeaweedFS storage in ``tmp_path``: it keeps everything across a restart."""
    with start_seaweedfs(tmp_path / "seaweedfs", log_file=tmp_path / "seaweedfs.log") as s3, \
            start_broker(log_file=tmp_path / "tansu.log", storage=s3.storage_url,
                         env=s3.tansu_env()) as broker:
        yield broker


@pytest.fixture
def durable_settings(
    durable_broker: EmbeddedBroker, data_dir: Path, registered_models: dict[str, str]
) -> Settings:
    """Like ``make_settings``, on the durable broker, with the shared registry."""
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        kafka_bootstrap_servers=durable_broker.bootstrap_servers,
        broker_compat="tansu",
        topic_prefix=f"t{uuid.uuid4().hex[:10]}",
        data_dir=data_dir,
        bootstrap_model=False,
        metrics_port=0,
        profiles=("cnc",),
    )
    ensure_topics(settings)
    return settings


def test_a_restart_waits_for_the_old_process_and_reuses_its_port() -> None:
    with start_broker() as broker:
        port, old = broker.port, broker.process
        with pytest.raises(BrokerError, match="still running"):
            broker.start()
        broker.restart(kill=True)
        assert old.returncode is not None and broker.port == port
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            pass


class Sender(threading.Thread):
    """Publishes readings at a rate; keeps its error, if any, for the test to raise."""

    def __init__(self, settings: Settings, readings: list[dict[str, Any]], rate: float) -> None:
        super().__init__(daemon=True)
        self.publisher = ReadingPublisher(settings)
        self.readings, self.rate = readings, rate
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            publish(self.publisher, self.readings, rate=self.rate)
        except BaseException as exc:  # raised again in the test's thread by finish()
            self.error = exc

    def finish(self, timeout_s: float = 120.0) -> None:
        self.join(timeout_s)
        assert not self.is_alive(), "the sender did not finish"
        if self.error is not None:
            raise self.error


def _stored_readings(settings: Settings) -> list[dict[str, Any]]:
    """The telemetry topic as stored, producer retries included, in offset order."""
    consumer = Consumer({**settings.kafka_client_config(), "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([TopicPartition(settings.telemetry_topic, p, OFFSET_BEGINNING)
                     for p in range(settings.partitions)])
    by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
    at_end: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        while len(at_end) < settings.partitions and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            partition, error = msg.partition(), msg.error()
            assert partition is not None
            if error is not None and error.code() == KafkaError._PARTITION_EOF:
                at_end.add(partition)
                continue
            assert error is None, error
            by_partition[partition].append(decode_any(msg.value() or b"")[1])
    finally:
        consumer.close()
    assert len(at_end) == settings.partitions, "telemetry not read to its end in 60 s"
    return [reading for p in sorted(by_partition) for reading in by_partition[p]]


def _first_copies(readings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each event's first stored copy, in stored order (later copies are retries)."""
    first: dict[str, dict[str, Any]] = {}
    for reading in readings:
        first.setdefault(reading["event_id"], reading)
    return list(first.values())


def _assert_scores_match_an_uninterrupted_run_over_the_stored_stream(
    settings: Settings, records: list[Record]
) -> None:
    """Every prediction equals an offline run's score for a stored copy of its reading.

    A reading the producer wrote twice (its acknowledgement was lost in the crash) is
    folded once: the worker dead-letters the later copy as ``resent``, so the offline run
    keeps each event's first stored copy. No state update is lost or repeated.
    """
    stored = _first_copies(_stored_readings(settings))
    frame = pd.DataFrame([{"asset_id": r["asset_id"], "timestamp": r["timestamp"],
                           **r["sensors"]} for r in stored])
    model = champion(settings, "cnc")
    assert model is not None
    scores = model.bundle.score(compute_features(frame, load_profile("cnc")).to_numpy())
    expected: dict[str, list[float]] = defaultdict(list)
    for reading, score in zip(stored, scores.anomaly_score, strict=True):
        expected[reading["event_id"]].append(float(score))
    mismatched = [
        (r.fields["event_id"], r.fields["anomaly_score"], expected[r.fields["event_id"]])
        for r in records if r.kind == "Prediction"
        and not np.isclose(expected[r.fields["event_id"]], r.fields["anomaly_score"],
                           rtol=1e-9, atol=0).any()
    ]
    assert not mismatched, f"{len(mismatched)} predictions differ, e.g. {mismatched[:3]}"


def test_a_broker_crash_and_restart_loses_nothing_and_the_worker_recovers_alone(
    durable_broker: EmbeddedBroker,
    durable_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    settings = durable_settings
    readings = _readings(SimulationPlan(assets=12, count=12 * 400, rate=1e9, seed=26))
    ids = {r["event_id"] for r in readings}
    first, rest = readings[: len(readings) // 3], readings[len(readings) // 3:]
    worker = start_worker(settings)
    publish(ReadingPublisher(settings), first)
    collect(settings, _topics(settings), _all_predicted({r["event_id"] for r in first}),
            workers=(worker,))  # the worker is up and scoring
    sender = Sender(settings, rest, rate=200)  # ~16 s: the outage falls mid-stream
    sender.start()
    collect(settings, _topics(settings), lambda rs: len(rs) >= len(readings) // 2,
            workers=(worker,))

    assert sender.is_alive(), "readings must still be flowing when the broker goes down"
    durable_broker.stop(kill=True)
    time.sleep(OUTAGE_S)  # the outage itself, not a synchronisation
    assert worker.process.poll() is None, "the worker exited while the broker was down"
    durable_broker.start()

    records = collect(settings, _topics(settings), _all_predicted(ids), workers=(worker,))
    sender.finish()

    figures = _figures("broker_restart", len(readings), records, ids)
    assert figures["lost"] == 0
    # Without idempotence on tansu, a producer retry across the crash can write a reading
    # twice: its copy is recognised by the asset's state and dead-lettered ``resent``, never
    # scored again. Any other dead letter is a failure.
    letters = [r.fields for r in records if r.kind == "DeadLetter"]
    predicted = {r.fields["event_id"] for r in records if r.kind == "Prediction"}
    assert all(d["reason"] == "resent" and d["event_id"] in predicted for d in letters), letters
    _assert_scores_match_an_uninterrupted_run_over_the_stored_stream(settings, records)

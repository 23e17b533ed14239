"""Readiness rules and the HTTP endpoint, with a hand-written stream status source."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from assetwatch.agents.endpoint import MonitoringServer
from assetwatch.agents.worker.health import Health, unready_reasons
from assetwatch.agents.worker.metrics import Metrics
from assetwatch.agents.worker.probe import FaustProbe
from assetwatch.agents.worker.progress import EXIT_SCORING_LOST, AgentProgress
from assetwatch.agents.worker.status import StreamStatus
from assetwatch.errors import ConfigError
from assetwatch.models.bundle import ScoringModel
from assetwatch.scoring.buckets import FAILURE_PROBABILITY_BUCKETS, LATENCY_BUCKETS_S, Buckets
from assetwatch.scoring.outcome import BatchReport

READY = StreamStatus("connected", partitions=(0, 1, 2), lag={0: 0, 1: 3})


@dataclass
class FakeStream:
    current: StreamStatus

    def status(self) -> StreamStatus:
        return self.current


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (StreamStatus("starting"), "broker starting"),
        (StreamStatus("unresponsive", partitions=(0,)), "broker unresponsive"),
        (StreamStatus("connected", rebalancing=True, partitions=(0,)), "rebalancing"),
        (StreamStatus("connected", recovering=True, partitions=(0,)), "recovering table state"),
        (StreamStatus("connected"), "no telemetry partition assigned"),
    ],
)
def test_a_worker_without_its_stream_is_not_ready(
    status: StreamStatus, reason: str, cnc_model: ScoringModel
) -> None:
    assert reason in unready_reasons(status, {"cnc": cnc_model}, ["cnc"])


def test_a_worker_is_ready_with_partitions_and_every_model(cnc_model: ScoringModel) -> None:
    assert unready_reasons(READY, {"cnc": cnc_model}, ["cnc"]) == []
    assert unready_reasons(READY, {"cnc": cnc_model}, ["cnc", "pump"]) == [
        "no model loaded for pump"]


def test_an_unattached_probe_reports_starting() -> None:
    assert FaustProbe("t").status() == StreamStatus("starting")


@pytest.fixture
def metrics(cnc_model: ScoringModel) -> Metrics:
    metrics = Metrics(CollectorRegistry(), lag=FakeLag())
    metrics.serve(cnc_model)
    report = BatchReport(
        predictions=2, anomalies=1, dead_letters={"undecodable": 1}, states={}, replayed=0,
        latency=Buckets((2,) + (0,) * len(LATENCY_BUCKETS_S), 0.04),
        failure_probability=Buckets((0,) * len(FAILURE_PROBABILITY_BUCKETS) + (2,), 0.5),
    )
    metrics.record_batch(3, report, 0.01)
    return metrics


class FakeLag:
    topic = "assetwatch.telemetry"

    def lag(self) -> dict[int, int]:
        return {0: 2}


@pytest.fixture
def stream() -> FakeStream:
    return FakeStream(StreamStatus("starting"))


@pytest.fixture
def endpoint(metrics: Metrics, stream: FakeStream) -> Iterator[str]:
    ticks = iter(range(0, 1000, 10))
    health = Health(["cnc"], metrics, stream, clock=lambda: float(next(ticks)))
    server = MonitoringServer(0, metrics.registry, health, host="127.0.0.1")
    port = server.start()
    yield f"http://127.0.0.1:{port}"
    server.close()


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_health_answers_503_until_ready_then_200_with_totals(
    endpoint: str, stream: FakeStream, cnc_model: ScoringModel
) -> None:
    status, content_type, body = _get(f"{endpoint}/health")
    assert (status, content_type) == (503, "application/json")
    assert json.loads(body)["reasons"] == ["broker starting", "no telemetry partition assigned"]

    stream.current = READY
    status, _, body = _get(f"{endpoint}/health")

    assert status == 200
    document: dict[str, Any] = json.loads(body)
    assert document["uptime_s"] > 0
    del document["uptime_s"]
    assert document == {
        "status": "ready", "reasons": [],
        "broker": {"state": "connected", "rebalancing": False, "recovering": False},
        "partitions": [0, 1, 2], "consumer_lag": {"0": 0, "1": 3},
        "models": {"cnc": {"name": cnc_model.name, "version": cnc_model.version}},
        "totals": {"readings": 3, "predictions": 2, "dead_letters": 1, "anomalies": 1,
                   "skipped_replays": 0},
        "average_failure_probability": 0.25,
    }


def test_metrics_and_live_are_served(endpoint: str) -> None:
    status, content_type, body = _get(f"{endpoint}/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    assert "assetwatch_readings_consumed_total 3.0" in body
    assert 'assetwatch_consumer_lag{partition="0",topic="assetwatch.telemetry"} 2.0' in body
    assert _get(f"{endpoint}/live")[0] == 200
    assert _get(f"{endpoint}/nothing")[0] == 404


def test_a_taken_port_is_a_config_error(endpoint: str, metrics: Metrics) -> None:
    port = int(endpoint.rsplit(":", 1)[1])
    health = Health(["cnc"], metrics, FakeStream(READY))
    with pytest.raises(ConfigError, match=str(port)):
        MonitoringServer(port, metrics.registry, health, host="127.0.0.1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _progress_health(metrics: Metrics, stream: FakeStream) -> tuple[Health, AgentProgress, Clock]:
    clock = Clock()
    progress = AgentProgress(clock=clock, exit=lambda code: None)
    return Health(["cnc"], metrics, stream, clock=clock, progress=progress, stall_s=60), \
        progress, clock


def test_lag_without_completed_batches_for_longer_than_the_bound_is_not_ready(
    metrics: Metrics,
) -> None:
    stream = FakeStream(READY)
    health, progress, clock = _progress_health(metrics, stream)
    progress.batch_done()
    assert health.check()[0]  # lag 3, a batch just done
    clock.now += 59
    assert health.check()[0]
    clock.now += 2
    ready, document = health.check()
    assert not ready
    assert document["reasons"] == ["no batch completed for 61 s while lag is 3"]
    progress.batch_done()
    assert health.check()[0]


def test_an_idle_worker_that_just_got_readings_is_not_stalled(metrics: Metrics) -> None:
    stream = FakeStream(StreamStatus("connected", partitions=(0,), lag={0: 0}))
    health, progress, clock = _progress_health(metrics, stream)
    progress.batch_done()
    clock.now += 3600  # idle for an hour, no lag
    assert health.check()[0]
    stream.current = READY  # readings arrive
    assert health.check()[0]
    clock.now += 61  # ... and no batch completes
    assert health.check()[1]["reasons"] == ["no batch completed for 61 s while lag is 3"]


def test_a_crashing_agent_is_not_ready_until_the_bound_passes(metrics: Metrics) -> None:
    health, progress, clock = _progress_health(metrics, FakeStream(READY))
    progress.crashed(ValueError("bad\nline"))
    progress.crashed(ValueError("bad\nline"))
    clock.now += 5
    ready, document = health.check()
    assert not ready
    assert document["reasons"] == [
        "agent crashed 2 times, last 5 s ago (ValueError: bad\\x0aline)"]
    progress.batch_done()
    clock.now += 60
    assert health.check()[0]


def test_a_failed_worker_is_neither_ready_nor_live(
    metrics: Metrics, stream: FakeStream
) -> None:
    exits: list[int] = []
    progress = AgentProgress(exit=exits.append)
    health = Health(["cnc"], metrics, FakeStream(READY), progress=progress)
    server = MonitoringServer(0, metrics.registry, health, host="127.0.0.1")
    url = f"http://127.0.0.1:{server.start()}"
    try:
        assert _get(f"{url}/live")[0] == 200
        progress.fail("scoring helper lost: gone")
        status, _, body = _get(f"{url}/live")
        assert (status, json.loads(body)["reason"]) == (503, "scoring helper lost: gone")
        status, _, body = _get(f"{url}/health")
        assert status == 503 and "scoring helper lost: gone" in json.loads(body)["reasons"]
        assert exits == [EXIT_SCORING_LOST]
    finally:
        server.close()

"""Nothing lost: poison input, a worker killed with SIGKILL, workers joining and leaving.

Each test accounts for every reading by event id (poison by its source offset) and prints
one JSON line of figures: sent, predictions, dead letters, duplicates, lost.
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from assetwatch.agents.commands.simulate import SimulationPlan, simulated_readings
from assetwatch.agents.kafka.consumer import Record
from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.agents.local.broker import free_ports
from assetwatch.features.offline import compute_features
from assetwatch.features.profiles import load_profile
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings
from tests.integration.conftest import (
    ReadingStream,
    WorkerProcess,
    champion,
    collect,
    poll_until,
)

pytestmark = pytest.mark.integration

OUTPUTS = ("predictions_topic", "dead_letter_topic")


def _readings(plan: SimulationPlan) -> list[dict[str, Any]]:
    return list(simulated_readings(load_profile("cnc"), plan, threading.Event(), time.time))


def _topics(settings: Settings) -> list[str]:
    return [getattr(settings, name) for name in OUTPUTS]


def _predicted(records: list[Record]) -> Counter[str]:
    return Counter(r.fields["event_id"] for r in records if r.kind == "Prediction")


def _all_predicted(ids: set[str]) -> Callable[[list[Record]], bool]:
    return lambda records: ids <= set(_predicted(records))


def _figures(test: str, sent: int, records: list[Record], ids: set[str]) -> dict[str, Any]:
    predicted = _predicted(records)
    figures = {
        "test": test, "sent": sent,
        "predictions": sum(predicted.values()),
        "dead_letters": sum(1 for r in records if r.kind == "DeadLetter"),
        "duplicates": sum(n - 1 for n in predicted.values()),
        "lost": len(ids - set(predicted)),
    }
    print(json.dumps(figures))
    return figures


def _assert_scores_match_an_uninterrupted_run(
    settings: Settings, readings: list[dict[str, Any]], records: list[Record]
) -> None:
    """Every prediction, duplicates included, equals the offline run over all readings."""
    frame = pd.DataFrame([{"asset_id": r["asset_id"], "timestamp": r["timestamp"],
                           **r["sensors"]} for r in readings])
    model = champion(settings, "cnc")
    assert model is not None
    expected = model.bundle.score(compute_features(frame, load_profile("cnc")).to_numpy())
    by_event = {r["event_id"]: i for i, r in enumerate(readings)}
    predictions = [r for r in records if r.kind == "Prediction"]
    index = np.array([by_event[r.fields["event_id"]] for r in predictions])
    got = np.array([r.fields["anomaly_score"] for r in predictions])
    off = np.flatnonzero(~np.isclose(got, expected.anomaly_score[index], rtol=1e-9, atol=0))
    # each mismatch named: which reading, where its prediction landed, and when it was made
    assert off.size == 0, [
        (predictions[i].fields["event_id"], predictions[i].partition, predictions[i].offset,
         predictions[i].fields["processed_timestamp"], got[i], expected.anomaly_score[index[i]])
        for i in off.tolist()[:10]]


def _poison(reading: dict[str, Any]) -> dict[str, bytes | None]:
    """Bad records of every kind, keyed by the reason a worker must give."""
    avro = codec("TelemetryReading")
    as_json = {**reading, "event_id": "poison"}

    def json_with(**changes: Any) -> bytes:
        return json.dumps({**as_json, **changes}).encode()

    sensors = reading["sensors"]
    return {
        "undecodable": b"\x00\x01garbage\xff",
        "schema_mismatch": json_with(sensors={**sensors, "temperature": "hot"}),
        "missing_sensor": json_with(sensors={k: v for k, v in sensors.items() if k != "power"}),
        "unexpected_sensor": json_with(sensors={**sensors, "humidity": 40.0}),
        "non_finite_value": avro.encode({**as_json, "sensors": {**sensors, "power": math.nan}}),
        "out_of_range": json_with(sensors={**sensors, "vibration": -3.0}),
        "unknown_asset_type": json_with(asset_type="press"),
        "oversized": json_with(note="x" * 70_000),
        "future_timestamp": json_with(timestamp=reading["timestamp"] + 3_600_000),
        "late": json_with(timestamp=reading["timestamp"] - 120_000),
    }


def test_a_mixed_stream_with_poison_is_fully_accounted(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    settings = make_settings(profiles=("cnc",))
    readings = _readings(SimulationPlan(assets=12, count=2400, rate=1e9, seed=21))
    base = readings[100]
    poison = _poison(base)
    worker = start_worker(settings)
    publisher = ReadingPublisher(settings)
    for i, reading in enumerate(readings):
        publisher.send(reading)
        if i % 240 == 120:  # poison spread through the stream, keyed like real readings
            for value in poison.values():
                publisher.send_raw(base["asset_id"].encode(), value)
    publisher.flush()
    sent = len(readings) + 10 * len(poison)
    ids = {r["event_id"] for r in readings}

    records = collect(settings, _topics(settings), lambda rs: len(rs) >= sent,
                      workers=(worker,))

    figures = _figures("poison", sent, records, ids)
    assert (figures["lost"], figures["duplicates"]) == (0, 0)
    dead = [r.fields for r in records if r.kind == "DeadLetter"]
    assert Counter(d["reason"] for d in dead) == {reason: 10 for reason in poison}
    assert {d["original_value"] for d in dead} == set(poison.values())
    assert len({(d["source_partition"], d["source_offset"]) for d in dead}) == len(dead)
    assert figures["predictions"] + figures["dead_letters"] == sent


def test_a_worker_killed_with_sigkill_loses_nothing_after_restart(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    settings = make_settings(profiles=("cnc",))
    readings = _readings(SimulationPlan(assets=12, count=12 * 500, rate=1e9, seed=22))
    ids = {r["event_id"] for r in readings}
    first = start_worker(settings)
    sender = threading.Thread(
        target=lambda: publish(ReadingPublisher(settings), readings, rate=1500))
    sender.start()
    collect(settings, _topics(settings), lambda rs: len(rs) >= len(readings) // 3,
            workers=(first,))
    helpers = _children(first.process.pid)  # the scoring helper, its resource tracker
    assert helpers
    first.process.send_signal(signal.SIGKILL)
    first.process.wait()

    second = start_worker(settings)
    sender.join()
    records = collect(settings, _topics(settings), _all_predicted(ids), workers=(second,))

    figures = _figures("sigkill", len(readings), records, ids)
    assert figures["lost"] == 0 and figures["dead_letters"] == 0
    _assert_scores_match_an_uninterrupted_run(settings, readings, records)
    poll_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in helpers),
               f"helpers {helpers} of the killed worker to exit", lambda: None, timeout_s=30)


def test_workers_joining_and_leaving_mid_stream_lose_nothing(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    ports = free_ports(2)
    settings = make_settings(profiles=("cnc",), metrics_port=ports[0])
    first = start_worker(settings)
    stream = ReadingStream(settings, _readings(
        SimulationPlan(assets=24, count=24 * 5000, rate=1e9, seed=23)), rate=600)
    collect(settings, _topics(settings), lambda rs: len(rs) >= 2400, workers=(first,))
    # joins: a rebalance while readings flow
    second = start_worker(settings.model_copy(update={"metrics_port": ports[1]}))

    def split() -> list[set[int]] | None:
        held = [set((w.health() or {}).get("partitions") or ()) for w in (first, second)]
        return held if all(held) and not held[0] & held[1] else None

    held = poll_until(split, "the two workers splitting the partitions", second.alive, 90)
    assert held[0] | held[1] == set(range(settings.partitions))
    joined = stream.sent
    collect(settings, _topics(settings), lambda rs: len(rs) >= joined + 1200,
            workers=(first, second))
    assert first.stop() == 0  # leaves: another rebalance, the stream still flowing
    stream.until_sent(stream.sent + 1200, (second,))
    readings = stream.stop()
    ids = {r["event_id"] for r in readings}
    records = collect(settings, _topics(settings), _all_predicted(ids), workers=(second,))

    figures = _figures("rebalance", len(readings), records, ids)
    assert figures["lost"] == 0 and figures["dead_letters"] == 0
    _assert_scores_match_an_uninterrupted_run(settings, readings, records)


def _children(pid: int) -> list[int]:
    """Child processes of every thread of ``pid`` (the scoring helper starts on a thread)."""
    children = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    for task in tasks:
        try:
            children.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return children


def _rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children (the scoring helper), from /proc."""
    total = 0
    for each in (pid, *_children(pid)):
        try:
            status = Path(f"/proc/{each}/status").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) * 1024 for line in status.splitlines()
                      if line.startswith("VmRSS:"))
    return total


class MemoryWatch(threading.Thread):
    """Samples a worker's resident memory every 0.2 s until stopped (the figure, not a sync)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples = pid, [_rss_bytes(pid)]
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.samples.append(_rss_bytes(self.pid))


BURST_MEMORY_GROWTH_BYTES = 96 * 2**20
"""Bound on a worker's growth during a burst (measured: +23 MB for 40,000 readings): its
queues and fetch buffers are bounded; buffering the burst would take well over this."""


def test_a_tenfold_burst_keeps_memory_bounded_and_drains(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    settings = make_settings(profiles=("cnc",))
    steady = _readings(SimulationPlan(assets=50, count=2_000, rate=1e9, seed=24,
                                      asset_prefix="steady"))
    burst = _readings(SimulationPlan(assets=50, count=40_000, rate=1e9, seed=25,
                                     asset_prefix="burst"))
    worker = start_worker(settings)
    publish(ReadingPublisher(settings), steady, rate=400)
    collect(settings, _topics(settings), lambda rs: len(rs) >= len(steady), workers=(worker,))
    watch = MemoryWatch(worker.process.pid)
    watch.start()

    started = time.monotonic()
    publish(ReadingPublisher(settings), burst)  # as fast as the producer goes: >10x steady
    sent_s = time.monotonic() - started
    ids = {r["event_id"] for r in steady + burst}
    records = collect(settings, _topics(settings), _all_predicted(ids), workers=(worker,),
                      timeout_s=300)
    drained_s = time.monotonic() - started
    watch.done.set()
    watch.join()

    figures = _figures("burst", len(steady) + len(burst), records, ids)
    growth = max(watch.samples) - watch.samples[0]
    print(json.dumps({"burst_rate_per_s": round(len(burst) / sent_s),
                      "drained_s": round(drained_s, 1),
                      "rss_start_mb": round(watch.samples[0] / 2**20),
                      "rss_peak_mb": round(max(watch.samples) / 2**20)}))
    assert figures["lost"] == 0 and figures["duplicates"] == 0
    assert len(burst) / sent_s > 10 * 400
    assert growth < BURST_MEMORY_GROWTH_BYTES, growth

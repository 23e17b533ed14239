"""A worker frozen past the session timeout (SIGSTOP), then resumed (issue 10, defect 6).

Its partitions go to the other worker, which scores on; when it resumes, its late writes
must never replace newer state: a worker recovering the changelog afterwards must restore
every asset's newest state (its next predictions equal an uninterrupted offline run).
Prints one JSON line of figures: sent, predictions, dead letters, duplicates, lost, plus the
changelog's stale records and the zombie's fenced batches.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from assetwatch.agents.commands.simulate import SimulationPlan
from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.agents.kafka.topics import state_changelog_topic
from assetwatch.agents.local.broker import free_port
from assetwatch.features.state import source_position, supersedes
from assetwatch.settings import Settings
from tests.integration.conftest import WorkerProcess, collect, http_get, poll_until
from tests.integration.test_failures import (
    _all_predicted,
    _assert_scores_match_an_uninterrupted_run,
    _figures,
    _readings,
    _topics,
)

pytestmark = pytest.mark.integration

ASSETS = 24
PER_ASSET = 400


Logged = tuple[int, int, bytes, bytes | None, int]


def _read_all(settings: Settings, topic: str) -> list[Logged]:
    """Every record of ``topic``: (partition, offset, key, value, timestamp ms), in log order."""
    consumer = Consumer({**settings.kafka_client_config(),
                         "group.id": f"zombie-check-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    partitions = settings.partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    records, at_end = [], set()
    try:
        while len(at_end) < partitions:
            for msg in consumer.consume(1000, 1.0):
                error = msg.error()
                if error is not None:
                    assert error.code() == KafkaError._PARTITION_EOF, error
                    at_end.add(msg.partition())
                    continue
                records.append((msg.partition(), msg.offset(), msg.key(), msg.value(),
                                msg.timestamp()[1]))
    finally:
        consumer.close()
    return records


def _changelog(settings: Settings) -> tuple[dict[bytes, bytes], list[int], int]:
    """What recovery keeps per asset, when stale records were written, assets last written stale.

    A stale record is older (by source offset) than one already written for its asset.
    """
    kept: dict[bytes, bytes] = {}
    last: dict[bytes, bytes] = {}
    stale = []
    for _, _, key, value, timestamp_ms in _read_all(settings, state_changelog_topic(settings)):
        assert value is not None
        if key in kept and not supersedes(value, kept[key]):
            stale.append(timestamp_ms)
        else:
            kept[key] = value
        last[key] = value
    return kept, stale, sum(1 for key in kept if last[key] != kept[key])


def _newest_offsets(settings: Settings) -> dict[bytes, tuple[int, int]]:
    """(partition, offset) of each asset's newest reading on the telemetry topic."""
    newest: dict[bytes, tuple[int, int]] = defaultdict(lambda: (-1, -1))
    for partition, offset, key, _, _ in _read_all(settings, settings.telemetry_topic):
        newest[key] = max(newest[key], (partition, offset))
    return dict(newest)


def _restored(worker: WorkerProcess, asset: str) -> dict[str, Any]:
    """The calibration part of ``GET /assets/{id}``: read from the worker's state table."""
    status, body = http_get(f"http://127.0.0.1:{worker.settings.metrics_port}/assets/{asset}")
    assert status == 200, body
    calibration: dict[str, Any] = json.loads(body)["calibration"]
    return calibration


def _owns(worker: WorkerProcess, partitions: set[int]) -> Callable[[], bool]:
    def check() -> bool:
        health = worker.health()
        return health is not None and set(health["partitions"]) == partitions
    return check


def _ready(*workers: WorkerProcess) -> bool:
    """Every worker ready: holding partitions, connected, not rebalancing or recovering."""
    documents = [w.health() for w in workers]
    return all(d is not None and d["status"] == "ready" for d in documents)


def test_a_frozen_worker_resumed_never_replaces_newer_state(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    settings = make_settings(profiles=("cnc",))
    readings = _readings(SimulationPlan(assets=ASSETS, count=ASSETS * (PER_ASSET + 1),
                                        rate=1e9, seed=61))
    stream, final = readings[:-ASSETS], readings[-ASSETS:]  # final: one more per asset
    assert len({r["asset_id"] for r in final}) == ASSETS
    stream_ids = {r["event_id"] for r in stream}
    everything = set(range(settings.partitions))

    def started() -> WorkerProcess:
        return start_worker(settings.model_copy(update={"metrics_port": free_port()}))

    zombie, taker = started(), started()
    poll_until(lambda: _ready(zombie, taker), "both workers to hold partitions", zombie.alive,
               timeout_s=90)
    sender = threading.Thread(
        target=lambda: publish(ReadingPublisher(settings), stream, rate=800))
    sender.start()
    collect(settings, _topics(settings), lambda rs: len(rs) >= len(stream) // 3,
            workers=(zombie, taker))

    zombie.process.send_signal(signal.SIGSTOP)  # frozen mid-stream, its helper left running
    try:
        poll_until(_owns(taker, everything), "the other worker to own every partition",
                   taker.alive, timeout_s=90)
        sender.join()
        collect(settings, _topics(settings), _all_predicted(stream_ids), workers=(taker,),
                timeout_s=180)  # the taker has scored well beyond the freeze: all of it
    finally:
        resumed_ms = int(time.time() * 1000)
        zombie.process.send_signal(signal.SIGCONT)
    poll_until(lambda: not _owns(taker, everything)() and _ready(zombie, taker),
               "the resumed worker to rejoin the group", zombie.alive, timeout_s=120)
    assert zombie.stop() == 0 and taker.stop() == 0

    kept, stale, stale_last = _changelog(settings)
    late = [t for t in stale if t >= resumed_ms]  # written by the zombie after it resumed
    recovery_picks = {key: source_position(raw) for key, raw in kept.items()}
    newest = _newest_offsets(settings)

    # A recovery: a fresh worker restores every asset's state; it must be the newest...
    fresh = started()
    poll_until(lambda: _ready(fresh), "the fresh worker to recover", fresh.alive, timeout_s=90)
    behind = []
    for asset in sorted({r["asset_id"] for r in stream}):
        mine = [r for r in stream if r["asset_id"] == asset]
        restored = _restored(fresh, asset)
        if (restored["readings_seen"], restored["watermark_ms"]) != (
                len(mine), max(r["timestamp"] for r in mine)):
            behind.append(asset)
    # ...and it finishes the stream as an uninterrupted run would.
    publish(ReadingPublisher(settings), final)
    ids = stream_ids | {r["event_id"] for r in final}
    records = collect(settings, _topics(settings), _all_predicted(ids), workers=(fresh,))

    figures: dict[str, Any] = _figures("zombie", len(readings), records, ids)
    print(json.dumps({"test": "zombie state", "stale_changelog_records": len(stale),
                      "stale_written_after_resume": len(late),
                      "assets_last_written_stale": stale_last,
                      "assets_restored_behind": len(behind),
                      "zombie_fenced_batches": zombie.log_text().count("dropped unacked")}))
    # States queued in Faust's producer before the freeze go out after it (their timestamps
    # are the send's): the check-then-write window the fence leaves, one batch's changed
    # assets at most. Without the fence the resumed worker kept writing batch after batch.
    assert len(late) <= ASSETS, "the resumed worker kept writing states older than the new owner's"
    assert behind == [], "recovery restored states older than the newest"
    assert recovery_picks == newest
    assert figures["lost"] == 0 and figures["dead_letters"] == 0
    _assert_scores_match_an_uninterrupted_run(settings, readings, records)

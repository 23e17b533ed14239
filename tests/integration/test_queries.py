"""The query API of a two-worker group: any worker answers for any asset, via its owner."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from assetwatch.agents.commands.simulate import SimulationPlan, simulated_readings
from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.agents.local.broker import free_ports
from assetwatch.features.profiles import load_profile
from assetwatch.settings import Settings
from tests.integration.conftest import WorkerProcess, collect, http_get, poll_until

pytestmark = pytest.mark.integration

ASSETS = 12


def _get(url: str) -> tuple[int, dict[str, Any]]:
    status, body = http_get(url)
    return status, json.loads(body)


def _answered(url: str) -> dict[str, Any] | None:
    status, body = _get(url)
    return body if status == 200 and body.get("recent_predictions") else None


def test_every_asset_is_answered_by_either_worker_of_the_group(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    ports = free_ports(2)
    first = make_settings(profiles=("cnc",), metrics_port=ports[0])
    second = first.model_copy(update={"metrics_port": ports[1]})
    workers = [start_worker(first), start_worker(second)]
    for worker in workers:
        worker.wait_ready()
    poll_until(lambda: all(w.health()["status"] == "ready"  # type: ignore[index]
                           and w.health()["partitions"] for w in workers),  # type: ignore[index]
               "both workers holding partitions", workers[0].alive, 120)
    readings = list(simulated_readings(load_profile("cnc"), SimulationPlan(
        assets=ASSETS, count=ASSETS * 20, rate=1e9, seed=5), threading.Event(), time.time))
    assert publish(ReadingPublisher(first), readings) == len(readings)
    collect(first, [first.predictions_topic], lambda rs: len(rs) >= len(readings),
            workers=tuple(workers))
    bases = [f"http://127.0.0.1:{port}" for port in ports]

    owners = {}
    for asset in sorted({r["asset_id"] for r in readings}):
        answers = [poll_until(lambda b=base, a=asset: _answered(f"{b}/assets/{a}"),
                              f"{asset} from {base}", workers[0].alive, 60) for base in bases]
        assert {a["asset_id"] for a in answers} == {asset}
        assert answers[0]["worker"] == answers[1]["worker"]  # one owner, whoever is asked
        assert [("via" in a) for a in answers] == [a["worker"] != b for a, b in zip(
            answers, bases, strict=True)]  # the non-owner fetched it from the owner
        latest = answers[0]["latest"]
        assert latest["asset_id"] == asset and latest["model_version"]
        assert len(answers[0]["features"]) > 10
        assert answers[0]["calibration"]["readings_seen"] == 20
        owners[asset] = answers[0]["worker"]
    assert set(owners.values()) == set(bases)  # both workers own some: the proxy was exercised

    listed = {base: {row["asset_id"] for row in _get(f"{base}/assets")[1]["assets"]}
              for base in bases}
    assert listed[bases[0]].isdisjoint(listed[bases[1]])
    assert listed[bases[0]] | listed[bases[1]] == set(owners)
    status, models = _get(f"{bases[1]}/models")
    assert status == 200 and [m["profile"] for m in models["models"]] == ["cnc"]
    assert _get(f"{bases[0]}/assets/no-such-asset")[0] == 404
    for worker in workers:  # both loaded their model from MLflow: no progress bar, no warning
        log = worker.log_text()
        assert "serving assetwatch-cnc" in log
        assert not re.search(r"it/s\]|Downloading artifacts|Warning:", log), log[-3000:]

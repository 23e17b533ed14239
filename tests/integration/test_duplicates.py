"""Duplicate event ids on the real broker (issue 10, defect 9).

One prediction per reading, exact re-sends dead-lettered ``resent``, reused ids with other
content ``duplicate_event``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from assetwatch.agents.commands.simulate import SimulationPlan
from assetwatch.agents.kafka.producer import ReadingPublisher
from assetwatch.settings import Settings
from tests.integration.conftest import WorkerProcess, collect
from tests.integration.test_failures import _figures, _readings, _topics

pytestmark = pytest.mark.integration


def test_resent_and_reused_event_ids_are_dead_letters(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    settings = make_settings(profiles=("cnc",))
    readings = _readings(SimulationPlan(assets=12, count=12 * 50, rate=1e9, seed=41))
    newest: dict[str, list[dict[str, Any]]] = {}
    for reading in readings:
        newest.setdefault(reading["asset_id"], []).append(reading)
    resent = [r for rs in newest.values() for r in rs[-2:]]  # within each state's memory
    reused = [{**rs[-1], "sensors": {**rs[-1]["sensors"], "power": rs[-1]["sensors"]["power"]
                                     + 1.0}} for rs in newest.values()]
    worker = start_worker(settings)
    publisher = ReadingPublisher(settings)
    for reading in readings + resent + reused:
        publisher.send(reading)
    publisher.flush()
    sent = len(readings) + len(resent) + len(reused)
    ids = {r["event_id"] for r in readings}

    records = collect(settings, _topics(settings), lambda rs: len(rs) >= sent,
                      workers=(worker,))

    figures = _figures("duplicate ids", sent, records, ids)
    assert (figures["lost"], figures["duplicates"]) == (0, 0)
    reasons = Counter(r.fields["reason"] for r in records if r.kind == "DeadLetter")
    assert reasons == {"resent": len(resent), "duplicate_event": len(reused)}
    assert figures["predictions"] + figures["dead_letters"] == sent

"""The telemetry topic deleted and created again, while the feature states live on.

Its offsets start at 0 anew, below the offsets the assets' states say they applied: taken at
their word, every new reading up to those offsets would be skipped as a replay, silently.
The batch carries its partitions' log ends, and a state claiming an offset at or past its
partition's end keeps its features but not that claim.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from assetwatch.agents.commands.simulate import SimulationPlan
from assetwatch.agents.kafka import clients
from assetwatch.agents.kafka.producer import ReadingPublisher, publish
from assetwatch.agents.kafka.topics import ADMIN_TIMEOUT_S, ensure_topics
from assetwatch.settings import Settings
from tests.integration.conftest import WorkerProcess, collect, poll_until
from tests.integration.test_failures import _figures, _readings, _topics

pytestmark = pytest.mark.integration


def test_readings_of_a_telemetry_topic_created_again_are_scored_not_skipped(
    make_settings: Callable[..., Settings],
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    settings = make_settings(profiles=("cnc",), partitions=2)
    readings = _readings(SimulationPlan(assets=4, count=4 * 40, rate=1e9, seed=43))
    before, after = readings[:4 * 30], readings[4 * 30:]  # ~60 a partition, then ~20
    worker = start_worker(settings)
    publish(ReadingPublisher(settings), before)
    collect(settings, _topics(settings), lambda rs: len(rs) >= len(before), workers=(worker,))
    assert worker.stop() == 0

    admin = clients.admin(settings)
    for future in admin.delete_topics([settings.telemetry_topic],
                                      operation_timeout=ADMIN_TIMEOUT_S).values():
        future.result(timeout=ADMIN_TIMEOUT_S)
    poll_until(lambda: settings.telemetry_topic not in admin.list_topics(
        timeout=ADMIN_TIMEOUT_S).topics, "the telemetry topic deleted", lambda: None, 60)
    assert ensure_topics(settings) == [settings.telemetry_topic]

    worker = start_worker(settings)  # its states come back from their changelog
    publish(ReadingPublisher(settings), after)
    records = collect(settings, _topics(settings),
                      lambda rs: len(rs) >= len(readings), workers=(worker,))

    ids = {r["event_id"] for r in readings}
    figures = _figures("topic created again", len(readings), records, ids)
    assert (figures["lost"], figures["duplicates"], figures["dead_letters"]) == (0, 0, 0)
    assert "whose log ends at" in worker.log_text()

"""Failure-risk alerts (k of n, cool-down, recovery) and silent-sensor alerts."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from assetwatch.agents.worker.metrics import Metrics
from assetwatch.agents.worker.silence import SilenceWatch
from assetwatch.models.alerts import AlertConfig, AssetAlertTracker
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings

# Each step: (anomaly, failure probability); the expected transition after it, or None.
Step = tuple[bool, float, str | None]
CASES: dict[str, list[Step]] = {
    "two of five flagged: nothing": [
        (True, 0.1, None), (False, 0.1, None), (False, 0.6, None), (False, 0.1, None)],
    "third flag raises, once": [
        (True, 0.1, None), (False, 0.6, None), (False, 0.1, None), (False, 0.9, "RAISED"),
        (True, 0.9, None), (True, 0.9, None)],
    "recovers only when none of the last five is flagged": [
        (True, 0.1, None), (True, 0.1, None), (True, 0.1, "RAISED"), (False, 0.1, None),
        (False, 0.1, None), (False, 0.1, None), (False, 0.1, None), (False, 0.1, "RECOVERED")],
    "the cool-down holds a second episode back": [
        (True, 0.1, None), (True, 0.1, None), (True, 0.1, "RAISED"), *[(False, 0.1, None)] * 4,
        (False, 0.1, "RECOVERED"), (True, 0.1, None), (True, 0.1, None), (True, 0.1, None)],
}


@pytest.mark.parametrize("steps", CASES.values(), ids=list(CASES))
def test_k_of_n_table(steps: list[Step]) -> None:
    tracker = AssetAlertTracker(AlertConfig(k=3, n=5, threshold=0.5, cooldown_s=60))
    got = []
    for i, (anomaly, probability, _) in enumerate(steps):
        transition = tracker.observe("a", i * 1000, anomaly, probability, ("f",))
        got.append(None if transition is None else transition.state)
    assert got == [expected for _, _, expected in steps]


def test_the_tracker_agrees_with_the_rule_counted_afresh_at_every_reading() -> None:
    """Its running count of flagged readings is the count over the last n, kept exact."""
    rng = random.Random(5)
    config = AlertConfig(k=3, n=6, threshold=0.5, cooldown_s=4)
    tracker = AssetAlertTracker(config)
    recent: list[tuple[bool, float, tuple[str, ...]]] = []
    raised, last_raise = False, None
    for i in range(5_000):
        anomaly, probability = rng.random() < 0.3, rng.random() * 0.7
        names = (f"f{rng.randrange(4)}", f"f{rng.randrange(4)}")
        flagged = anomaly or probability >= config.threshold
        recent = [*recent, (flagged, probability, names)][-config.n :]
        hits = [entry for entry in recent if entry[0]]
        cooling = last_raise is not None and i - last_raise < config.cooldown_s
        expected = None
        if not raised and len(hits) >= config.k and not cooling:
            raised, last_raise, expected = True, i, "RAISED"
        elif raised and not hits:
            raised, expected = False, "RECOVERED"
        transition = tracker.observe("a", i * 1000, anomaly, probability, names)
        assert (None if transition is None else transition.state) == expected, i
        if expected == "RAISED":
            assert transition is not None and transition.flagged == len(hits)
            assert transition.failure_probability == sum(p for _, p, _ in hits) / len(hits)


def test_the_tracker_keeps_at_most_max_assets_and_forgets_the_least_recent() -> None:
    tracker = AssetAlertTracker(AlertConfig(k=2, n=3, threshold=0.5, cooldown_s=0),
                                max_assets=100)
    assert tracker.observe("kept", 0, True, 0.9, ()) is None  # one hit of two
    for i in range(10_000):
        tracker.observe(f"one-off-{i}", i, False, 0.1, ())
        if i % 50 == 0:
            tracker.observe("kept", i, False, 0.1, ())  # seen now and then: stays
    assert len(tracker._assets) == 100
    assert "kept" in tracker._assets and "one-off-0" not in tracker._assets


def test_a_raise_after_the_cool_down_and_its_details() -> None:
    tracker = AssetAlertTracker(AlertConfig(k=2, n=3, threshold=0.5, cooldown_s=10))
    assert tracker.observe("a", 0, False, 0.9, ("x", "y")) is None
    raised = tracker.observe("a", 1000, False, 0.7, ("y", "z"))
    assert raised is not None
    assert (raised.state, raised.severity, raised.flagged) == ("RAISED", "CRITICAL", 2)
    assert raised.failure_probability == pytest.approx(0.8)
    assert raised.contributing[0] == "y"
    for t in (2000, 3000, 4000):
        last = tracker.observe("a", t, False, 0.1, ())
    assert last is not None and last.state == "RECOVERED"
    assert tracker.observe("a", 5000, True, 0.1, ()) is None
    assert tracker.observe("a", 6000, True, 0.1, ()) is None  # 6 s after the raise: cooling
    assert tracker.observe("b", 6000, True, 0.1, ()) is None  # other assets are separate
    again = tracker.observe("a", 11_000, True, 0.1, ())
    assert again is not None and (again.state, again.severity) == ("RAISED", "WARNING")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


Watch = tuple[SilenceWatch, FakeClock, set[int], list[dict[str, Any]]]


@pytest.fixture
def watch(make_settings: Callable[..., Settings]) -> Watch:
    clock, assigned, sent = FakeClock(), {0, 1}, []
    silence = SilenceWatch(make_settings(silence_after_s=10, silence_forget_s=100),
                           Metrics(CollectorRegistry()), clock=clock)
    silence.attach(lambda: assigned,
                   lambda _key, value: sent.append(codec("AssetAlert").decode(value)))
    return silence, clock, assigned, sent


def test_silence_raises_once_then_recovers(watch: Watch) -> None:
    silence, clock, _, sent = watch
    silence.seen({"a": (0, "cnc", 1000), "b": (1, "cnc", 1000)})
    clock.now = 9.0
    silence.seen({"b": (1, "cnc", 10_000)})
    assert silence.check() == []
    clock.now = 10.5
    assert silence.check() == ["a"]
    clock.now = 30.0
    assert silence.check() == ["b"]  # a is already reported
    silence.seen({"a": (0, "cnc", 40_000)})
    clock.now = 35.0
    assert silence.check() == []
    assert [(r["asset_id"], r["kind"], r["state"], r["event_timestamp"]) for r in sent] == [
        ("a", "SENSOR_SILENT", "RAISED", 1000), ("b", "SENSOR_SILENT", "RAISED", 10_000),
        ("a", "SENSOR_SILENT", "RECOVERED", 40_000)]


def test_assets_of_partitions_that_moved_away_are_not_reported(watch: Watch) -> None:
    silence, clock, assigned, _ = watch
    silence.seen({"a": (0, "cnc", 1000), "b": (1, "cnc", 1000)})
    assigned.discard(1)  # a rebalance gave partition 1 to another worker
    clock.now = 60.0
    assert silence.check() == ["a"]


def test_one_off_ids_are_forgotten_after_silence_forget_s(watch: Watch) -> None:
    silence, clock, _, sent = watch
    silence.seen({f"typo-{i}": (0, "cnc", 1000) for i in range(50)} | {"a": (0, "cnc", 1000)})
    clock.now = 11.0
    assert len(silence.check()) == 51 and silence.watched == 51
    clock.now = 95.0
    silence.seen({"a": (0, "cnc", 95_000)})  # a recovers; the typos stay silent
    clock.now = 101.0
    assert silence.check() == [] and silence.watched == 1  # only a is still watched
    clock.now = 106.0
    assert silence.check() == ["a"]  # a is watched as before
    clock.now = 196.0
    assert silence.check() == [] and silence.watched == 0
    assert sum(r["state"] == "RAISED" for r in sent) == 52  # one per id, never repeated


def test_telemetry_text_is_escaped_in_log_lines(
    watch: Watch, caplog: pytest.LogCaptureFixture
) -> None:
    silence, clock, _, _ = watch
    forged = "cnc-1\n2024-01-01 ERROR forged\x1b[31m" + "x" * 10_000
    silence.seen({forged: (0, "cnc", 1000)})
    clock.now = 11.0
    with caplog.at_level("WARNING"):
        assert silence.check() == [forged]
    (line,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in line and "\x1b" not in line and len(line) < 300
    assert "cnc-1\\x0a2024-01-01 ERROR forged\\x1b[31m" in line


def test_asset_alert_records_round_trip() -> None:
    from assetwatch.scoring.alerts import asset_alert_record

    record = asset_alert_record("SENSOR_SILENT", "RAISED", "WARNING", "cnc-001", "cnc", 5, 6)
    assert codec("AssetAlert").decode(codec("AssetAlert").encode(record)) == record

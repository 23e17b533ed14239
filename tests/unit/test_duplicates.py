"""Duplicate event ids (issue 10, defect 9): remembered per asset, in the state's bytes.

A reading whose event id its asset's state remembers is a dead letter: ``resent`` when its
content (time and values) is the same, ``duplicate_event`` when it differs; neither is
folded. A replay (same partition and offset) stays a silent skip.
"""

from __future__ import annotations

import array
import json
from collections.abc import Callable
from typing import Any

import pytest

from assetwatch.features.extractor import FeatureExtractor
from assetwatch.features.profiles import Profile
from assetwatch.features.state import RECENT_EVENTS, AssetState, content_digest, event_digest
from assetwatch.models.bundle import ScoringModel
from assetwatch.schemas.codecs import codec
from assetwatch.scoring.outcome import Outcome
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound
from assetwatch.settings import Settings

TOPIC, PARTITION = "assetwatch.telemetry", 0


@pytest.fixture
def processor(make_settings: Callable[..., Settings], cnc: Profile, cnc_model: ScoringModel,
              now_ms: int) -> BatchProcessor:
    return BatchProcessor(make_settings(profiles=("cnc",)), {"cnc": cnc},
                          {"cnc": cnc_model}.__getitem__, clock=lambda: now_ms / 1000)


def _inbound(reading: dict[str, Any], offset: int, avro: bool = False) -> Inbound:
    value = (codec("TelemetryReading").encode(reading) if avro
             else json.dumps(reading).encode())
    return Inbound(reading["asset_id"].encode(), value, TOPIC, PARTITION, offset)


def _run(processor: BatchProcessor, batch: list[Inbound], store: dict[bytes, bytes]) -> Outcome:
    outcome = processor.score(processor.prepare(batch, store.get))
    store.update({asset: raw for asset, (_, raw) in outcome.states.items()})
    return outcome


def test_a_resend_and_a_reused_id_are_dead_letters_and_not_folded(
    processor: BatchProcessor, make_reading: Callable[..., dict[str, Any]]
) -> None:
    first = make_reading(event_id="e-1")
    later = make_reading(event_id="e-2", timestamp=first["timestamp"] + 1000)
    store: dict[bytes, bytes] = {}
    _run(processor, [_inbound(first, 0), _inbound(later, 1)], store)
    before = dict(store)

    reused = {**make_reading(event_id="e-1", timestamp=first["timestamp"] + 2000)}
    outcome = _run(processor, [_inbound(first, 2, avro=True),  # same reading, other encoding
                               _inbound(reused, 3)], store)

    assert outcome.predictions == []
    assert outcome.dead_letter_reasons == ["resent", "duplicate_event"]
    assert store == before  # neither was folded in


def test_duplicates_within_one_batch_are_caught(
    processor: BatchProcessor, make_reading: Callable[..., dict[str, Any]]
) -> None:
    reading = make_reading(event_id="e-1")
    outcome = _run(processor, [_inbound(reading, 0), _inbound(reading, 1)], {})
    assert (len(outcome.predictions), outcome.dead_letter_reasons) == (1, ["resent"])


def test_a_replay_by_offset_stays_a_silent_skip(
    processor: BatchProcessor, make_reading: Callable[..., dict[str, Any]]
) -> None:
    batch = [_inbound(make_reading(event_id="e-1"), 0)]
    store: dict[bytes, bytes] = {}
    _run(processor, batch, store)
    prepared = processor.prepare(batch, store.get)
    again = processor.score(prepared)
    assert (again.predictions, again.dead_letter_reasons, prepared.replayed) == ([], [], 1)


def test_the_same_id_on_another_asset_is_a_different_event(
    processor: BatchProcessor, make_reading: Callable[..., dict[str, Any]]
) -> None:
    batch = [_inbound(make_reading(event_id="e-1"), 0),
             _inbound(make_reading(event_id="e-1", asset_id="cnc-002"), 1)]
    assert len(_run(processor, batch, {}).predictions) == 2


def test_the_state_remembers_the_newest_events_exactly_through_its_bytes(
    cnc: Profile,
) -> None:
    state = FeatureExtractor(cnc).new_state()
    for i in range(RECENT_EVENTS + 5):
        state.remember(event_digest(f"e-{i}"), content_digest(i, [1.0, 2.0, 3.0, float(i)]))

    again = AssetState.from_bytes(state.to_bytes(), cnc)

    assert again.to_bytes() == state.to_bytes()
    assert again.recent_events == state.recent_events
    assert again.recent_contents == state.recent_contents
    assert len(again.recent_events) == RECENT_EVENTS
    assert again.seen(event_digest("e-4")) is None  # forgotten: the oldest five
    assert again.seen(event_digest("e-5")) == content_digest(5, [1.0, 2.0, 3.0, 5.0])


def test_states_of_the_earlier_formats_are_still_read(cnc: Profile) -> None:
    """An upgraded worker keeps every asset's windows and writes them in the current format.

    Format 3 had no profile digest, format 2 no recent events either.
    """
    state = FeatureExtractor(cnc).new_state()
    state.watermark_ms = 123
    state.remember(event_digest("e-1"), content_digest(1, [1.0, 2.0, 3.0, 4.0]))
    v4 = state.to_bytes()
    floats = list(memoryview(v4).cast("d"))
    v3 = [3.0, *floats[1:5], *floats[6:]]
    recent_at = 5 + 1 + len(state.prev_values)
    v2 = [2.0, *v3[1:recent_at], *v3[recent_at + 1 + 2 * len(state.recent_events):]]

    older = AssetState.from_bytes(array.array("d", v3).tobytes(), cnc)
    oldest = AssetState.from_bytes(array.array("d", v2).tobytes(), cnc)

    assert older.to_bytes() == v4 and older.recent_events == state.recent_events
    assert oldest.watermark_ms == 123 and oldest.recent_events == oldest.recent_contents == []
    assert oldest.windows[0].to_floats() == state.windows[0].to_floats()


def test_a_state_past_its_partitions_end_does_not_swallow_new_readings(
    processor: BatchProcessor, make_reading: Callable[..., dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The telemetry topic deleted and created again: its offsets start at 0 anew.

    Without the log's end, a state that applied offset 40 takes the new offsets 0-2 for a
    replay and skips them silently; with it, they are new readings, scored.
    """
    first = make_reading(event_id="e-old")
    store: dict[bytes, bytes] = {}
    _run(processor, [_inbound(first, 40)], store)
    fresh = [_inbound(make_reading(event_id=f"e-new-{i}",
                                   timestamp=first["timestamp"] + 1000 * (i + 1)), i)
             for i in range(3)]

    blind = processor.prepare(fresh, dict(store).get)
    assert (blind.replayed, sum(map(len, blind.by_profile.values()))) == (3, 0)

    processor.forget()  # the blind run kept its states; start again from the stored one
    prepared = processor.prepare(fresh, store.get, {PARTITION: 3})
    outcome = processor.score(prepared)
    assert (prepared.replayed, len(outcome.predictions), outcome.dead_letter_reasons) == (
        0, 3, [])
    assert "applied offset 40 of partition 0, whose log ends at 3" in caplog.text


def test_a_replay_below_the_partitions_end_stays_a_silent_skip(
    processor: BatchProcessor, make_reading: Callable[..., dict[str, Any]]
) -> None:
    batch = [_inbound(make_reading(event_id="e-1"), 4)]
    store: dict[bytes, bytes] = {}
    _run(processor, batch, store)
    processor.forget()
    for end in (5, 6, 1000):  # 5: the offset just applied was the last in the log
        prepared = processor.prepare(batch, store.get, {PARTITION: end})
        assert prepared.replayed == 1, end

"""The processor's observers: each sees every profile's published rows once per batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import ScoringModel
from assetwatch.schemas.codecs import codec
from assetwatch.scoring.observers import Scored
from assetwatch.scoring.outcome import Outcome
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound, Outbound, Output
from assetwatch.settings import Settings


@dataclass
class RecordingObserver:
    """An observer that keeps what it was shown and adds one drift record per profile."""

    seen: list[Scored] = field(default_factory=list)
    finished: int = 0

    def observe(self, scored: Scored, out: Outcome) -> None:
        self.seen.append(scored)
        out.records[Output.DRIFT_ALERT].append(Outbound(scored.profile.encode(), b"seen"))

    def finish(self, out: Outcome) -> None:
        self.finished += 1


def _readings(make_reading: Callable[..., dict[str, Any]], n: int) -> list[Inbound]:
    encode = codec("TelemetryReading").encode
    return [Inbound(b"cnc-001", encode(make_reading(event_id=f"e{i}",
                                                    timestamp=1_700_000_000_000 + i * 1000)),
                    "t", 0, i) for i in range(n)]


def test_an_observer_sees_the_published_rows_and_adds_its_records(
    make_settings: Callable[..., Settings], make_reading: Callable[..., dict[str, Any]],
    cnc: Profile, cnc_model: ScoringModel, now_ms: int,
) -> None:
    recorder = RecordingObserver()
    processor = BatchProcessor(make_settings(), {"cnc": cnc}, lambda _: cnc_model,
                               clock=lambda: now_ms / 1000, observers=[recorder])

    outcome = processor.process(_readings(make_reading, 5), {}.get)
    empty = processor.process([], {}.get)

    [scored] = recorder.seen
    predictions = [codec("Prediction").decode(p.value) for p in outcome.predictions]
    assert scored.profile == "cnc"
    assert scored.predictions.ids.event_ids == [p["event_id"] for p in predictions]
    assert [scored.predictions.record(i) for i in range(len(scored.predictions))] == predictions
    assert len(scored.items) == len(scored.features) == len(scored.event_ms) == 5
    assert outcome.records[Output.DRIFT_ALERT] == [Outbound(b"cnc", b"seen")]
    assert empty.records[Output.DRIFT_ALERT] == []
    assert recorder.finished == 2

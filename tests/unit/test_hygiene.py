"""Event-time and id hygiene, and dead letters that fit, through the BatchProcessor."""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest

from assetwatch.errors import InvalidReadingError
from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import ScoringModel
from assetwatch.schemas.codecs import AvroCodec, codec, decode_any
from assetwatch.scoring.dead_letters import HEADROOM_BYTES, DeadLetterWriter
from assetwatch.scoring.outcome import Outcome
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound
from assetwatch.settings import Settings

Reading = dict[str, Any]
TOPIC = "assetwatch.telemetry"


@pytest.fixture
def process(
    make_settings: Callable[..., Settings], cnc: Profile, cnc_model: ScoringModel, now_ms: int
) -> Callable[[list[tuple[bytes | None, bytes]]], Outcome]:
    """One processor (state kept across calls) at the fixed clock; offsets count on."""
    processor = BatchProcessor(make_settings(profiles=("cnc",)), {"cnc": cnc},
                               {"cnc": cnc_model}.__getitem__, clock=lambda: now_ms / 1000)
    store: dict[bytes, bytes] = {}
    offsets = iter(range(10**6))

    def run(messages: list[tuple[bytes | None, bytes]]) -> Outcome:
        batch = [Inbound(k, v, TOPIC, 0, next(offsets)) for k, v in messages]
        outcome = processor.process(batch, store.get)
        store.update({asset: raw for asset, (_, raw) in outcome.states.items()})
        return outcome

    return run


def _msg(reading: Reading) -> tuple[bytes, bytes]:
    return reading["asset_id"].encode(), codec("TelemetryReading").encode(reading)


def _letters(outcome: Outcome) -> list[Reading]:
    return [codec("DeadLetter").decode(d.value) for d in outcome.dead_letters]


@pytest.mark.parametrize("ts", [0, -1, -(2**63), 1_700_000_000, "week"], ids=str)
def test_timestamps_too_far_behind_the_clock_are_dead_lettered_too_old(
    process: Callable[..., Outcome], make_reading: Callable[..., Reading], now_ms: int,
    ts: int | str,
) -> None:
    stamp = now_ms - 7 * 86_400_000 - 1 if ts == "week" else ts  # seconds: January 1970 in ms
    outcome = process([_msg(make_reading(timestamp=stamp))])
    assert outcome.dead_letter_reasons == ["too_old"] and outcome.predictions == []
    assert len(outcome.event_timestamps) == 0  # the latency histogram never sees it
    latency = outcome.report(now_ms / 1000).latency
    assert (sum(latency.counts), latency.total) == (0, 0.0)


def test_a_reading_a_week_old_is_still_scored(
    process: Callable[..., Outcome], make_reading: Callable[..., Reading], now_ms: int,
) -> None:
    outcome = process([_msg(make_reading(timestamp=now_ms - 7 * 86_400_000 + 1000))])
    assert outcome.dead_letter_reasons == [] and len(outcome.predictions) == 1


@pytest.mark.parametrize(("fields", "reason"), [
    ({"event_id": ""}, "empty_id"), ({"event_id": "  "}, "empty_id"),
    ({"asset_id": ""}, "empty_id"), ({"asset_id": "x" * 257}, "id_too_long"),
    ({"event_id": "e" * 257}, "id_too_long"),
])
def test_empty_and_overlong_ids_are_dead_lettered(
    process: Callable[..., Outcome], make_reading: Callable[..., Reading], fields: Reading,
    reason: str,
) -> None:
    outcome = process([_msg(make_reading(**fields))])
    assert outcome.dead_letter_reasons == [reason] and outcome.predictions == []
    assert outcome.states == {}  # nothing keyed by such an id is kept


def test_a_reading_ahead_of_the_clock_makes_no_on_time_reading_late(
    process: Callable[..., Outcome], make_reading: Callable[..., Reading], now_ms: int,
) -> None:
    """Defect: +250 s was accepted (skew bound 300 s > grace 30 s) and moved the watermark."""
    ahead = process([_msg(make_reading(timestamp=now_ms + 250_000))])
    on_time = process([_msg(make_reading(timestamp=now_ms - 1000 + i)) for i in range(20)])
    assert ahead.dead_letter_reasons == ["future_timestamp"]
    assert on_time.dead_letter_reasons == [] and len(on_time.predictions) == 20


def test_the_skew_bound_may_not_exceed_the_grace(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match="max_future_skew_s must not exceed late_grace_s"):
        make_settings(max_future_skew_s=300, late_grace_s=30)


@pytest.mark.parametrize("size", [1_000_000, 10_000_000])
def test_an_oversized_reading_gets_a_dead_letter_that_fits(
    process: Callable[..., Outcome], make_reading: Callable[..., Reading], size: int,
) -> None:
    reading = make_reading()
    text = json.dumps({**reading, "pad": ""}).encode()
    value = text.replace(b'"pad": ""', b'"pad": "' + b"p" * (size - len(text)) + b'"')
    assert len(value) == size
    outcome = process([(reading["asset_id"].encode(), value)])
    ((key, letter, *_),) = outcome.dead_letters
    assert len(letter) + len(key or b"") <= 1_000_000 - HEADROOM_BYTES
    (record,) = _letters(outcome)
    assert record["reason"] == "oversized"
    assert record["original_value_size"] == size
    assert record["original_value_sha256"] == hashlib.sha256(value).hexdigest()
    assert value.startswith(record["original_value"]) and len(record["original_value"]) > 900_000
    assert f"original value of {size} bytes truncated" in record["error"]


def test_a_dead_letter_that_fits_keeps_its_value_whole(
    process: Callable[..., Outcome], make_reading: Callable[..., Reading],
) -> None:
    key, value = _msg(make_reading(sensors={"temperature": 9000.0}))
    (record,) = _letters(process([(key, value)]))
    assert (record["original_value"], record["original_value_size"]) == (value, None)


def test_huge_keys_and_texts_are_cut_to_fit() -> None:
    writer = DeadLetterWriter(100_000, lambda: 1.0)
    key, letter = writer.build((b"k" * 500_000, b"v" * 500_000, TOPIC, 0, 7), "key_mismatch",
                               "d" * 500_000, "e" * 500_000, "a" * 500_000)
    assert len(letter) + len(key or b"") <= 100_000 - HEADROOM_BYTES
    record = codec("DeadLetter").decode(letter)
    assert record["original_value_size"] == 500_000 and len(record["asset_id"]) < 1100
    stripped = codec("DeadLetter").decode(writer.stripped(letter, "topic limit"))
    assert stripped["original_value"] == b"" and stripped["original_value_size"] == 500_000


def test_dead_letters_of_the_previous_schema_still_decode() -> None:
    v1 = json.loads((resources.files("assetwatch.schemas") / "dead_letter.v1.avsc").read_text())

    record = {"reason": "late", "error": "e", "source_topic": TOPIC, "source_partition": 1,
              "source_offset": 2, "original_key": None, "original_value": b"x",
              "event_id": None, "asset_id": None, "failed_timestamp": 5}
    old = AvroCodec(v1).encode(record)
    assert not old.startswith(codec("DeadLetter").header)  # another fingerprint
    expected = {**record, "original_value_size": None, "original_value_sha256": None}
    assert codec("DeadLetter").decode(old) == expected
    assert decode_any(old) == ("DeadLetter", expected)


def test_a_rejected_reading_error_pickles_whole() -> None:
    error = pickle.loads(pickle.dumps(InvalidReadingError("late", "31 s behind")))
    assert (error.reason, error.detail) == ("late", "31 s behind")

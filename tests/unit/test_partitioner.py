"""murmur2 as Kafka's Java client computes it, and the processor's partition check."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from assetwatch.features.profiles import Profile
from assetwatch.models.bundle import ScoringModel
from assetwatch.schemas.codecs import codec
from assetwatch.scoring.partitioner import murmur2, partition_for
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound
from assetwatch.settings import Settings

JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}
"""Kafka's clients/src/test/.../utils/UtilsTest.testMurmur2 (signed Java ints)."""


@pytest.mark.parametrize(("key", "signed"), JAVA_VECTORS.items())
def test_murmur2_matches_kafkas_java_test_vectors(key: bytes, signed: int) -> None:
    assert murmur2(key) == signed & 0xFFFFFFFF


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=64))
def test_partition_matches_aiokafka_default_partitioner(key: bytes, partitions: int) -> None:
    assert partition_for(key, partitions) == (aiokafka_murmur2(key) & 0x7FFFFFFF) % partitions


def _processor(settings: Settings, cnc: Profile, model: ScoringModel, now_ms: int
               ) -> BatchProcessor:
    return BatchProcessor(settings, {"cnc": cnc}, lambda _: model, clock=lambda: now_ms / 1000,
                          partitions=settings.partitions)


def test_reading_off_its_partition_is_dead_lettered_with_the_fix(
    make_settings: Callable[..., Settings], cnc: Profile, cnc_model: ScoringModel, now_ms: int,
    make_reading: Callable[..., dict[str, Any]],
) -> None:
    settings = make_settings(partitions=6)
    home = partition_for(b"cnc-001", 6)
    value = codec("TelemetryReading").encode(make_reading())
    batch = [Inbound(b"cnc-001", value, "t", (home + 1) % 6, 5),
             Inbound(b"cnc-001", value, "t", home, 6)]
    processor = _processor(settings, cnc, cnc_model, now_ms)
    prepared = processor.prepare(batch, lambda _: None)
    outcome = processor.score(prepared)
    assert outcome.dead_letter_reasons == ["wrong_partition"]
    letter = codec("DeadLetter").decode(outcome.dead_letters[0].value)
    assert f"belongs on partition {home} of 6" in letter["error"]
    assert "murmur2_random" in letter["error"]
    assert [p.source for p in outcome.predictions] == [batch[1]]
    assert set(prepared.changed.values()) == {home}  # no state written for the stray copy


def test_baseline_reset_off_its_partition_is_dead_lettered(
    make_settings: Callable[..., Settings], cnc: Profile, cnc_model: ScoringModel, now_ms: int,
) -> None:
    settings = make_settings(partitions=6)
    order = codec("BaselineReset").encode({"asset_id": "cnc-001", "asset_type": "cnc",
                                           "requested_timestamp": now_ms, "reason": "test"})
    wrong = (partition_for(b"cnc-001", 6) + 2) % 6
    prepared = _processor(settings, cnc, cnc_model, now_ms).prepare(
        [Inbound(b"cnc-001", order, "t", wrong, 1)], lambda _: None)
    assert prepared.dead_letter_reasons == ["wrong_partition"]
    assert prepared.resets == 0

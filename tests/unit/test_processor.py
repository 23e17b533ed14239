"""BatchProcessor without a broker: every input leaves as one prediction or one dead letter."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from assetwatch.agents.worker.health import health_document
from assetwatch.agents.worker.metrics import Metrics
from assetwatch.agents.worker.probe import StreamStatus
from assetwatch.errors import ModelUnavailableError
from assetwatch.features.profiles import Profile
from assetwatch.features.state import AssetState
from assetwatch.models.bundle import ScoringModel
from assetwatch.schemas.codecs import codec
from assetwatch.scoring import preparation as preparation_module
from assetwatch.scoring.outcome import Outcome
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound
from assetwatch.settings import Settings

Reading = dict[str, Any]
TOPIC = "assetwatch.telemetry"
PARTITION = 3
PREDICTED = "prediction"


@dataclass
class FakeModels:
    """The model provider protocol (profile name -> ScoringModel), recording its calls."""

    models: dict[str, ScoringModel]
    calls: list[str] = field(default_factory=list)

    def __call__(self, profile: str) -> ScoringModel:
        self.calls.append(profile)
        if profile not in self.models:
            raise ModelUnavailableError(f"no model for {profile}")
        return self.models[profile]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(profiles=("cnc", "pump"))


@pytest.fixture
def make_processor(
    settings: Settings, cnc: Profile, pump: Profile, cnc_model: ScoringModel, now_ms: int
) -> Callable[..., BatchProcessor]:
    """A processor serving cnc and pump at a fixed clock; ``models`` defaults to cnc only."""

    def make(models: Callable[[str], ScoringModel] | None = None) -> BatchProcessor:
        return BatchProcessor(
            settings,
            {"cnc": cnc, "pump": pump},
            models if models is not None else FakeModels({"cnc": cnc_model}),
            clock=lambda: now_ms / 1000,
        )

    return make


def _avro(reading: Reading) -> bytes:
    return codec("TelemetryReading").encode(reading)


def _json(reading: Reading) -> bytes:
    return json.dumps(reading).encode()


def _batch(messages: list[tuple[bytes | None, bytes | None]]) -> list[Inbound]:
    """(key, value) pairs as consumed from one partition, offsets from 100 on."""
    return [
        Inbound(key, value, TOPIC, PARTITION, 100 + i) for i, (key, value) in enumerate(messages)
    ]


def _run(
    processor: BatchProcessor, batch: list[Inbound], store: dict[bytes, bytes] | None = None
) -> Outcome:
    """One batch through prepare and score; written states go back into ``store``."""
    store = {} if store is None else store
    outcome = processor.score(processor.prepare(batch, store.get))
    store.update({asset: raw for asset, (_, raw) in outcome.states.items()})
    return outcome


def _predictions(outcome: Outcome) -> list[Reading]:
    return [codec("Prediction").decode(p.value) for p in outcome.predictions]


def _dead_letters(outcome: Outcome) -> list[Reading]:
    return [codec("DeadLetter").decode(d.value) for d in outcome.dead_letters]


@pytest.fixture
def mixed(
    make_reading: Callable[..., Reading], settings: Settings, now_ms: int
) -> tuple[list[Inbound], list[str]]:
    """Good readings and every kind of poison; the expected outcome of each, in order."""
    t0 = now_ms - 120_000
    grace_ms = int(settings.late_grace_s * 1000)
    future_ms = int(settings.max_future_skew_s * 1000)
    too_long = "x" * settings.max_payload_bytes
    good = make_reading(timestamp=t0)
    table: list[tuple[bytes | None, bytes | None, str]] = [
        (b"cnc-001", _avro(good), PREDICTED),
        (b"cnc-002", _json(make_reading(asset_id="cnc-002", timestamp=t0)), PREDICTED),
        (b"cnc-001", None, "undecodable"),
        (b"cnc-001", b"\x00\x01 not a reading", "undecodable"),
        (b"cnc-001", _avro(make_reading(timestamp=t0 + 500))[:-5], "undecodable"),
        (b"cnc-001", b"[1, 2, 3]", "undecodable"),
        (
            b"cnc-001",
            codec("ModelUpdate").encode(
                {
                    "model_name": "m",
                    "alias": "a",
                    "version": "1",
                    "previous_version": None,
                    "action": "PROMOTE",
                    "issued_timestamp": t0,
                }
            ),
            "undecodable",
        ),
        (b"cnc-001", _json(make_reading(timestamp="yesterday")), "schema_mismatch"),
        (b"cnc-001", b'{"event_id": "e-x", "asset_id": ', "schema_mismatch"),
        (b"cnc-001", _json(make_reading(sensors={"power": float("nan")})), "non_finite_value"),
        (b"cnc-001", _avro(make_reading(sensors={"vibration": float("inf")})), "non_finite_value"),
        (b"cnc-001", _avro(make_reading(drop=("power",))), "missing_sensor"),
        (b"cnc-001", _avro(make_reading(sensors={"torque": 3.0})), "unexpected_sensor"),
        (b"cnc-001", _avro(make_reading(sensors={"temperature": 900.0})), "out_of_range"),
        (b"cnc-001", _avro(make_reading(asset_type="lathe")), "unknown_asset_type"),
        (b"cnc-001", _avro(make_reading(event_id=too_long)), "oversized"),
        (b"cnc-999", _avro(make_reading(timestamp=t0 + 1_000)), "key_mismatch"),
        (None, _avro(make_reading(timestamp=t0 + 1_000)), "key_mismatch"),
        (b"cnc-001", _avro(make_reading(timestamp=now_ms + future_ms + 1)), "future_timestamp"),
        (b"cnc-001", _avro(make_reading(timestamp=t0 + 40_000)), PREDICTED),
        (b"cnc-002", _json(make_reading(asset_id="cnc-002", timestamp=t0 + 1_000)), PREDICTED),
        (b"cnc-001", _avro(make_reading(timestamp=t0 + 40_000 - grace_ms - 1)), "late"),
        (b"cnc-002", _avro(make_reading(asset_id="cnc-002", timestamp=t0 - 5_000)), PREDICTED),
        (b"cnc-003", _avro(make_reading(asset_id="cnc-003", timestamp=t0)), PREDICTED),
    ]
    batch = _batch([(key, value) for key, value, _ in table])
    return batch, [expected for *_, expected in table]


UNDECODED = {"undecodable", "schema_mismatch", "oversized"}
"""Reasons given before the value is decoded: their dead letters name no event."""


def _event_id(inbound: Inbound) -> str:
    """The event id of a message whose value decodes."""
    value = inbound.value or b""
    if value.startswith(b"{"):
        return str(json.loads(value)["event_id"])
    return str(codec("TelemetryReading").decode(value)["event_id"])


def test_every_input_yields_exactly_one_prediction_or_dead_letter(
    make_processor: Callable[..., BatchProcessor], mixed: tuple[list[Inbound], list[str]]
) -> None:
    batch, expected = mixed

    outcome = _run(make_processor(), batch)

    assert len(outcome.predictions) + len(outcome.dead_letters) == len(batch)
    assert len(outcome.predictions) == expected.count(PREDICTED)
    out_ids = Counter(p["event_id"] for p in _predictions(outcome))
    out_ids.update(d["event_id"] for d in _dead_letters(outcome) if d["event_id"] is not None)
    in_ids = Counter(
        _event_id(i) for i, e in zip(batch, expected, strict=True) if e not in UNDECODED
    )
    assert out_ids == in_ids


def test_dead_letters_carry_the_reason_and_the_original_message(
    make_processor: Callable[..., BatchProcessor],
    mixed: tuple[list[Inbound], list[str]],
    now_ms: int,
) -> None:
    batch, expected = mixed

    outcome = _run(make_processor(), batch)

    letters = _dead_letters(outcome)
    by_offset = {i.offset: i for i in batch}
    assert {d["source_offset"]: d["reason"] for d in letters} == {
        i.offset: reason for i, reason in zip(batch, expected, strict=True) if reason != PREDICTED
    }
    assert outcome.dead_letter_reasons == [d["reason"] for d in letters]
    for letter, out in zip(letters, outcome.dead_letters, strict=True):
        source = by_offset[letter["source_offset"]]
        assert (letter["original_key"], letter["original_value"]) == (source.key, source.value)
        assert (letter["source_topic"], letter["source_partition"]) == (TOPIC, PARTITION)
        assert letter["failed_timestamp"] == now_ms
        assert letter["error"]
        assert out.key == source.key
        if letter["reason"] in UNDECODED:
            assert letter["event_id"] is letter["asset_id"] is None
        else:
            assert letter["event_id"] == _event_id(source)


def test_dead_letter_names_the_event_when_the_value_decoded(
    make_processor: Callable[..., BatchProcessor], make_reading: Callable[..., Reading]
) -> None:
    t0 = make_reading()["timestamp"]
    late = make_reading(event_id="late-1", timestamp=t0)
    batch = _batch(
        [
            (b"cnc-001", _avro(make_reading(event_id="new-1", timestamp=t0 + 60_000))),
            (b"cnc-001", _avro(late)),
            (b"cnc-001", b"garbage"),
        ]
    )

    letters = _dead_letters(_run(make_processor(), batch))

    assert [(d["reason"], d["event_id"], d["asset_id"]) for d in letters] == [
        ("late", "late-1", "cnc-001"),
        ("undecodable", None, None),
    ]


def test_predictions_carry_the_provider_model_and_the_reading(
    make_processor: Callable[..., BatchProcessor],
    mixed: tuple[list[Inbound], list[str]],
    cnc_model: ScoringModel,
    now_ms: int,
) -> None:
    batch, expected = mixed
    models = FakeModels({"cnc": ScoringModel("fleet-cnc", "42", cnc_model.bundle)})

    outcome = _run(make_processor(models), batch)

    assert models.calls == ["cnc"]
    assert outcome.states.keys() == {b"cnc-001", b"cnc-002", b"cnc-003"}
    assert {partition for partition, _ in outcome.states.values()} == {PARTITION}
    scored = [i for i, e in zip(batch, expected, strict=True) if e == PREDICTED]
    for prediction, out, source in zip(
        _predictions(outcome), outcome.predictions, scored, strict=True
    ):
        assert (prediction["model_name"], prediction["model_version"]) == ("fleet-cnc", "42")
        assert prediction["event_id"] == _event_id(source)
        assert out.key == source.key == prediction["asset_id"].encode()
        assert prediction["asset_type"] == "cnc"
        assert prediction["processed_timestamp"] == now_ms
        assert 0.0 <= prediction["failure_probability"] <= 1.0
        # A new asset is calibrating: never flagged, whatever the global forest says.
        assert prediction["calibrating"] and prediction["baseline_score"] == 0.0
        assert prediction["is_anomaly"] is False
        assert len(prediction["top_features"]) == 3


def test_a_failing_model_provider_dead_letters_its_profile_only(
    make_processor: Callable[..., BatchProcessor],
    make_reading: Callable[..., Reading],
    pump: Profile,
    cnc_model: ScoringModel,
) -> None:
    pump_sensors = {s.name: s.baseline for s in pump.sensors}
    pump_reading = {**make_reading(asset_id="pump-001", asset_type="pump"), "sensors": pump_sensors}
    batch = _batch(
        [
            (b"cnc-001", _avro(make_reading())),
            (b"pump-001", _avro(pump_reading)),
            (
                b"pump-001",
                _json(
                    {
                        **pump_reading,
                        "event_id": "p-2",
                        "timestamp": pump_reading["timestamp"] + 1_000,
                    }
                ),
            ),
            (b"cnc-001", _avro(make_reading(timestamp=pump_reading["timestamp"] + 1_000))),
        ]
    )

    outcome = _run(make_processor(FakeModels({"cnc": cnc_model})), batch)

    assert [p["asset_id"] for p in _predictions(outcome)] == ["cnc-001", "cnc-001"]
    letters = _dead_letters(outcome)
    assert [(d["reason"], d["source_offset"], d["asset_id"]) for d in letters] == [
        ("scoring_failed", 101, "pump-001"),
        ("scoring_failed", 102, "pump-001"),
    ]
    assert "ModelUnavailableError" in letters[0]["error"]
    assert letters[1]["original_value"] == batch[2].value


def test_a_provider_that_always_raises_fails_softly(
    make_processor: Callable[..., BatchProcessor], mixed: tuple[list[Inbound], list[str]]
) -> None:
    batch, expected = mixed

    outcome = _run(make_processor(FakeModels({})), batch)

    assert outcome.predictions == []
    assert outcome.dead_letter_reasons.count("scoring_failed") == expected.count(PREDICTED)
    assert len(outcome.dead_letters) == len(batch)


def test_replaying_a_batch_publishes_no_prediction_twice(
    make_processor: Callable[..., BatchProcessor], mixed: tuple[list[Inbound], list[str]]
) -> None:
    batch, _ = mixed
    processor = make_processor()
    store: dict[bytes, bytes] = {}
    first = _run(processor, batch, store)

    prepared = processor.prepare(batch, store.get)
    again = processor.score(prepared)

    assert again.predictions == []
    assert prepared.replayed == len(first.predictions)
    assert again.dead_letter_reasons == first.dead_letter_reasons
    assert again.states == {}


@pytest.mark.parametrize("restart_after", [1, 2, 19, 22])
def test_restart_mid_batch_resumes_exactly_where_it_stopped(
    make_processor: Callable[..., BatchProcessor],
    mixed: tuple[list[Inbound], list[str]],
    restart_after: int,
) -> None:
    """States written after the first messages, then the whole batch redelivered."""
    batch, expected = mixed
    straight = _run(make_processor(), batch)
    store: dict[bytes, bytes] = {}
    before = _run(make_processor(), batch[:restart_after], store)

    processor = make_processor()
    prepared = processor.prepare(batch, store.get)
    after = processor.score(prepared)

    assert prepared.replayed == len(before.predictions)
    assert after.predictions == straight.predictions[len(before.predictions) :]
    assert len(after.predictions) == expected[restart_after:].count(PREDICTED)


def test_unreadable_stored_state_starts_the_asset_afresh(
    make_processor: Callable[..., BatchProcessor], make_reading: Callable[..., Reading]
) -> None:
    store = {b"cnc-001": b"not a state"}
    batch = _batch([(b"cnc-001", _avro(make_reading()))])

    outcome = _run(make_processor(), batch, store)

    assert len(outcome.predictions) == 1
    assert store[b"cnc-001"] != b"not a state"


POISON_THAT_ESCAPES: dict[str, dict[str, Any] | bytes] = {
    # Each decodes far enough to crash a later step with an exception that BatchProcessor
    # does not turn into a dead letter (JSON overrides of a good reading, or raw bytes).
    "sensor value beyond float range": {"sensors": {"temperature": 10**400}},
    "lone surrogate in the event id": {"event_id": "\ud800"},
    "lone surrogate in the asset id": {"asset_id": "\udc00"},
    "JSON nested deeper than the recursion limit": b'{"event_id": ' + b"[" * 60_000,
}


@pytest.mark.parametrize("poison", POISON_THAT_ESCAPES.values(), ids=POISON_THAT_ESCAPES.keys())
def test_poison_within_the_size_limit_becomes_a_dead_letter_not_an_exception(
    make_processor: Callable[..., BatchProcessor],
    make_reading: Callable[..., Reading],
    settings: Settings,
    poison: dict[str, Any] | bytes,
) -> None:
    value = poison if isinstance(poison, bytes) else _json(make_reading(**poison))
    batch = _batch(
        [
            (b"cnc-001", _avro(make_reading(event_id="before"))),
            (b"cnc-001", value),
            (b"cnc-002", _avro(make_reading(event_id="after", asset_id="cnc-002"))),
        ]
    )
    assert len(value) <= settings.max_payload_bytes

    outcome = _run(make_processor(), batch)

    assert [p["event_id"] for p in _predictions(outcome)] == ["before", "after"]
    assert [d["source_offset"] for d in _dead_letters(outcome)] == [101]


@pytest.mark.parametrize(
    "sensors",
    [
        {"spindle_speed": 1e-39},  # power_per_spindle_speed = 1.2e40
        {"spindle_speed": 5e-324},  # the smallest positive double: the ratio is inf
    ],
    ids=["tiny spindle speed", "denormal spindle speed"],
)
def test_one_reading_the_model_cannot_take_does_not_sink_its_batch(
    make_processor: Callable[..., BatchProcessor],
    make_reading: Callable[..., Reading],
    sensors: dict[str, float],
) -> None:
    """In-range readings whose features overflow float32 make sklearn refuse the whole batch.

    The reading passes check_reading (0 <= spindle_speed <= 30000), so its features are
    scored with everyone else's; IsolationForest/RandomForest reject any value beyond
    float32 range, and score() then dead-letters every cnc reading as scoring_failed.
    """
    batch = _batch(
        [
            (b"cnc-001", _avro(make_reading(event_id="innocent"))),
            (b"cnc-002", _avro(make_reading(event_id="odd", asset_id="cnc-002", sensors=sensors))),
        ]
    )

    outcome = _run(make_processor(), batch)

    assert len(outcome.predictions) + len(outcome.dead_letters) == 2
    assert "innocent" in [p["event_id"] for p in _predictions(outcome)]


POISON_REASONS = {
    "sensor value beyond float range": "out_of_range",
    "lone surrogate in the event id": "schema_mismatch",
    "lone surrogate in the asset id": "schema_mismatch",
    "JSON nested deeper than the recursion limit": "schema_mismatch",
}


@pytest.mark.parametrize("name", POISON_REASONS)
def test_poison_dead_letter_gives_its_reason_and_keeps_its_bytes(
    make_processor: Callable[..., BatchProcessor], make_reading: Callable[..., Reading], name: str
) -> None:
    poison = POISON_THAT_ESCAPES[name]
    value = poison if isinstance(poison, bytes) else _json(make_reading(**poison))

    outcome = _run(make_processor(), _batch([(b"cnc-001", value)]))

    [letter] = _dead_letters(outcome)
    assert letter["reason"] == POISON_REASONS[name]
    assert letter["original_value"] == value
    if letter["reason"] == "schema_mismatch":
        assert letter["event_id"] is letter["asset_id"] is None


UNSCORABLE = {
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "beyond float32": 3.5e38,
    "beyond float32, negative": -1e39,
}


@pytest.mark.parametrize("bad", UNSCORABLE.values(), ids=UNSCORABLE.keys())
def test_a_feature_row_the_model_cannot_take_is_dead_lettered_alone(
    make_processor: Callable[..., BatchProcessor],
    make_reading: Callable[..., Reading],
    cnc: Profile,
    bad: float,
) -> None:
    """Whatever slips past the extractor: that row is a dead letter, its batch is still scored."""
    processor = make_processor()
    batch = _batch(
        [(f"cnc-00{i}".encode(), _avro(make_reading(asset_id=f"cnc-00{i}"))) for i in range(4)]
    )
    prepared = processor.prepare(batch, {}.get)
    # the snapshot starts with the raw readings: poison the one the "power" feature copies
    prepared.snapshots["cnc"][2, cnc.sensor_names.index("power")] = bad

    outcome = processor.score(prepared)

    assert [p["asset_id"] for p in _predictions(outcome)] == ["cnc-000", "cnc-001", "cnc-003"]
    [letter] = _dead_letters(outcome)
    assert (letter["reason"], letter["source_offset"], letter["asset_id"]) == (
        "non_finite_feature", 102, "cnc-002"
    )
    assert letter["error"].startswith("feature power is ")
    assert outcome.states.keys() == {b"cnc-000", b"cnc-001", b"cnc-002", b"cnc-003"}


def test_a_profile_whose_every_row_is_unscorable_never_calls_its_model(
    make_reading: Callable[..., Reading],
    settings: Settings,
    cnc: Profile,
    pump: Profile,
    cnc_model: ScoringModel,
    now_ms: int,
) -> None:
    models = FakeModels({"cnc": cnc_model})
    processor = BatchProcessor(
        settings, {"cnc": cnc, "pump": pump}, models, clock=lambda: now_ms / 1000
    )
    prepared = processor.prepare(_batch([(b"cnc-001", _avro(make_reading()))]), {}.get)
    prepared.snapshots["cnc"][0, 0] = float("nan")

    outcome = processor.score(prepared)

    assert models.calls == []
    assert outcome.predictions == []
    assert outcome.dead_letter_reasons == ["non_finite_feature"]


@dataclass
class _DecodesTo:
    """A telemetry codec stand-in returning one fixed reading (what no real codec lets by)."""

    reading: Reading

    def decode(self, data: bytes) -> Reading:
        return dict(self.reading)

    decode_json = decode


def test_a_dead_letter_encodes_whatever_strings_its_reading_held(
    make_processor: Callable[..., BatchProcessor],
    make_reading: Callable[..., Reading],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    processor = make_processor()
    reading = make_reading(event_id="\ud800", asset_id="\udc00", asset_type="\udfff")
    monkeypatch.setattr(processor._preparer, "_telemetry", _DecodesTo(reading))
    monkeypatch.setattr(preparation_module, "decode_reading", lambda data, start: dict(reading))

    outcome = _run(processor, _batch([(b"cnc-001", _avro(make_reading()))]))

    [letter] = _dead_letters(outcome)
    assert letter["reason"] == "unknown_asset_type"
    assert letter["event_id"] is letter["asset_id"] is None
    assert "\\udfff" in letter["error"]


def test_default_provider_model_name_and_version_are_stamped(
    make_processor: Callable[..., BatchProcessor],
    make_reading: Callable[..., Reading],
    cnc_model: ScoringModel,
) -> None:
    outcome = _run(make_processor(), _batch([(b"cnc-001", _avro(make_reading()))]))

    [prediction] = _predictions(outcome)
    assert (prediction["model_name"], prediction["model_version"]) == (
        cnc_model.name,
        cnc_model.version,
    )


def _stream(make_reading: Callable[..., Reading], n: int, start: int) -> list[Inbound]:
    """``n`` in-order readings of three assets, offsets from ``start`` on."""
    readings = [
        make_reading(asset_id=f"cnc-00{i % 3}", event_id=f"e{start + i}",
                     timestamp=1_700_000_000_000 + (start + i) * 1000)
        for i in range(n)
    ]
    return [Inbound(r["asset_id"].encode(), _avro(r), TOPIC, PARTITION, start + i)
            for i, r in enumerate(readings)]


def test_states_kept_decoded_between_batches_give_the_same_outputs(
    make_processor: Callable[..., BatchProcessor], make_reading: Callable[..., Reading],
) -> None:
    kept, fresh = make_processor(), None
    store_kept: dict[bytes, bytes] = {}
    store_fresh: dict[bytes, bytes] = {}
    for start in (0, 30, 60):
        batch = _stream(make_reading, 30, start)
        a = kept.process(batch, store_kept.get)
        fresh = make_processor()  # decodes every state from its bytes
        b = fresh.process(batch, store_fresh.get)
        assert a.predictions == b.predictions and a.states == b.states
        store_kept.update({k: raw for k, (_, raw) in a.states.items()})
        store_fresh.update({k: raw for k, (_, raw) in b.states.items()})


def test_a_batch_failing_half_way_leaves_no_folded_state_behind(
    make_processor: Callable[..., BatchProcessor], make_reading: Callable[..., Reading],
) -> None:
    processor = make_processor()
    store: dict[bytes, bytes] = {}
    first = processor.process(_stream(make_reading, 30, 0), store.get)
    store.update({k: raw for k, (_, raw) in first.states.items()})
    retry = _stream(make_reading, 30, 30)

    def failing(asset: bytes) -> bytes | None:
        if asset == b"cnc-002":  # the third asset: two states are folded by then
            raise OSError("state store unavailable")
        return store.get(asset)

    with pytest.raises(OSError):
        processor.process(retry, failing)
    again = processor.process(retry, store.get)

    assert again.predictions == make_processor().process(retry, store.get).predictions


def test_a_non_finite_score_is_dead_lettered_and_never_reaches_metrics_or_health(
    make_processor: Callable[..., BatchProcessor], make_reading: Callable[..., Reading],
    nan_above_vibration_model: ScoringModel,
) -> None:
    """A model NaN above vibration 20 mm/s (legal up to 100).

    The row at 25 mm/s becomes a scoring_failed dead letter; the others are published; totals
    and /health stay finite.
    """
    batch = _batch([
        (b"cnc-001", _avro(make_reading(event_id="calm"))),
        (b"cnc-002", _avro(make_reading(event_id="shaking", asset_id="cnc-002",
                                        sensors={"vibration": 25.0}))),
        (b"cnc-003", _avro(make_reading(event_id="calm-too", asset_id="cnc-003"))),
    ])
    processor = make_processor(FakeModels({"cnc": nan_above_vibration_model}))

    outcome = _run(processor, batch)

    assert [p["event_id"] for p in _predictions(outcome)] == ["calm", "calm-too"]
    assert all(math.isfinite(p["failure_probability"]) and math.isfinite(p["anomaly_score"])
               for p in _predictions(outcome))
    [letter] = _dead_letters(outcome)
    assert (letter["reason"], letter["event_id"]) == ("scoring_failed", "shaking")
    assert "version 9 gave a non-finite score" in letter["error"]
    metrics = Metrics(CollectorRegistry())
    metrics.serve(nan_above_vibration_model)
    metrics.record_batch(len(batch), outcome.report(published_s=1.7e9), 0.01)
    average = metrics.totals().average_failure_probability
    assert average is not None and math.isfinite(average)
    document = health_document(StreamStatus("connected", partitions=(3,)),
                               {"cnc": nan_above_vibration_model}, ["cnc"], metrics.totals(), 1.0)
    assert json.loads(json.dumps(document, allow_nan=False))["average_failure_probability"] \
        == round(average, 6)


def test_a_batch_whose_every_score_is_non_finite_publishes_nothing(
    make_processor: Callable[..., BatchProcessor], make_reading: Callable[..., Reading],
    nan_above_vibration_model: ScoringModel,
) -> None:
    batch = _batch([(b"cnc-001", _avro(make_reading(sensors={"vibration": 60.0})))])

    outcome = _run(make_processor(FakeModels({"cnc": nan_above_vibration_model})), batch)

    assert (outcome.predictions, outcome.dead_letter_reasons) == ([], ["scoring_failed"])
    assert len(outcome.failure_probabilities) == 0


def test_the_report_carries_each_assets_newest_predictions_and_feature_row(
    make_processor: Callable[..., BatchProcessor], make_reading: Callable[..., Reading],
    now_ms: int,
) -> None:
    from assetwatch.scoring.outcome import RECENT_PREDICTIONS

    readings = [make_reading(asset_id=f"cnc-00{i % 2}", event_id=f"e-{i}",
                             timestamp=now_ms - 60_000 + 100 * i) for i in range(25)]
    outcome = _run(make_processor(), _batch([(r["asset_id"].encode(), _avro(r))
                                             for r in readings]))
    report = outcome.report(now_ms / 1000)

    assert set(report.recent) == set(report.latest) == {"cnc-000", "cnc-001"}
    newest = [codec("Prediction").decode(raw)["event_id"] for raw in report.recent["cnc-001"]]
    assert newest == [f"e-{i}" for i in range(5, 25, 2)][-RECENT_PREDICTIONS:]
    names, row = report.latest["cnc-000"]
    assert len(names) == row.shape[0] > 10 and row.base is None  # an own copy, not a view


def test_an_asset_that_changes_type_has_those_readings_dead_lettered(
    make_processor: Callable[..., BatchProcessor],
    make_reading: Callable[..., Reading],
    pump: Profile,
) -> None:
    """Within a batch and from the state kept of the last, never a failed batch."""
    pump_sensors = {s.name: s.baseline for s in pump.sensors}
    t0 = make_reading()["timestamp"]

    def typed(asset_type: str, i: int) -> bytes:
        reading = make_reading(timestamp=t0 + 1_000 * i)
        if asset_type == "pump":
            reading = {**reading, "asset_type": "pump", "sensors": pump_sensors}
        return _avro(reading)

    processor = make_processor()
    store: dict[bytes, bytes] = {}
    first = _run(processor, _batch([(b"cnc-001", typed(t, i))
                                    for i, t in enumerate(["cnc", "pump", "cnc"])]), store)
    second = processor.process(
        [Inbound(b"cnc-001", typed("pump", 3), TOPIC, PARTITION, 103)], store.get)

    assert [p["asset_id"] for p in _predictions(first)] == ["cnc-001", "cnc-001"]
    for outcome, offset in ((first, 101), (second, 103)):
        [letter] = _dead_letters(outcome)
        assert (letter["reason"], letter["source_offset"]) == ("asset_type_changed", offset)
        assert "has cnc readings; this one says pump" in letter["error"]


def test_an_asset_that_changes_type_after_a_restart_keeps_its_stored_state(
    make_processor: Callable[..., BatchProcessor],
    make_reading: Callable[..., Reading],
    cnc: Profile,
    pump: Profile,
) -> None:
    """A pump reading of a cnc asset is refused though only the table's bytes are there.

    A new processor keeps no decoded state: the bytes name their profile, so the asset is
    not started afresh as a pump.
    """
    t0 = make_reading()["timestamp"]
    store: dict[bytes, bytes] = {}
    _run(make_processor(), _batch([(b"cnc-001", _avro(make_reading(timestamp=t0)))]), store)
    stored = store[b"cnc-001"]
    pump_reading = {**make_reading(timestamp=t0 + 1_000), "asset_type": "pump",
                    "sensors": {s.name: s.baseline for s in pump.sensors}}

    restarted = make_processor()
    refused = _run(restarted, [Inbound(b"cnc-001", _avro(pump_reading), TOPIC, PARTITION, 101)],
                   store)
    [letter] = _dead_letters(refused)
    assert letter["reason"] == "asset_type_changed"
    assert "has cnc readings; this one says pump" in letter["error"]
    assert (refused.predictions, store[b"cnc-001"]) == ([], stored)

    again = _run(restarted, [Inbound(b"cnc-001", _avro(make_reading(timestamp=t0 + 2_000)),
                                     TOPIC, PARTITION, 102)], store)
    assert len(again.predictions) == 1
    assert AssetState.from_bytes(store[b"cnc-001"], cnc).baseline.seen == 2  # not afresh

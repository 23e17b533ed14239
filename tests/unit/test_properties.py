"""Properties of the decoder and the batch processor: nothing escapes, nothing is lost.

Whatever bytes arrive, the codecs raise only SerializationError, and every message of a batch
leaves the processor as exactly one prediction or one dead letter with a known reason.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assetwatch.errors import SerializationError
from assetwatch.features.profiles import Profile, load_profiles
from assetwatch.features.state import source_position
from assetwatch.models.bundle import ScoringModel
from assetwatch.models.training import synthetic_readings, train_models
from assetwatch.schemas.codecs import MAGIC, codec, decode_any
from assetwatch.scoring.outcome import Outcome
from assetwatch.scoring.processor import BatchProcessor
from assetwatch.scoring.records import Inbound
from assetwatch.settings import Settings

Reading = dict[str, Any]
NOW_MS = 1_700_003_600_000
"""The processor's fixed clock."""
T0 = NOW_MS - 3_600_000
"""Generated readings are stamped from an hour before the clock on."""
OLDEST_MS = NOW_MS - 7 * 86_400_000
"""The default max_past_age_s (7 days) before the clock: older is too_old."""
MAX_PAYLOAD = 1024
TOPIC = "assetwatch.telemetry"
PARTITION = 0
PROFILES = load_profiles(["cnc", "pump"])
TELEMETRY = codec("TelemetryReading")
PREDICTED = "prediction"
REASONS = frozenset({
    "undecodable", "schema_mismatch", "oversized", "unknown_asset_type", "missing_sensor",
    "unexpected_sensor", "non_finite_value", "out_of_range", "key_mismatch", "late",
    "future_timestamp", "non_finite_feature", "scoring_failed", "too_old", "empty_id",
    "id_too_long",
})
"""The reason codes the DeadLetter contract documents."""
UNDECODED = frozenset({"undecodable", "schema_mismatch", "oversized"})
ANYTHING = REASONS | {PREDICTED}

FAST = settings(max_examples=200, deadline=None, derandomize=True, database=None)
BATCHES = settings(
    FAST, max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

lone_surrogates = st.characters(categories=["Cs"])
"""What JSON's \\uD800 escapes decode to and no UTF-8 encoder takes."""
texts = st.text(max_size=8) | st.tuples(st.text(max_size=4), lone_surrogates).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with one byte flipped, cut short, or with bytes inserted."""
    n = len(data)
    flip = st.tuples(st.integers(0, n - 1), st.integers(1, 255)).map(
        lambda t: data[: t[0]] + bytes([data[t[0]] ^ t[1]]) + data[t[0] + 1 :]
    )
    cut = st.integers(0, n - 1).map(lambda i: data[:i])
    insert = st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=16)).map(
        lambda t: data[: t[0]] + t[1] + data[t[0] :]
    )
    return flip | cut | insert


def _sensors(profile: Profile) -> st.SearchStrategy[dict[str, float]]:
    """Finite values anywhere inside each sensor's range, bounds, zeros and subnormals included."""
    return st.fixed_dictionaries({s.name: st.floats(s.min, s.max) for s in profile.sensors})


def _reading(profile: Profile, asset: str, event_id: str, ts: int) -> st.SearchStrategy[Reading]:
    return _sensors(profile).map(
        lambda sensors: {"event_id": event_id, "asset_id": asset, "asset_type": profile.name,
                         "timestamp": ts, "sensors": sensors}
    )


def _encoded(reading: Reading) -> st.SearchStrategy[bytes]:
    """Avro or JSON, as producers may send either."""
    return st.sampled_from([TELEMETRY.encode(reading), json.dumps(reading).encode()])


any_profile = st.sampled_from(sorted(PROFILES.values(), key=lambda p: p.name))
any_readings = any_profile.flatmap(lambda p: _reading(p, "cnc-001", "e-1", T0))
any_key = st.none() | st.binary(max_size=12)
any_value = st.one_of(
    st.none(),
    st.binary(max_size=64),
    st.binary(max_size=64).map(lambda b: TELEMETRY.header + b),
    any_readings.map(TELEMETRY.encode).flatmap(_mutations),
    any_readings.map(lambda r: json.dumps(r).encode()).flatmap(_mutations),
    json_values.map(lambda v: json.dumps(v).encode()),
)


@dataclass(frozen=True)
class Case:
    """One generated message and the outcomes it may have."""

    key: bytes | None
    value: bytes | None
    allowed: frozenset[str]


def _case(reading: Reading, value: bytes | None, *allowed: str) -> Case:
    """A message keyed by its reading's asset, as producers key them."""
    return Case(reading["asset_id"].encode(), value, frozenset(allowed))


def _breaking_the_profile(profile: Profile, reading: Reading) -> st.SearchStrategy[Case]:
    """``reading`` decodable but broken one way its profile forbids, with the reason it gets."""
    names = profile.sensor_names
    sensor = st.sampled_from(names)

    def setting(name: str, value: Any) -> Reading:
        return {**reading, "sensors": {**reading["sensors"], name: value}}

    def without(gone: set[str]) -> Reading:
        return {**reading, "sensors": {k: v for k, v in reading["sensors"].items()
                                       if k not in gone}}

    far = st.floats(max_value=-1e300, allow_infinity=False) | st.floats(
        min_value=1e300, allow_infinity=False
    )
    extra = st.dictionaries(st.text(max_size=12).filter(lambda n: n not in names),
                            st.floats(0, 1), min_size=1, max_size=3)
    return st.one_of(
        st.tuples(sensor, st.sampled_from([math.nan, math.inf, -math.inf])).flatmap(
            lambda t: _encoded(setting(*t))
        ).map(lambda v: _case(reading, v, "non_finite_value")),
        st.tuples(sensor, far | st.integers(10**310, 10**320)).map(  # JSON: no Avro double
            lambda t: _case(reading, json.dumps(setting(*t)).encode(), "out_of_range")
        ),
        st.sets(sensor, min_size=1).flatmap(lambda gone: _encoded(without(gone))).map(
            lambda v: _case(reading, v, "missing_sensor")
        ),
        extra.flatmap(lambda more: _encoded({**reading, "sensors": {**reading["sensors"],
                                                                    **more}})).map(
            lambda v: _case(reading, v, "unexpected_sensor")
        ),
        st.text(max_size=12).filter(lambda t: t not in PROFILES).flatmap(
            lambda t: _encoded({**reading, "asset_type": t})
        ).map(lambda v: _case(reading, v, "unknown_asset_type")),
        st.integers(NOW_MS + 30_001, 2**63 - 1).flatmap(  # past the default 30 s skew
            lambda ts: _encoded({**reading, "timestamp": ts})
        ).map(lambda v: _case(reading, v, "future_timestamp")),
        # 0, negative, -2**63 and epoch seconds (1.7e9 "ms" is January 1970) included
        (st.integers(-(2**63), OLDEST_MS - 1) | st.sampled_from([0, -1, NOW_MS // 1000])).flatmap(
            lambda ts: _encoded({**reading, "timestamp": ts})
        ).map(lambda v: _case(reading, v, "too_old")),
        st.tuples(st.sampled_from(["event_id", "asset_id"]), st.sampled_from(["", " ", "\t"])
                  ).flatmap(lambda t: _encoded({**reading, t[0]: t[1]})
                            ).map(lambda v: _case(reading, v, "empty_id")),
        st.sampled_from(["event_id", "asset_id"]).flatmap(
            lambda name: _encoded({**reading, name: "x" * 257})
        ).map(lambda v: _case(reading, v, "id_too_long")),
        st.tuples(any_key.filter(lambda k: k != reading["asset_id"].encode()),
                  _encoded(reading)).map(lambda t: Case(t[0], t[1], frozenset({"key_mismatch"}))),
    )


def _off_the_schema(reading: Reading) -> st.SearchStrategy[Case]:
    """``reading`` as JSON with a field missing, mistyped or not UTF-8 text: schema_mismatch."""
    strings = st.sampled_from(["event_id", "asset_id", "asset_type"])
    sensor = st.sampled_from(sorted(reading["sensors"]))

    def wrong(name: str, value: Any) -> Case:
        return _case(reading, json.dumps({**reading, name: value}).encode(), "schema_mismatch")

    def without(name: str) -> Case:
        rest = {k: v for k, v in reading.items() if k != name}
        return _case(reading, json.dumps(rest).encode(), "schema_mismatch")

    return st.one_of(
        st.tuples(strings, json_values.filter(lambda v: not isinstance(v, str))).map(
            lambda t: wrong(*t)
        ),
        json_values.filter(lambda v: type(v) is not int).map(lambda v: wrong("timestamp", v)),
        st.tuples(sensor, json_values.filter(lambda v: type(v) not in (int, float))).map(
            lambda t: wrong("sensors", {**reading["sensors"], t[0]: t[1]})
        ),
        st.sampled_from(list(reading)).map(without),
        st.tuples(strings, lone_surrogates).map(lambda t: wrong(t[0], reading[t[0]] + t[1])),
        lone_surrogates.map(lambda name: wrong("sensors", {**reading["sensors"], name: 1.0})),
    )


def _not_a_reading(reading: Reading) -> st.SearchStrategy[Case]:
    """No value, garbage, an oversized reading, or ``reading``'s Avro bytes damaged."""
    return st.one_of(
        st.just(_case(reading, None, "undecodable")),
        st.binary(max_size=MAX_PAYLOAD + 64).filter(lambda b: not b.startswith(MAGIC)).map(
            lambda b: _case(reading, b, *UNDECODED)
        ),
        _encoded({**reading, "event_id": "x" * MAX_PAYLOAD}).map(
            lambda v: _case(reading, v, "oversized")
        ),
        _mutations(TELEMETRY.encode(reading)).map(lambda v: _case(reading, v, *ANYTHING)),
    )


@st.composite
def _message(draw: st.DrawFn, i: int) -> Case:
    """Message ``i`` of a batch: a good reading (in order per asset) or poison."""
    profile = draw(any_profile)
    if draw(st.booleans()):
        asset = f"good-{profile.name}-{i % 3}"
        reading = draw(_reading(profile, asset, f"evt-{i}", T0 + i * 1000))
        return Case(asset.encode(), draw(_encoded(reading)), frozenset({PREDICTED}))
    reading = draw(_reading(profile, f"bad-{i}", f"evt-{i}", T0 + i * 1000))
    return draw(
        _breaking_the_profile(profile, reading) | _off_the_schema(reading) | _not_a_reading(reading)
    )


@st.composite
def batches(draw: st.DrawFn) -> list[Case]:
    n = draw(st.integers(1, 16))
    return [draw(_message(i)) for i in range(n)]


@pytest.fixture(scope="module")
def pump_model() -> ScoringModel:
    """A tiny pump model (seed 2: its training part holds a failure ramp, as training needs)."""
    pump = PROFILES["pump"]
    readings = synthetic_readings(pump, n_assets=4, hours=0.5, seed=2)
    return ScoringModel("assetwatch-pump", "1", train_models(pump, readings, trees=5).bundle)


@pytest.fixture(scope="module")
def process(
    cnc_model: ScoringModel, pump_model: ScoringModel
) -> Callable[[list[Inbound]], Outcome]:
    """A fresh processor per batch, serving cnc and pump; offsets count from 0."""
    models = {"cnc": cnc_model, "pump": pump_model}
    config = Settings(  # type: ignore[call-arg]
        _env_file=None, profiles=("cnc", "pump"), max_payload_bytes=MAX_PAYLOAD
    )

    def run(batch: list[Inbound]) -> Outcome:
        processor = BatchProcessor(config, PROFILES, models.__getitem__, clock=lambda: NOW_MS / 1e3)
        store: dict[bytes, bytes] = {}
        return processor.process(batch, store.get)

    return run


def _inbound(messages: list[tuple[bytes | None, bytes | None]]) -> list[Inbound]:
    return [Inbound(k, v, TOPIC, PARTITION, offset) for offset, (k, v) in enumerate(messages)]


def _event_id(value: bytes | None) -> str | None:
    """The event id of a value that decodes as a reading, else None."""
    if value is None:
        return None
    try:
        if value.startswith(MAGIC):
            return str(TELEMETRY.decode(value)["event_id"])
        return str(TELEMETRY.decode_json(value)["event_id"])
    except SerializationError:
        return None


def _outcomes(batch: list[Inbound], outcome: Outcome) -> dict[int, str]:
    """Offset -> "prediction" or the dead-letter reason, checking each input left once."""
    letters = [codec("DeadLetter").decode(d.value) for d in outcome.dead_letters]
    predicted = Counter(codec("Prediction").decode(p.value)["event_id"]
                        for p in outcome.predictions)
    assert len(outcome.predictions) + len(letters) == len(batch)
    assert outcome.dead_letter_reasons == [d["reason"] for d in letters]
    by_offset = {d["source_offset"]: d for d in letters}
    assert len(by_offset) == len(letters), "an input was dead-lettered twice"
    for letter, out in zip(letters, outcome.dead_letters, strict=True):
        source = batch[letter["source_offset"]]
        assert letter["reason"] in REASONS and letter["error"]
        assert (letter["original_key"], letter["original_value"]) == (source.key, source.value)
        assert out.key == source.key and letter["source_topic"] == TOPIC
    rest = [i for i in batch if i.offset not in by_offset]
    assert Counter(_event_id(i.value) for i in rest) == predicted, "predictions by event id"
    return {i.offset: by_offset[i.offset]["reason"] if i.offset in by_offset else PREDICTED
            for i in batch}


@FAST
@given(data=st.binary(max_size=256) | any_value.filter(lambda v: v is not None))
def test_telemetry_decoders_raise_only_serialization_error(data: bytes) -> None:
    for decode in (TELEMETRY.decode, TELEMETRY.decode_json, _decode_any_reading):
        try:
            record = decode(data)
        except SerializationError:
            continue
        _assert_is_reading(record)


def _decode_any_reading(data: bytes) -> Reading:
    name, record = decode_any(data)
    assert name == "TelemetryReading", f"random bytes decoded as a {name}"
    return record


def _assert_is_reading(record: Reading) -> None:
    """What the processor relies on: the schema's fields, typed, strings UTF-8 text."""
    strings = [record["event_id"], record["asset_id"], record["asset_type"], *record["sensors"]]
    assert all(isinstance(s, str) and s.encode() is not None for s in strings)
    assert type(record["timestamp"]) is int and -(2**63) <= record["timestamp"] < 2**63
    assert all(type(x) in (int, float) for x in record["sensors"].values())


@FAST
@given(key=any_key, value=any_value)
def test_any_key_and_value_leave_as_one_output(
    process: Callable[[list[Inbound]], Outcome], key: bytes | None, value: bytes | None
) -> None:
    batch = _inbound([(key, value)])

    assert _outcomes(batch, process(batch)).keys() == {0}


@BATCHES
@given(cases=batches())
def test_a_mixed_batch_gives_each_input_its_outcome(
    process: Callable[[list[Inbound]], Outcome], cases: list[Case]
) -> None:
    batch = _inbound([(c.key, c.value) for c in cases])

    outcomes = _outcomes(batch, process(batch))

    assert {o: outcomes[o] for o in outcomes if outcomes[o] not in cases[o].allowed} == {}


@st.composite
def _valid_stream(draw: st.DrawFn) -> list[Reading]:
    """Valid readings of a few assets, in event-time order.

    Stamped anywhere from the past bound (max_past_age_s) up to the clock.
    """
    stamps = sorted(draw(st.lists(st.integers(OLDEST_MS, NOW_MS), min_size=1, max_size=12)))
    readings = []
    for i, ts in enumerate(stamps):
        profile = draw(any_profile)
        asset = f"{profile.name}-{draw(st.integers(0, 2))}"
        readings.append(draw(_reading(profile, asset, f"evt-{i}", ts)))
    return readings


def _cnc(event_id: str, asset_id: str, sensors: tuple[float, float, float, float]) -> Reading:
    names = PROFILES["cnc"].sensor_names
    return {"event_id": event_id, "asset_id": asset_id, "asset_type": "cnc", "timestamp": T0,
            "sensors": dict(zip(names, sensors, strict=True))}


@BATCHES
@given(readings=_valid_stream(), as_json=st.booleans())
@example(  # found by this property: the ONNX forest said 1.0000001 for the third
    readings=[_cnc("evt-0", "cnc-0", (0.0, 0.0, 0.0, 0.0)), _cnc("evt-1", "cnc-1", (0, 0, 0, 0)),
              _cnc("evt-2", "cnc-0", (130.0, 1.0, 36.0, 24.0))],
    as_json=False,
)
def test_valid_readings_are_always_scored(
    process: Callable[[list[Inbound]], Outcome], readings: list[Reading], as_json: bool
) -> None:
    encode = (lambda r: json.dumps(r).encode()) if as_json else TELEMETRY.encode
    batch = _inbound([(r["asset_id"].encode(), encode(r)) for r in readings])

    outcome = process(batch)

    assert outcome.dead_letter_reasons == []
    predictions = [codec("Prediction").decode(p.value) for p in outcome.predictions]
    assert Counter(p["event_id"] for p in predictions) == Counter(r["event_id"] for r in readings)
    for p in predictions:
        assert math.isfinite(p["anomaly_score"]) and 0.0 <= p["failure_probability"] <= 1.0
        assert all(math.isfinite(f["value"]) and math.isfinite(f["z_score"])
                   for f in p["top_features"])


def _stored_after(processor: BatchProcessor, readings: list[Reading]) -> bytes:
    """The state bytes the asset of ``readings`` has once they are processed."""
    store: dict[bytes, bytes] = {}
    batch = _inbound([(r["asset_id"].encode(), TELEMETRY.encode(r)) for r in readings])
    for asset, (_, raw) in processor.process(batch, store.get).states.items():
        store[asset] = raw
    return store[readings[0]["asset_id"].encode()]


def _damaged_floats(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with one of its doubles replaced: counts, times and window totals alike."""
    specials = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, 1e300, 2.0**53])
    return st.tuples(st.integers(0, len(data) // 8 - 1), specials | st.floats()).map(
        lambda t: data[: 8 * t[0]] + struct.pack("<d", t[1]) + data[8 * t[0] + 8 :]
    )


def _after_damage(
    cnc_model: ScoringModel, pump_model: ScoringModel, damage: Callable[[bytes], bytes]
) -> tuple[bytes, Outcome]:
    """A cnc asset's stored state after three readings, damaged, and a fourth's outcome."""
    config = Settings(_env_file=None, profiles=("cnc", "pump"))  # type: ignore[call-arg]
    models = {"cnc": cnc_model, "pump": pump_model}

    def processor() -> BatchProcessor:
        return BatchProcessor(config, PROFILES, models.__getitem__, clock=lambda: NOW_MS / 1e3)

    first = [_cnc(f"evt-{i}", "cnc-9", (100.0 + i, 1.0, 30.0, 20.0)) for i in range(3)]
    for i, reading in enumerate(first):
        reading["timestamp"] = T0 + i * 1000
    damaged = damage(_stored_after(processor(), first))
    later = {**_cnc("evt-9", "cnc-9", (104.0, 1.0, 31.0, 21.0)), "timestamp": T0 + 9000}
    batch = [Inbound(b"cnc-9", TELEMETRY.encode(later), TOPIC, PARTITION, len(first))]
    return damaged, processor().process(batch, {b"cnc-9": damaged}.get)


def _one_outcome(damaged: bytes, outcome: Outcome) -> list[str]:
    """The reading had exactly one outcome; its dead letters' reasons.

    The one reading a state may silently skip is one it claims to hold already (its
    source offset says so): that is how a replay after a restart looks.
    """
    letters = [codec("DeadLetter").decode(d.value)["reason"] for d in outcome.dead_letters]
    assert len(outcome.predictions) + len(letters) + outcome.replayed == 1
    assert not letters or letters[0] in REASONS | {"late", "duplicate_event"}, letters
    if outcome.replayed:
        claimed = source_position(damaged)
        assert claimed is not None and claimed >= (PARTITION, 3), claimed
    return letters


@BATCHES
@given(data=st.data())
def test_a_damaged_stored_state_still_gives_the_reading_one_outcome(
    cnc_model: ScoringModel, pump_model: ScoringModel, data: st.DataObject
) -> None:
    """A changelog record damaged or cut short reads as a fresh state, never a stuck asset."""
    _one_outcome(*_after_damage(cnc_model, pump_model, lambda stored: data.draw(
        _mutations(stored) | _damaged_floats(stored) | st.binary(max_size=64))))


@pytest.mark.parametrize("byte", [8, 40, 41, 47], ids=["watermark", "digest", "digest+1",
                                                          "digest-top"])
def test_a_damaged_profile_digest_is_a_fresh_state_not_a_type_change(
    cnc_model: ScoringModel, pump_model: ScoringModel, byte: int
) -> None:
    """Found by the property above: a flipped digest byte dead-lettered every later reading."""
    damaged, outcome = _after_damage(
        cnc_model, pump_model, lambda s: s[:byte] + bytes([s[byte] ^ 1]) + s[byte + 1 :])
    assert _one_outcome(damaged, outcome) == []
    assert len(outcome.predictions) == 1


@pytest.mark.parametrize("watermark", [1e15, 2.0**62, 1e300])
def test_a_stored_watermark_far_ahead_of_now_is_damage_not_a_stuck_asset(
    cnc_model: ScoringModel, pump_model: ScoringModel, watermark: float
) -> None:
    """Kept, such a watermark would make every later reading of the asset late."""
    damaged, outcome = _after_damage(
        cnc_model, pump_model, lambda s: s[:8] + struct.pack("<d", watermark) + s[16:])
    assert _one_outcome(damaged, outcome) == []
    assert len(outcome.predictions) == 1

"""The hand-written Prediction writer gives fastavro's bytes, for any record of the schema."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assetwatch.errors import SerializationError
from assetwatch.schemas.codecs import codec
from assetwatch.schemas.prediction_rows import PredictionIds, PredictionRows
from assetwatch.schemas.prediction_writer import (
    _long,
    _times,
    check_schema,
    encode_prediction,
    encode_predictions,
)

PREDICTION = codec("Prediction")
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)  # no lone surrogates
longs = st.integers(-(2**63), 2**63 - 1)
doubles = st.floats(allow_nan=True, allow_infinity=True)
records = st.fixed_dictionaries({
    "asset_id": text, "asset_type": text, "event_id": text,
    "event_timestamp": longs, "processed_timestamp": longs,
    "anomaly_score": doubles, "is_anomaly": st.booleans(), "failure_probability": doubles,
    "model_name": text, "model_version": text,
    "top_features": st.lists(st.fixed_dictionaries(
        {"name": text, "value": doubles, "z_score": doubles}), max_size=70),
    "calibrating": st.booleans(), "baseline_score": doubles,
})


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(records)
def test_same_bytes_as_fastavro(record: dict[str, Any]) -> None:
    assert encode_prediction(PREDICTION.header, record) == PREDICTION.encode(record)


def test_the_schema_it_encodes_is_the_one_in_schemas() -> None:
    check_schema(PREDICTION.header)
    with pytest.raises(SerializationError, match=r"prediction\.avsc changed"):
        check_schema(codec("DeadLetter").header)


def _valid() -> dict[str, Any]:
    return {"asset_id": "a", "asset_type": "cnc", "event_id": "e", "event_timestamp": 1,
            "processed_timestamp": 2, "anomaly_score": 0.1, "is_anomaly": False,
            "failure_probability": 0.2, "model_name": "m", "model_version": "1",
            "top_features": [], "calibrating": False, "baseline_score": 0.0}


@pytest.mark.parametrize("change", [
    {"asset_id": None}, {"anomaly_score": "high"}, {"event_timestamp": 2**63},
    {"top_features": [{"name": "x"}]}, {"event_id": "\ud800"},
])
def test_a_record_off_the_schema_is_a_serialization_error(change: dict[str, Any]) -> None:
    with pytest.raises(SerializationError):
        encode_prediction(PREDICTION.header, {**_valid(), **change})
    missing = _valid()
    del missing["model_version"]
    with pytest.raises(SerializationError):
        encode_prediction(PREDICTION.header, missing)


epoch_ms = st.integers(2**34 - 2, 2**41 + 1)
"""Times whose varint is 6 bytes (written for the whole column at once), and either side."""


NAMES = ("temperature_mean_5m", "vibration", "power_std_30m", "spindle_speed_roc")
row_records = st.fixed_dictionaries({
    "asset_id": text, "event_id": text, "event_timestamp": st.one_of(epoch_ms, longs),
    "anomaly_score": doubles, "is_anomaly": st.booleans(), "failure_probability": doubles,
    "top": st.lists(st.tuples(st.integers(0, len(NAMES) - 1), doubles, doubles), max_size=5),
    "calibrating": st.booleans(), "baseline_score": doubles,
})


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(st.lists(row_records, max_size=8), text, longs, text, text)
def test_a_batch_from_columns_gives_each_records_bytes(
    rows: list[dict[str, Any]], asset_type: str, processed: int, model: str, version: str,
) -> None:
    ids = PredictionIds(asset_type, [r["asset_id"] for r in rows],
                        [r["event_id"] for r in rows], [r["event_timestamp"] for r in rows],
                        processed, [r["calibrating"] for r in rows],
                        [r["baseline_score"] for r in rows])
    columns = PredictionRows(
        ids, model, version, [r["anomaly_score"] for r in rows],
        [r["is_anomaly"] for r in rows], [r["failure_probability"] for r in rows],
        [[j for j, _, _ in r["top"]] for r in rows], [[v for _, v, _ in r["top"]] for r in rows],
        [[z for _, _, z in r["top"]] for r in rows], NAMES)

    encoded = encode_predictions(PREDICTION.header, columns)

    assert encoded == [PREDICTION.encode(columns.record(i)) for i in range(len(rows))]


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(st.lists(st.integers(2**34, 2**41 - 1), max_size=40) | st.lists(epoch_ms, max_size=40)
       | st.lists(longs, max_size=5))
def test_a_column_of_times_gives_each_times_varint(ms: list[int]) -> None:
    assert _times(ms) == [_long(n) for n in ms]


@pytest.mark.parametrize("ms", [[2**40, 2**63], [2**40, -(2**63) - 1], [2**40, "1"],
                                [2**40, 2.0**40]])
def test_a_column_of_times_off_the_schema_fails_as_each_time_would(ms: list[Any]) -> None:
    """Nothing is converted: encode_predictions words the error (a SerializationError)."""
    with pytest.raises((SerializationError, TypeError)) as each:
        [_long(n) for n in ms]
    with pytest.raises(each.type):
        _times(ms)

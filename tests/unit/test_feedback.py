"""The label/prediction join, without a broker: horizons, versions, order, duplicates, bounds."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from assetwatch.models.feedback import (
    Confusion,
    FeedbackJoin,
    LabelEvent,
    ModelVersion,
    PredictionEvent,
    outcome,
)

H = 3_600_000
"""The horizon of these tests: one hour in ms."""
T = 1_700_000_000_000
"""The outcome time of most labels."""
V1 = ModelVersion("assetwatch-cnc", "1")
V2 = ModelVersion("assetwatch-cnc", "2")
_ids = itertools.count()


def pred(at_ms: int, flagged: bool, model: ModelVersion = V1, asset: str = "a",
         event_id: str | None = None) -> PredictionEvent:
    return PredictionEvent(asset, event_id or f"e{next(_ids)}", at_ms, flagged, model)


def label(at_ms: int, failure: bool, asset: str = "a", label_id: str | None = None) -> LabelEvent:
    return LabelEvent(asset, label_id or f"l{next(_ids)}", at_ms, failure)


def cells(join: FeedbackJoin) -> dict[ModelVersion, tuple[int, int, int, int, int]]:
    """(tp, fp, fn, tn, labels) per model version."""
    return {m: (c.tp, c.fp, c.fn, c.tn, c.labels) for m, c in join.performance().items()}


def feed(join: FeedbackJoin, events: list[PredictionEvent | LabelEvent]) -> None:
    for event in events:
        if isinstance(event, PredictionEvent):
            join.add_prediction(event)
        else:
            join.add_label(event)


@dataclass(frozen=True)
class Case:
    events: list[PredictionEvent | LabelEvent]
    expected: dict[ModelVersion, tuple[int, int, int, int, int]]


CASES = {
    "failure judges flagged as tp, unflagged as fn": Case(
        [pred(T - 60_000, True), pred(T - 30_000, False), pred(T, True), label(T, True)],
        {V1: (2, 0, 1, 0, 1)}),
    "no-failure judges flagged as fp, unflagged as tn": Case(
        [pred(T - 60_000, True), pred(T - 30_000, False), pred(T - 1, False), label(T, False)],
        {V1: (0, 1, 0, 2, 1)}),
    "horizon includes both ends": Case(
        [pred(T - H, True), pred(T, False), label(T, True)], {V1: (1, 0, 1, 0, 1)}),
    "outside the horizon: before it and after the outcome": Case(
        [pred(T - H - 1, True), pred(T + 1, True), label(T, True)], {}),
    "several versions count apart; the label counts once per version": Case(
        [pred(T - 3, True, V1), pred(T - 2, True, V2), pred(T - 1, False, V2),
         label(T, True)],
        {V1: (1, 0, 0, 0, 1), V2: (1, 0, 1, 0, 1)}),
    "each prediction judged once: the first label takes it": Case(
        [pred(T - 10_000, True), label(T, True), label(T + 5_000, False)],
        {V1: (1, 0, 0, 0, 1)}),
    "a later label judges only what the first left": Case(
        [pred(T - 10_000, True), label(T, True), pred(T + 1_000, True),
         label(T + 5_000, False)],
        {V1: (1, 1, 0, 0, 2)}),
    "late predictions: judged on arrival by a kept label": Case(
        [label(T, True), pred(T - 5_000, True), pred(T - 4_000, False)],
        {V1: (1, 0, 1, 0, 1)}),
    "a late prediction takes the earliest label after it": Case(
        [label(T, True), label(T + 60_000, False), pred(T - 1, True), pred(T + 1, True)],
        {V1: (1, 1, 0, 0, 2)}),
    "a late prediction outside every kept horizon stays unjudged": Case(
        [label(T, True), pred(T - H - 1, True), pred(T + 1, True)], {}),
    "labels judge only their own asset": Case(
        [pred(T - 1, True, asset="a"), pred(T - 1, True, asset="b"), label(T, True, asset="b")],
        {V1: (1, 0, 0, 0, 1)}),
    "a repeated event id is one prediction": Case(
        [pred(T - 1, True, event_id="x"), pred(T - 1, True, event_id="x"), label(T, False)],
        {V1: (0, 1, 0, 0, 1)}),
    "a repeated label id is one label": Case(
        [pred(T - 1, True), label(T, True, label_id="k"), pred(T - 2, False),
         label(T, False, label_id="k")],
        {V1: (1, 0, 1, 0, 1)}),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_join(case: Case) -> None:
    join = FeedbackJoin(H, buffer=100)

    feed(join, case.events)

    assert cells(join) == case.expected


def test_arrival_order_between_streams_does_not_change_the_counts() -> None:
    predictions = [pred(T - 90_000 + 10_000 * i, i % 3 == 1, V1 if i < 5 else V2)
                   for i in range(12)]
    labels = [label(T, True), label(T + 60_000, False)]
    in_order = FeedbackJoin(H, buffer=100)
    labels_first = FeedbackJoin(H, buffer=100)

    feed(in_order, [*predictions[:10], labels[0], *predictions[10:], labels[1]])
    feed(labels_first, [*labels, *predictions])

    assert cells(in_order) == cells(labels_first) == {V1: (2, 0, 3, 0, 1),
                                                      V2: (1, 1, 4, 1, 2)}


def test_the_buffer_keeps_the_newest_predictions_and_counts_expired_ones() -> None:
    join = FeedbackJoin(H, buffer=3)
    feed(join, [pred(T - 5, True), pred(T - 4, True), pred(T - 3, False), pred(T - 2, False),
                pred(T - 6, True)])  # late and oldest: evicted as soon as it arrives

    judged = join.add_label(label(T, True))

    assert sorted(j.outcome for j in judged) == ["fn", "fn", "tp"]
    assert (join.totals.predictions, join.totals.expired) == (5, 2)


def test_an_evicted_prediction_may_come_again() -> None:
    join = FeedbackJoin(H, buffer=1)
    feed(join, [pred(T - 2, True, event_id="x"), pred(T - 1, False),
                pred(T - 2, True, event_id="x"), label(T, True)])

    assert cells(join) == {V1: (0, 0, 1, 0, 1)}  # "x" came back, then was evicted again
    assert join.totals.duplicates == 0


def test_labels_are_bounded_per_asset() -> None:
    join = FeedbackJoin(H, buffer=10, labels_per_asset=2)
    feed(join, [label(T, True), label(T + 1, False), label(T + 2, False), pred(T - 1, True)])

    assert cells(join) == {V1: (0, 1, 0, 0, 1)}  # the failure label at T was evicted


@pytest.mark.parametrize(
    ("flagged", "failure", "cell"),
    [(True, True, "tp"), (False, True, "fn"), (True, False, "fp"), (False, False, "tn")])
def test_outcome_table(flagged: bool, failure: bool, cell: str) -> None:
    assert outcome(flagged, failure) == cell


@pytest.mark.parametrize(
    ("confusion", "precision", "recall", "f1"),
    [
        (Confusion(), None, None, None),
        (Confusion(tp=3, fp=1, fn=1), 0.75, 0.75, 0.75),
        (Confusion(tp=1, fp=3), 0.25, 1.0, 0.4),
        (Confusion(fp=2, fn=2), 0.0, 0.0, 0.0),
        (Confusion(fp=2, tn=5), 0.0, None, None),
        (Confusion(fn=1, tn=5), None, 0.0, None),
    ],
)
def test_ratios(confusion: Confusion, precision: float | None, recall: float | None,
                f1: float | None) -> None:
    assert (confusion.precision, confusion.recall) == (precision, recall)
    assert confusion.f1 == (None if f1 is None else pytest.approx(f1))


def test_flagged_by_anomaly_or_probability_threshold() -> None:
    record = {"asset_id": "a", "event_id": "e", "event_timestamp": T, "is_anomaly": True,
              "failure_probability": 0.1, "model_name": "m", "model_version": "3"}

    assert PredictionEvent.from_record(record, 0.5).flagged
    assert not PredictionEvent.from_record({**record, "is_anomaly": False}, 0.5).flagged
    assert PredictionEvent.from_record(record, 0.5).model == ModelVersion("m", "3")


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        FeedbackJoin(H, buffer=0)

"""SKAB's binary metric, AUCs and plumbing counts on hand-made outcomes with known answers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from assetwatch.models.evaluation import (
    Confusion,
    FileOutcomes,
    evaluate,
    file_report,
    format_table,
    match_outcomes,
)


def _outcomes(labels: list[int], alarms: list[bool], name: str = "f",
              calibrating: list[bool] | None = None, scores: list[float] | None = None,
              predictions: list[int] | None = None, dead: list[int] | None = None
              ) -> FileOutcomes:
    n = len(labels)
    score = np.array(scores if scores is not None else [0.0] * n, dtype=float)
    return FileOutcomes(
        name, np.array(labels), np.array(alarms, dtype=bool),
        np.array(calibrating or [False] * n, dtype=bool),
        {"baseline_score": np.full(n, np.nan), "anomaly_score": score,
         "failure_probability": score},
        np.array(predictions or [1] * n), np.array(dead or [0] * n))


def test_confusion_counts_and_ratios() -> None:
    c = Confusion.of(np.array([1, 1, 1, 0, 0, 0, 0, 0]),
                     np.array([1, 1, 0, 1, 0, 0, 0, 0], dtype=bool))

    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 1, 4)
    assert c.precision == pytest.approx(2 / 3) and c.recall == pytest.approx(2 / 3)
    assert c.f1 == pytest.approx(2 / 3)
    assert c.far == pytest.approx(1 / 5) and c.mar == pytest.approx(1 / 3)


def test_undefined_ratios() -> None:
    never = Confusion.of(np.array([1, 0]), np.array([False, False]))
    only_positives = Confusion.of(np.array([1, 1]), np.array([True, False]))

    assert (never.precision, never.recall, never.f1) == (0.0, 0.0, 0.0)
    assert only_positives.far is None and only_positives.mar == 0.5
    assert Confusion().mar is None


def test_pooling_sums_counts_not_ratios() -> None:
    a = _outcomes([1, 1, 0, 0], [True, True, False, False], "a")  # perfect
    b = _outcomes([1, 0, 0, 0, 0, 0], [False, True, True, True, False, False], "b")

    result = evaluate([a, b], skip_rows=0)

    assert (result.pooled.tp, result.pooled.fp, result.pooled.fn, result.pooled.tn) == (2, 3, 1, 4)
    assert result.pooled.f1 == pytest.approx(2 * 0.4 * (2 / 3) / (0.4 + 2 / 3))
    assert result.files[0].confusion.f1 == 1.0 and result.files[1].confusion.f1 == 0.0


def test_first_rows_and_calibrating_rows_are_not_scored() -> None:
    # Rows 0-1 skipped; row 2 calibrating; rows 3-5 scored (the alarm on row 0 is ignored).
    outcomes = _outcomes([1, 0, 0, 1, 0, 1], [True, True, True, True, False, False],
                         calibrating=[True, True, True, False, False, False])

    report = file_report(outcomes, skip_rows=2)

    assert (report.readings, report.skipped, report.calibrating, report.rows) == (6, 2, 1, 3)
    assert (report.confusion.tp, report.confusion.fp, report.confusion.fn,
            report.confusion.tn) == (1, 0, 1, 1)


def test_missing_duplicate_and_dead_lettered_rows_are_counted() -> None:
    outcomes = _outcomes([0, 0, 0, 0, 1], [False] * 5, predictions=[1, 0, 2, 0, 1],
                         dead=[0, 1, 0, 0, 1])

    report = file_report(outcomes, skip_rows=0)

    assert (report.missing, report.duplicates, report.dead_letters) == (1, 2, 2)
    assert report.unanswered == 2 and report.rows == 3
    assert not report.complete
    assert file_report(_outcomes([0, 1], [False, True]), skip_rows=0).complete


def test_auc_is_pooled_over_scored_rows_and_absent_scores_are_none() -> None:
    a = _outcomes([0, 0, 1], [False] * 3, "a", scores=[0.9, 0.1, 0.8])  # row 0 skipped
    b = _outcomes([0, 0, 1], [False] * 3, "b", scores=[0.0, 0.2, 0.3])

    auc = evaluate([a, b], skip_rows=1).auc

    # scored: a: (0, .1), (1, .8); b: (0, .2), (1, .3) -> every positive above every negative
    assert auc["anomaly_score"] == pytest.approx(1.0)
    assert auc["baseline_score"] is None
    assert evaluate([a], skip_rows=2).auc["anomaly_score"] is None  # one class only


def test_match_outcomes_takes_the_first_prediction_and_reads_new_fields_with_defaults() -> None:
    old = {"is_anomaly": True, "anomaly_score": 0.3, "failure_probability": 0.1}
    new = {"is_anomaly": False, "anomaly_score": -0.1, "failure_probability": 0.2,
           "calibrating": True, "baseline_score": 4.5}
    predictions: dict[str, list[dict[str, Any]]] = {"e0": [old, new], "e1": [new]}

    outcomes = match_outcomes("f", np.array([0, 1, 0]), ["e0", "e1", "e2"], predictions,
                              {"e2": 1})

    assert outcomes.alarms.tolist() == [True, False, False]
    assert outcomes.calibrating.tolist() == [False, True, False]
    assert outcomes.predictions.tolist() == [2, 1, 0]
    assert outcomes.dead_letters.tolist() == [0, 0, 1]
    np.testing.assert_array_equal(outcomes.scores["baseline_score"], [np.nan, 4.5, np.nan])
    assert outcomes.scores["anomaly_score"][0] == 0.3


def test_report_json_and_table_carry_every_file_and_the_pool() -> None:
    result = evaluate([_outcomes([1, 0], [True, True], "pump-valve1-1")], skip_rows=0)
    document = result.as_dict()

    assert document["files"][0]["rows"] == 2 and document["files"][0]["far"] == 1.0
    assert document["pooled"]["f1"] == pytest.approx(2 / 3) and document["complete"]
    table = format_table(result)
    assert "pump-valve1-1" in table and "pooled" in table and "anomaly_score" in table


def test_plot_is_a_png_with_spans_from_the_labels() -> None:
    from assetwatch.models.evaluation_plots import evaluation_png, label_spans

    labels = np.array([0, 0, 1, 1, 0, 1])
    assert label_spans(labels) == [(2, 3), (5, 5)]
    assert label_spans(np.zeros(3)) == []

    seconds = np.arange(6.0)
    png = evaluation_png("t", seconds, {"a": np.arange(6.0), "flat": np.ones(6)},
                         np.linspace(-1, 1, 6), labels, labels.astype(bool), 0.0, skip_rows=2)
    assert png.startswith(b"\x89PNG")

"""SKAB's binary metric and score AUCs over what a pipeline answered for labelled readings.

Pure: the inputs are each file's labels in row order and the outputs matched to its rows,
so the arithmetic is tested on hand-made arrays, without a broker. SKAB's outlier protocol
leaves the first ``skip_rows`` of each file unscored (its calibration period); rows whose
prediction says ``calibrating`` are not scored either, and a row's first prediction counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

SCORES = ("baseline_score", "anomaly_score", "failure_probability")
"""Prediction fields whose ROC AUC is reported (baseline_score when the schema has it)."""
SKIP_ROWS = 400


@dataclass(frozen=True)
class FileOutcomes:
    """One file's readings in row order, with what came back for each row."""

    name: str
    labels: np.ndarray
    """0/1 per row."""
    alarms: np.ndarray
    """The first prediction's is_anomaly (False where there is none)."""
    calibrating: np.ndarray
    """The first prediction's calibrating flag (False where there is none or no such field)."""
    scores: Mapping[str, np.ndarray]
    """Per score field, the first prediction's value; NaN where none or no such field."""
    predictions: np.ndarray
    """Predictions received per row (1 expected)."""
    dead_letters: np.ndarray
    """Dead letters received per row."""


def match_outcomes(
    name: str, labels: np.ndarray, event_ids: Sequence[str],
    predictions: Mapping[str, Sequence[Mapping[str, Any]]], dead_letters: Mapping[str, int],
) -> FileOutcomes:
    """Line up the Prediction fields (by event id, arrival order) with the file's rows."""
    firsts = [_first(predictions.get(event_id, ())) for event_id in event_ids]
    return FileOutcomes(
        name=name,
        labels=np.asarray(labels, dtype=int),
        alarms=np.array([bool(p and p.get("is_anomaly")) for p in firsts], dtype=bool),
        calibrating=np.array([bool(p and p.get("calibrating", False)) for p in firsts],
                             dtype=bool),
        scores={score: np.array([_number(p, score) for p in firsts], dtype=float)
                for score in SCORES},
        predictions=np.array([len(predictions.get(e, ())) for e in event_ids], dtype=int),
        dead_letters=np.array([dead_letters.get(e, 0) for e in event_ids], dtype=int),
    )


def _first(received: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return received[0] if received else None


def _number(prediction: Mapping[str, Any] | None, field: str) -> float:
    value = prediction.get(field) if prediction else None
    return float(value) if value is not None else float("nan")


@dataclass(frozen=True)
class Confusion:
    """Point-wise confusion counts; the ratios SKAB reports derive from them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @classmethod
    def of(cls, labels: np.ndarray, alarms: np.ndarray) -> Confusion:
        """Counts of 0/1 ``labels`` against ``alarms``, row by row."""
        positive, alarm = labels.astype(bool), alarms.astype(bool)
        return cls(int((positive & alarm).sum()), int((~positive & alarm).sum()),
                   int((positive & ~alarm).sum()), int((~positive & ~alarm).sum()))

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn,
                         self.tn + other.tn)

    @property
    def precision(self) -> float:
        """TP / (TP + FP); 0 without any alarm, as scikit-learn."""
        return _ratio(self.tp, self.tp + self.fp) or 0.0  # no alarm: precision 0, as sklearn

    @property
    def recall(self) -> float:
        """TP / (TP + FN); 0 without any anomalous row."""
        return _ratio(self.tp, self.tp + self.fn) or 0.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall; 0 when both are 0."""
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0

    @property
    def far(self) -> float | None:
        """False-alarm rate FP / negatives (None without negatives)."""
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def mar(self) -> float | None:
        """Missed-alarm rate FN / positives (None without positives)."""
        return _ratio(self.fn, self.fn + self.tp)

    def as_dict(self) -> dict[str, Any]:
        """The counts and ratios as the JSON report has them."""
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
                "precision": self.precision, "recall": self.recall, "f1": self.f1,
                "far": self.far, "mar": self.mar}


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class FileReport:
    """Plumbing counts and the binary metric of one file."""

    name: str
    readings: int
    skipped: int
    """The first ``skip_rows`` rows (SKAB's calibration period)."""
    calibrating: int
    """Rows after those whose prediction said calibrating."""
    unanswered: int
    """Rows after those without a prediction (dead-lettered or missing)."""
    missing: int
    """Rows without any outcome, prediction or dead letter."""
    duplicates: int
    """Outcomes beyond the first per row."""
    dead_letters: int
    confusion: Confusion

    @property
    def rows(self) -> int:
        """Rows scored."""
        return self.confusion.tp + self.confusion.fp + self.confusion.fn + self.confusion.tn

    @property
    def complete(self) -> bool:
        """Every reading had exactly one outcome."""
        return self.missing == 0 and self.duplicates == 0

    def as_dict(self) -> dict[str, Any]:
        """One file's row of the JSON report."""
        return {"asset_id": self.name, "readings": self.readings, "skipped": self.skipped,
                "calibrating": self.calibrating, "unanswered": self.unanswered,
                "rows": self.rows, "missing": self.missing, "duplicates": self.duplicates,
                "dead_letters": self.dead_letters, **self.confusion.as_dict()}


def scored(outcomes: FileOutcomes, skip_rows: int) -> np.ndarray:
    """Rows the metric counts: past the skipped ones, predicted, not calibrating."""
    after = np.arange(len(outcomes.labels)) >= skip_rows
    mask: np.ndarray = after & (outcomes.predictions > 0) & ~outcomes.calibrating
    return mask


def file_report(outcomes: FileOutcomes, skip_rows: int = SKIP_ROWS) -> FileReport:
    """The report of one file; only rows after the first ``skip_rows`` are scored."""
    after = np.arange(len(outcomes.labels)) >= skip_rows
    answered = outcomes.predictions > 0
    total = outcomes.predictions + outcomes.dead_letters
    mask = scored(outcomes, skip_rows)
    return FileReport(
        name=outcomes.name, readings=len(outcomes.labels), skipped=int((~after).sum()),
        calibrating=int((after & answered & outcomes.calibrating).sum()),
        unanswered=int((after & ~answered).sum()), missing=int((total == 0).sum()),
        duplicates=int(np.maximum(total - 1, 0).sum()),
        dead_letters=int(outcomes.dead_letters.sum()),
        confusion=Confusion.of(outcomes.labels[mask], outcomes.alarms[mask]),
    )


def pooled_auc(files: Sequence[FileOutcomes], skip_rows: int = SKIP_ROWS
               ) -> dict[str, float | None]:
    """ROC AUC per score over every scored row; None when a score is absent or one class is."""
    masks = [scored(f, skip_rows) for f in files]
    labels = np.concatenate([f.labels[m] for f, m in zip(files, masks, strict=True)] or [[]])
    result: dict[str, float | None] = {}
    for score in SCORES:
        values = np.concatenate(
            [f.scores[score][m] for f, m in zip(files, masks, strict=True)] or [[]])
        usable = len(set(labels.tolist())) == 2 and bool(np.isfinite(values).all())
        result[score] = float(roc_auc_score(labels, values)) if usable else None
    return result


@dataclass(frozen=True)
class Evaluation:
    """Per-file reports and pooled AUCs of one run, after ``skip_rows`` rows per file."""

    files: tuple[FileReport, ...]
    auc: Mapping[str, float | None]
    skip_rows: int

    @property
    def pooled(self) -> Confusion:
        """Counts summed over files (SKAB pools the rows, not the per-file ratios)."""
        total = Confusion()
        for report in self.files:
            total = total + report.confusion
        return total

    @property
    def complete(self) -> bool:
        """Every file had exactly one outcome per reading."""
        return all(report.complete for report in self.files)

    def as_dict(self) -> dict[str, Any]:
        """The JSON report: per file, pooled over the files, and the AUCs."""
        return {"skip_rows": self.skip_rows, "complete": self.complete,
                "files": [r.as_dict() for r in self.files],
                "pooled": {"rows": sum(r.rows for r in self.files), **self.pooled.as_dict(),
                           "missing": sum(r.missing for r in self.files),
                           "duplicates": sum(r.duplicates for r in self.files),
                           "dead_letters": sum(r.dead_letters for r in self.files)},
                "auc": dict(self.auc)}


def evaluate(files: Sequence[FileOutcomes], skip_rows: int = SKIP_ROWS) -> Evaluation:
    """Report each file and pool them, skipping the first ``skip_rows`` rows of each."""
    return Evaluation(tuple(file_report(f, skip_rows) for f in files),
                      pooled_auc(files, skip_rows), skip_rows)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _line(name: str, rows: int, c: Confusion, missing: int, duplicates: int, dead: int) -> str:
    return (f"{name[-28:]:<28} {rows:>6} {c.tp:>5} {c.fp:>5} {c.fn:>5} {c.tn:>5} "
            f"{_cell(c.precision):>6} {_cell(c.recall):>6} {_cell(c.f1):>6} {_cell(c.far):>6} "
            f"{_cell(c.mar):>6} {missing:>5} {duplicates:>4} {dead:>5}")


def format_table(evaluation: Evaluation) -> str:
    """The human-readable report: one line per file, the pooled line, the AUCs."""
    head = (f"{'asset':<28} {'rows':>6} {'tp':>5} {'fp':>5} {'fn':>5} {'tn':>5} {'prec':>6} "
            f"{'recall':>6} {'f1':>6} {'far':>6} {'mar':>6} {'miss':>5} {'dup':>4} {'dead':>5}")
    lines = [head, "-" * len(head)]
    lines += [_line(r.name, r.rows, r.confusion, r.missing, r.duplicates, r.dead_letters)
              for r in evaluation.files]
    pooled = evaluation.as_dict()["pooled"]
    lines.append(_line("pooled", pooled["rows"], evaluation.pooled, pooled["missing"],
                       pooled["duplicates"], pooled["dead_letters"]))
    aucs = ", ".join(f"{score} {_cell(value)}" for score, value in evaluation.auc.items())
    lines.append(f"ROC AUC (pooled, scored rows): {aucs}")
    lines.append(f"not scored: the first {evaluation.skip_rows} rows of each file and rows "
                 "predicted while calibrating; the alarm is is_anomaly")
    return "\n".join(lines)

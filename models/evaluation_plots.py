"""One PNG per evaluated file: what the sensors did, what the model said, where the faults were.

Drawn on the Agg canvas like :mod:`assetwatch.models.plots` (no pyplot, no global state).
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from assetwatch.models.plots import png_bytes


def label_spans(labels: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) row of each run of 1s, to shade.

    >>> label_spans(np.array([0, 1, 1, 0, 1]))
    [(1, 2), (4, 4)]
    """
    edges = np.diff(np.concatenate([[0], labels.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(),
                    (np.flatnonzero(edges == -1) - 1).tolist(), strict=True))


def evaluation_png(title: str, seconds: np.ndarray, sensors: dict[str, np.ndarray],
                   score: np.ndarray, labels: np.ndarray, alarms: np.ndarray,
                   threshold: float | None = None, skip_rows: int = 0) -> bytes:
    """Sensors z-normalised over the file (top) and the baseline score (bottom).

    The labelled anomaly spans are shaded, alarms marked and the unscored first rows greyed.
    """
    figure = Figure(figsize=(11, 6), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    for name, values in sensors.items():
        spread = np.nanstd(values) or 1.0
        top.plot(seconds, (values - np.nanmean(values)) / spread, linewidth=0.7, label=name)
    top.set(ylabel="sensor (z over the file)", title=title)
    top.legend(loc="upper left", fontsize=7, ncols=4)
    bottom.plot(seconds, score, linewidth=0.8, color="black", label="baseline_score")
    if threshold is not None:
        bottom.axhline(threshold, color="red", linestyle="--", linewidth=0.8, label="threshold")
    flagged = alarms.astype(bool)
    bottom.scatter(seconds[flagged], score[flagged], s=6, color="red", label="alarm", zorder=3)
    bottom.set(xlabel="seconds since the first reading", ylabel="score")
    bottom.legend(loc="upper left", fontsize=7)
    for axes in (top, bottom):
        _shade(axes, seconds, labels, skip_rows)
    return png_bytes(figure)


def _shade(axes: Axes, seconds: np.ndarray, labels: np.ndarray, skip_rows: int) -> None:
    for first, last in label_spans(labels):
        axes.axvspan(seconds[first], seconds[last], color="orange", alpha=0.25, linewidth=0)
    if 0 < skip_rows <= len(seconds):
        axes.axvspan(seconds[0], seconds[skip_rows - 1], color="grey", alpha=0.15, linewidth=0)

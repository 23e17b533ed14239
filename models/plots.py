"""Training plots as PNG bytes: confusion matrix, ROC curve and feature importances.

Figures are drawn straight onto the Agg canvas: no pyplot, no global backend or figure state.
"""

from __future__ import annotations

from io import BytesIO

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

TOP_FEATURES = 20
CLASS_NAMES = ("normal", "failure")


def training_plots(labels: np.ndarray, failure_probability: np.ndarray,
                   feature_names: tuple[str, ...], importances: np.ndarray) -> dict[str, bytes]:
    """PNG per file name; the ROC curve only when the validation rows hold both classes."""
    plots = {
        "confusion_matrix.png": confusion_matrix_png(labels, failure_probability >= 0.5),
        "feature_importance.png": feature_importance_png(feature_names, importances),
    }
    if len(set(labels.tolist())) == 2:
        plots["roc_curve.png"] = roc_curve_png(labels, failure_probability)
    return plots


def confusion_matrix_png(labels: np.ndarray, predicted: np.ndarray) -> bytes:
    """PNG of the 2x2 confusion matrix, counts written in the cells."""
    matrix = confusion_matrix(labels, predicted, labels=[0, 1])
    figure = Figure(figsize=(4.5, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        dark = count > matrix.max() / 2
        axes.text(column, row, str(count), ha="center", va="center",
                  color="white" if dark else "black")
    axes.set_xticks([0, 1], CLASS_NAMES)
    axes.set_yticks([0, 1], CLASS_NAMES)
    axes.set(xlabel="predicted (probability >= 0.5)", ylabel="actual",
             title="Failure classifier, validation rows")
    return png_bytes(figure)


def roc_curve_png(labels: np.ndarray, probability: np.ndarray) -> bytes:
    """PNG of the ROC curve and its AUC, against chance."""
    false_positive, true_positive, _ = roc_curve(labels, probability)
    figure = Figure(figsize=(4.5, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(false_positive, true_positive,
              label=f"classifier (AUC {roc_auc_score(labels, probability):.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="false positive rate", ylabel="true positive rate",
             title="ROC curve, validation rows", xlim=(0, 1), ylim=(0, 1.01))
    axes.legend(loc="lower right")
    return png_bytes(figure)


def feature_importance_png(feature_names: tuple[str, ...], importances: np.ndarray) -> bytes:
    """The classifier's impurity importances of its :data:`TOP_FEATURES` top features."""
    top = np.argsort(importances)[::-1][:TOP_FEATURES][::-1]  # largest drawn at the top
    figure = Figure(figsize=(6, 0.25 * len(top) + 1.2), layout="constrained")
    axes = figure.add_subplot()
    axes.barh([feature_names[i] for i in top], importances[top])
    axes.set(xlabel="mean decrease in impurity",
             title=f"Failure classifier: top {len(top)} of {len(feature_names)} features")
    axes.tick_params(axis="y", labelsize=8)
    return png_bytes(figure)


def png_bytes(figure: Figure) -> bytes:
    """The figure rendered to PNG bytes (Agg: no display needed)."""
    FigureCanvasAgg(figure)  # attaches itself to the figure
    buffer = BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()

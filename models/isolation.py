"""An IsolationForest's score from its summed path lengths: numpy only.

Shared by the compiler (training writes the path lengths into an ONNX graph,
:mod:`assetwatch.models.compiled`) and the scorer (serving turns the graph's output into
scikit-learn's ``decision_function``, :mod:`assetwatch.models.bundle`), so serving needs
neither scikit-learn nor onnx.
"""

from __future__ import annotations

import numpy as np

EULER_GAMMA = 0.5772156649015329


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): mean path length of an unsuccessful search in a binary search tree of n points."""
    n = np.asarray(n, dtype=float)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + EULER_GAMMA) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def path_length_to_decision(
    path_length: np.ndarray, n_trees: int, max_samples: float, offset: float
) -> np.ndarray:
    """scikit-learn's ``decision_function`` from the summed path lengths.

    Besides them it needs three numbers of the fitted forest (``len(estimators_)``,
    ``max_samples_``, ``offset_``).
    """
    denominator = n_trees * float(average_path_length(np.array([max_samples]))[0])
    scores = -np.power(2.0, -path_length.astype(float).ravel() / denominator)
    return scores - float(offset)

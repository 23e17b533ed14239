"""Histogram buckets of a batch, counted where it is scored and merged into Prometheus later.

The scoring helper counts each batch's observations into these bounds and sends the counts
back (a few numbers, not one value per reading); the worker's metrics add them up.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
"""Event time to outputs acknowledged; readings replayed from history land in the top ones."""
FAILURE_PROBABILITY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)

class Buckets(NamedTuple):
    """Observations of one batch: a count per bucket (last = above every bound) and their sum."""

    counts: tuple[int, ...]
    total: float


def bucketize(values: np.ndarray, bounds: tuple[float, ...]) -> Buckets:
    """Count ``values`` into Prometheus ``le`` buckets (a value equal to a bound is in it).

    A non-finite value is not an observation: one NaN would make the sum NaN for good.

    >>> bucketize(np.array([0.1, 0.5, 0.7, 9.0, np.nan]), (0.5, 1.0))
    Buckets(counts=(2, 1, 1), total=10.3)
    """
    values = values[np.isfinite(values)]
    index = np.searchsorted(np.asarray(bounds), values, side="left")
    counts = np.bincount(index, minlength=len(bounds) + 1)
    return Buckets(tuple(counts.tolist()), float(np.sum(values)))

"""The training reference: per feature (and model output) bin edges and frequencies.

Drift detection compares the histogram of recent values on the same edges with these
frequencies (Jensen-Shannon divergence). Edges are the training data's quantiles, so every
bin holds a share of the training rows; the outer bins are open (values beyond the training
range count in the first or last bin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

BINS = 10
ANOMALY_SCORE = "output:anomaly_score"
FAILURE_PROBABILITY = "output:failure_probability"


@dataclass(frozen=True)
class FeatureReference:
    """Training distribution of each named column, as histograms on fixed edges."""

    names: tuple[str, ...]
    inner_edges: np.ndarray
    """(columns, BINS - 1) ascending edges between the bins."""
    frequencies: np.ndarray
    """(columns, BINS) share of the training rows in each bin; rows sum to 1."""

    @classmethod
    def from_rows(cls, names: tuple[str, ...], rows: np.ndarray, bins: int = BINS
                  ) -> FeatureReference:
        """Quantile edges and bin shares of ``rows`` (n, columns); non-finite values ignored."""
        if rows.ndim != 2 or rows.shape[1] != len(names) or len(rows) == 0:
            raise ValueError(f"expected (n > 0, {len(names)}) rows, got {rows.shape}")
        quantiles = np.linspace(0, 1, bins + 1)[1:-1]
        clean = np.where(np.isfinite(rows), rows, np.nan)
        edges = np.nanquantile(clean, quantiles, axis=0).T  # (columns, bins - 1)
        edges = np.where(np.isfinite(edges), edges, 0.0)
        reference = cls(names, edges, np.zeros((len(names), bins)))
        counts = reference.counts(rows)
        totals = counts.sum(axis=1, keepdims=True)
        return cls(names, edges, counts / np.where(totals > 0, totals, 1))

    def subset(self, names: tuple[str, ...]) -> FeatureReference:
        """The reference of some of the columns, in the order of ``names``."""
        index = [self.names.index(name) for name in names]
        return FeatureReference(names, self.inner_edges[index], self.frequencies[index])

    @property
    def bins(self) -> int:
        """Bins per column of the reference histograms."""
        return int(self.frequencies.shape[1])

    def counts(self, rows: np.ndarray) -> np.ndarray:
        """(columns, bins) histogram of ``rows`` on the reference edges; non-finite skipped."""
        bins = self.bins
        out = np.zeros((len(self.names), bins), dtype=np.int64)
        for j in range(len(self.names)):
            column = rows[:, j]
            column = column[np.isfinite(column)]
            index = np.searchsorted(self.inner_edges[j], column, side="right")
            out[j] = np.bincount(index, minlength=bins)
        return out

    def to_json(self) -> dict[str, Any]:
        """Per column its inner bin edges (the outer bins are open) and bin frequencies."""
        return {"bins": self.bins, "columns": [
            {"name": name, "edges": edges.tolist(), "frequencies": freqs.tolist()}
            for name, edges, freqs in zip(self.names, self.inner_edges, self.frequencies,
                                          strict=True)]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureReference:
        """The reference :meth:`to_json` described (exact: floats round-trip through JSON)."""
        columns = data["columns"]
        return cls(tuple(c["name"] for c in columns),
                   np.array([c["edges"] for c in columns], dtype=float),
                   np.array([c["frequencies"] for c in columns], dtype=float))


def js_divergence(counts: np.ndarray, frequencies: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of each row of ``counts``.

    Each against the matching row of ``frequencies`` (scipy's distance, squared); a row
    without counts gives 0.
    """
    with np.errstate(divide="ignore", invalid="ignore"):  # the no-count rows, set to 0 below
        distance = jensenshannon(counts, frequencies, base=2, axis=1)
    divergence = np.clip(np.square(distance), 0.0, 1.0)
    return np.where(counts.sum(axis=1) > 0, divergence, 0.0)

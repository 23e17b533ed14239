"""Event-time windows made of mergeable buckets (count, sums, sums of squares, min, max).

A window of length L and bucket b covers the newest bucket (the one holding the asset's
newest reading) and the L/b - 1 buckets before it, so it spans between L - b and L seconds
of event time. Readings arriving out of order land in their own bucket while it is inside the
window. Window totals are re-derived from the buckets whenever one expires, so no floating
error accumulates from subtracting.

    >>> from assetwatch.features.profiles import WindowSpec
    >>> w = BucketedWindow(WindowSpec("5m", 300, 10, ("mean", "std", "min", "max")), k=1)
    >>> for ts, x in [(0, 1.0), (1_000, 3.0), (12_000, 5.0)]:
    ...     w.add(ts, (x,))
    True
    True
    True
    >>> w.count, w.mean(0), w.minimum(0), w.maximum(0)
    (3, 3.0, 1.0, 5.0)
    >>> w.add(400_000, (7.0,))  # the first two buckets expire
    True
    >>> w.count
    1
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from assetwatch.features.profiles import WindowSpec


class BucketedWindow:
    """Incremental statistics of k sensors over one event-time window."""

    __slots__ = ("_maxs", "_mins", "_sums", "_sumsqs", "bucket_ms", "buckets", "count", "extrema",
                 "head", "k", "n_buckets")

    def __init__(self, spec: WindowSpec, k: int) -> None:
        self.k = k
        self.bucket_ms = spec.bucket_s * 1000
        self.n_buckets = spec.n_buckets
        self.extrema = spec.extrema
        # bucket index -> [count, sum_1..k, sumsq_1..k, (min_1..k, max_1..k)]
        self.buckets: dict[int, list[float]] = {}
        self.head: int | None = None
        self.count = 0
        self._sums: list[float]
        self._sumsqs: list[float]
        self._mins: list[float]
        self._maxs: list[float]
        self._clear_totals()

    def _clear_totals(self) -> None:
        k = self.k
        self.count = 0
        self._sums, self._sumsqs = [0.0] * k, [0.0] * k
        self._mins, self._maxs = [math.inf] * k, [-math.inf] * k

    @property
    def bucket_width(self) -> int:
        """Values kept per bucket."""
        return 1 + (4 if self.extrema else 2) * self.k

    def add(self, ts_ms: int, values: Sequence[float]) -> bool:
        """Fold one reading in; False if it is older than the window reaches."""
        index = ts_ms // self.bucket_ms
        if self.head is None or index > self.head:
            self._advance(index)
        elif index <= self.head - self.n_buckets:
            return False
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = self._empty_bucket()
        k = self.k
        bucket[0] += 1
        self.count += 1
        sums, sumsqs = self._sums, self._sumsqs
        for i, x in enumerate(values):
            sq = x * x
            bucket[1 + i] += x
            bucket[1 + k + i] += sq
            sums[i] += x
            sumsqs[i] += sq
        if self.extrema:
            mins, maxs = self._mins, self._maxs
            for i, x in enumerate(values):
                if x < bucket[1 + 2 * k + i]:
                    bucket[1 + 2 * k + i] = x
                if x > bucket[1 + 3 * k + i]:
                    bucket[1 + 3 * k + i] = x
                if x < mins[i]:
                    mins[i] = x
                if x > maxs[i]:
                    maxs[i] = x
        return True

    def snapshot_into(self, out: list[float]) -> None:
        """Append the window's totals: count, sums, sums of squares (and minima, maxima)."""
        out.append(float(self.count))
        out.extend(self._sums)
        out.extend(self._sumsqs)
        if self.extrema:
            out.extend(self._mins)
            out.extend(self._maxs)

    def column(self, stat: str) -> list[float]:
        """One statistic for every sensor: 'mean', 'std', 'min' or 'max'."""
        n = self.count
        if not n:
            return [0.0] * self.k
        if stat == "mean":
            return [s / n for s in self._sums]
        if stat == "std":
            if n < 2:
                return [0.0] * self.k
            return [
                math.sqrt(max((q - s * s / n) / (n - 1), 0.0))
                for s, q in zip(self._sums, self._sumsqs, strict=True)
            ]
        return list(self._mins if stat == "min" else self._maxs)

    def means(self, sensors: Sequence[int]) -> list[float]:
        """The window mean of each of ``sensors`` (0.0 while empty)."""
        n, sums = self.count, self._sums
        return [sums[i] / n for i in sensors] if n else [0.0] * len(sensors)

    def mean(self, i: int) -> float:
        """Mean of sensor ``i`` over the window; 0 while it is empty."""
        return self._sums[i] / self.count if self.count else 0.0

    def std(self, i: int) -> float:
        """Sample standard deviation (ddof=1, as pandas); 0 below two readings."""
        n = self.count
        if n < 2:
            return 0.0
        s = self._sums[i]
        return math.sqrt(max((self._sumsqs[i] - s * s / n) / (n - 1), 0.0))

    def minimum(self, i: int) -> float:
        """Minimum of sensor ``i`` over the window; 0 while it is empty."""
        return self._mins[i] if self.count else 0.0

    def maximum(self, i: int) -> float:
        """Maximum of sensor ``i`` over the window; 0 while it is empty."""
        return self._maxs[i] if self.count else 0.0

    def to_floats(self) -> list[float]:
        """Totals then buckets, flattened: [count, sums, sumsqs, mins, maxs, n, index, values...].

        The totals are derivable from the buckets but are kept so that a restored window is
        bit-identical to one that never stopped (a sum of bucket sums rounds differently).
        """
        out: list[float] = [float(self.count), *self._sums, *self._sumsqs, *self._mins, *self._maxs]
        out.append(float(len(self.buckets)))
        for index in sorted(self.buckets):
            out.append(float(index))
            out.extend(self.buckets[index])
        return out

    def load_floats(self, data: Sequence[float], pos: int) -> int:
        """Restore buckets written by :meth:`to_floats` at ``data[pos:]``; return the next position.

        Raises ValueError (or IndexError) when ``data`` is too short to hold what it announces.
        """
        k, width = self.k, self.bucket_width
        self.count = int(data[pos])
        pos += 1
        self._sums, self._sumsqs, self._mins, self._maxs = (
            list(data[pos + j * k : pos + (j + 1) * k]) for j in range(4)
        )
        pos += 4 * k
        n = int(data[pos])
        pos += 1
        if n < 0 or pos + n * (1 + width) > len(data):
            raise ValueError(f"window of {n} buckets of {width} values overruns the data")
        self.buckets = {}
        for _ in range(n):
            self.buckets[int(data[pos])] = list(data[pos + 1 : pos + 1 + width])
            pos += 1 + width
        self.head = max(self.buckets) if self.buckets else None
        return pos

    def _empty_bucket(self) -> list[float]:
        k = self.k
        bucket = [0.0] * (1 + 2 * k)
        if self.extrema:
            bucket += [math.inf] * k + [-math.inf] * k
        return bucket

    def _advance(self, index: int) -> None:
        self.head = index
        oldest = index - self.n_buckets
        expired = [i for i in self.buckets if i <= oldest]
        if expired:
            for i in expired:
                del self.buckets[i]
            self._recompute()

    def _recompute(self) -> None:
        """Re-derive the window totals by merging its buckets, a column at a time.

        ``math.fsum`` rounds each total once and the same on every Python version (the
        built-in ``sum`` of floats changed its rounding in 3.12), so online and offline
        folds agree wherever they run.
        """
        k = self.k
        columns = list(zip(*(self.buckets[i] for i in sorted(self.buckets)), strict=True))
        if not columns:
            self._clear_totals()
            return
        self.count = int(math.fsum(columns[0]))
        self._sums = [math.fsum(c) for c in columns[1 : 1 + k]]
        self._sumsqs = [math.fsum(c) for c in columns[1 + k : 1 + 2 * k]]
        if self.extrema:
            self._mins = [min(c) for c in columns[1 + 2 * k : 1 + 3 * k]]
            self._maxs = [max(c) for c in columns[1 + 3 * k : 1 + 4 * k]]

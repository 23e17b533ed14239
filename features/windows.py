"""Event-time windows made of mergeable buckets (count, sums, sums of squares, min, max).

A window of length L and bucket b covers the newest bucket (the one holding the asset's
newest reading) and the L/b - 1 buckets before it, so it spans between L - b and L seconds
of event time. Readings arriving out of order land in their own bucket while it is inside the
window. Window totals are re-derived from the buckets whenever one expires, so no floating
error accumulates from subtracting. :mod:`features.window_batch` folds many windows' readings
at once, with the same results.

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
from functools import reduce
from itertools import islice
from operator import add

from assetwatch.features.profiles import WindowSpec


class BucketedWindow:
    """Incremental statistics of k sensors over one event-time window."""

    __slots__ = ("_extremum_slots", "_moment_slots", "_totals", "bucket_ms", "buckets",
                 "extrema", "head", "k", "n_buckets")

    def __init__(self, spec: WindowSpec, k: int) -> None:
        self.k = k
        self.bucket_ms = spec.bucket_s * 1000
        self.n_buckets = spec.n_buckets
        self.extrema = spec.extrema
        # bucket index -> [count, sum_1..k, sumsq_1..k, (min_1..k, max_1..k)]
        self.buckets: dict[int, list[float]] = {}
        self.head: int | None = None
        self._totals = self._empty_bucket()
        """The window's totals, laid out as a bucket."""
        self._moment_slots = [(1 + i, 1 + k + i) for i in range(k)]
        """Where each sensor's sum and sum of squares are, in a bucket and in the totals."""
        self._extremum_slots = [(1 + 2 * k + i, 1 + 3 * k + i) for i in range(k)]
        """Where each sensor's minimum and maximum are (if the window keeps extrema)."""

    @property
    def count(self) -> int:
        """Readings in the window."""
        return int(self._totals[0])

    @property
    def bucket_width(self) -> int:
        """Values kept per bucket."""
        return 1 + (4 if self.extrema else 2) * self.k

    def add(self, ts_ms: int, values: Sequence[float]) -> bool:
        """Fold one reading in; False if it is older than the window reaches."""
        index = ts_ms // self.bucket_ms
        head = self.head
        if head is None or index > head:
            self._advance(index)
        elif index <= head - self.n_buckets:
            return False
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = self._empty_bucket()
        totals = self._totals
        bucket[0] += 1.0
        totals[0] += 1.0
        # zip without strict=True: the keyword costs a slow call, and values hold k floats
        for (s, q), x in zip(self._moment_slots, values):  # noqa: B905
            bucket[s] += x
            totals[s] += x
            sq = x * x
            bucket[q] += sq
            totals[q] += sq
        if self.extrema:
            # A total is never above (below) a bucket's minimum (maximum): only a new bucket
            # extreme can be a new total one.
            for (lo, hi), x in zip(self._extremum_slots, values):  # noqa: B905
                if x < bucket[lo]:
                    bucket[lo] = x
                    if x < totals[lo]:
                        totals[lo] = x
                if x > bucket[hi]:
                    bucket[hi] = x
                    if x > totals[hi]:
                        totals[hi] = x
        return True

    def snapshot_into(self, out: list[float]) -> None:
        """Append the window's totals: count, sums, sums of squares (and minima, maxima)."""
        out.extend(self._totals)

    def column(self, stat: str) -> list[float]:
        """One statistic for every sensor: 'mean', 'std', 'min' or 'max'."""
        return [self._stat(stat, i) for i in range(self.k)]

    def means(self, sensors: Sequence[int]) -> list[float]:
        """The window mean of each of ``sensors`` (0.0 while empty)."""
        totals = self._totals
        n = totals[0]
        return [totals[1 + i] / n for i in sensors] if n else [0.0] * len(sensors)

    def mean(self, i: int) -> float:
        """Mean of sensor ``i`` over the window; 0 while it is empty."""
        n = self._totals[0]
        return self._totals[1 + i] / n if n else 0.0

    def std(self, i: int) -> float:
        """Sample standard deviation (ddof=1, as pandas); 0 below two readings."""
        n = self._totals[0]
        if n < 2:
            return 0.0
        s, q = self._totals[1 + i], self._totals[1 + self.k + i]
        return math.sqrt(max((q - s * s / n) / (n - 1), 0.0))

    def minimum(self, i: int) -> float:
        """Minimum of sensor ``i`` over the window; 0 while it is empty."""
        return self._totals[1 + 2 * self.k + i] if self._totals[0] else 0.0

    def maximum(self, i: int) -> float:
        """Maximum of sensor ``i`` over the window; 0 while it is empty."""
        return self._totals[1 + 3 * self.k + i] if self._totals[0] else 0.0

    def _stat(self, stat: str, i: int) -> float:
        if stat == "mean":
            return self.mean(i)
        if stat == "std":
            return self.std(i)
        return self.minimum(i) if stat == "min" else self.maximum(i)

    def to_floats(self) -> list[float]:
        """Totals then buckets, flattened: [count, sums, sumsqs, mins, maxs, n, index, values...].

        The totals are derivable from the buckets but are kept so that a restored window is
        bit-identical to one that never stopped (a sum of bucket sums rounds differently).
        A window without extrema writes minima of inf and maxima of -inf.
        """
        out = list(self._totals)
        if not self.extrema:
            out += [math.inf] * self.k + [-math.inf] * self.k
        out.append(float(len(self.buckets)))
        for index in sorted(self.buckets):
            out.append(float(index))
            out.extend(self.buckets[index])
        return out

    def load_floats(self, data: Sequence[float], pos: int) -> int:
        """Restore buckets written by :meth:`to_floats` at ``data[pos:]``; return the next position.

        Raises ValueError (or IndexError) when ``data`` is too short to hold what it announces.
        """
        width = self.bucket_width
        totals = list(data[pos : pos + 1 + 4 * self.k])
        if len(totals) != 1 + 4 * self.k:
            raise ValueError(f"window totals of {self.k} sensors overrun the data")
        self._totals = totals[:width]
        pos += 1 + 4 * self.k
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
            self._recompute([self.buckets.pop(i) for i in expired])

    def _recompute(self, expired: list[list[float]]) -> None:
        """Re-derive the window totals from its buckets once ``expired`` ones have left.

        Sums are the buckets' added in bucket order, one plain IEEE addition after another
        (not the built-in ``sum``, whose rounding changed in 3.12), so online and offline
        folds agree wherever they run, and :func:`features.window_batch.fold_sorted` adds
        them the same way for many windows at once. A minimum (maximum) is re-derived only
        when an expired bucket held it: otherwise a surviving bucket holds it still, and the
        total stands as it was.
        """
        if not self.buckets:
            self._totals = self._empty_bucket()
            return
        k, old = self.k, self._totals
        moments = 1 + 2 * k
        columns = zip(*(self.buckets[i] for i in sorted(self.buckets)), strict=True)
        totals = [reduce(add, column) for column in islice(columns, moments)]
        if self.extrema:
            gone = expired[0] if len(expired) == 1 else self._merged(expired)
            for j, column in enumerate(columns, moments):
                was = old[j]
                if gone[j] != was:
                    totals.append(was)
                else:
                    totals.append(min(column) if j < moments + k else max(column))
        self._totals = totals

    def _merged(self, buckets: list[list[float]]) -> list[float]:
        """The extrema of ``buckets`` together, laid out as one bucket (moments left zero)."""
        k = self.k
        columns = list(zip(*buckets, strict=True))
        return ([0.0] * (1 + 2 * k) + [min(c) for c in columns[1 + 2 * k : 1 + 3 * k]]
                + [max(c) for c in columns[1 + 3 * k :]])

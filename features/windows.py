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
from itertools import islice

import numpy as np

from assetwatch.features.profiles import WindowSpec
from assetwatch.features.running import Segments, running


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

    def rederived(self) -> list[float]:
        """The window's totals derived from its buckets alone.

        As :meth:`_recompute` derives them: its extrema shortcut gives the same values, since
        a total extremum is always some bucket's.
        """
        if not self.buckets:
            return self._empty_bucket()
        moments = 1 + 2 * self.k
        columns = zip(*(self.buckets[i] for i in sorted(self.buckets)), strict=True)
        totals = list(map(math.fsum, islice(columns, moments)))
        if self.extrema:
            totals += [min(c) for c in islice(columns, self.k)]
            totals += [max(c) for c in columns]
        return totals

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

        Sums are merged a column at a time with ``math.fsum``, which rounds each total once
        and the same on every Python version (the built-in ``sum`` of floats changed its
        rounding in 3.12), so online and offline folds agree wherever they run. A minimum
        (maximum) is re-derived only when an expired bucket held it: otherwise a surviving
        bucket holds it still, and the total stands as it was.
        """
        if not self.buckets:
            self._totals = self._empty_bucket()
            return
        k, old = self.k, self._totals
        moments = 1 + 2 * k
        columns = zip(*(self.buckets[i] for i in sorted(self.buckets)), strict=True)
        totals = list(map(math.fsum, islice(columns, moments)))
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


def fold_sorted(windows: Sequence[BucketedWindow], group: np.ndarray, ts_ms: np.ndarray,
                contributions: np.ndarray) -> np.ndarray:
    """Fold many assets' readings into their windows at once; each reading's window totals.

    ``windows`` are one window (the same spec) of each asset; row ``i`` of ``ts_ms`` and
    ``contributions`` is a reading of ``windows[group[i]]``, an asset's rows adjacent and in
    their fold order, their times never falling behind the one before nor behind the
    window's newest bucket (so no window finds one too old). ``contributions`` holds each
    reading's ``[1, x, x*x, x, x]``: count, sums, sums of squares, minima, maxima.

    Bit-identical to :meth:`BucketedWindow.add` one reading at a time (only the sign of a zero
    extremum may differ): a bucket is its first value then its readings in order, the totals
    run from the window's through every reading until a bucket expires and from the buckets
    re-derived then, and both are accumulated in order (:func:`running`). Only the expiries
    go a bucket at a time, in Python.
    """
    n = len(ts_ms)
    if not n:
        return np.empty((0, windows[0].bucket_width if windows else 0))
    first = windows[0]
    width, moments, k = first.bucket_width, 1 + 2 * first.k, first.k
    steps = contributions[:, :width]
    index = ts_ms // first.bucket_ms
    run_starts = np.ones(n, dtype=bool)
    run_starts[1:] = (index[1:] != index[:-1]) | (group[1:] != group[:-1])
    run_of = np.cumsum(run_starts) - 1
    firsts = np.flatnonzero(run_starts)
    runs = Segments.of(run_of)
    run_index, run_group = index[firsts].tolist(), group[firsts].tolist()
    # each run's bucket: the bucket it continues (only an asset's first run can), or empty
    starts = np.array([_bucket_before(windows[g], b, r == 0 or run_group[r - 1] != g)
                       for r, (g, b) in enumerate(zip(run_group, run_index, strict=True))])
    buckets = _accumulated(starts, steps, runs, moments, k)
    ends = buckets[np.cumsum(runs.lengths) - 1].tolist()
    # the totals: from the window's at an asset's first run, re-derived where buckets expire
    segment_starts, segment_totals = np.zeros(len(firsts), dtype=bool), []
    for r, (g, b) in enumerate(zip(run_group, run_index, strict=True)):
        window = windows[g]
        if r == 0 or run_group[r - 1] != g:
            segment_starts[r] = True
            segment_totals.append(window._totals)
        if window.head is None or b > window.head:
            window.head = b
            oldest = b - window.n_buckets
            expired = [i for i in window.buckets if i <= oldest]
            if expired:
                for i in expired:
                    del window.buckets[i]
                if not segment_starts[r]:
                    segment_starts[r] = True
                    segment_totals.append(window.rederived())
                else:
                    segment_totals[-1] = window.rederived()
        window.buckets[b] = ends[r]
    segments = Segments.of((np.cumsum(segment_starts) - 1)[run_of])
    totals = _accumulated(np.array(segment_totals), steps, segments, moments, k)
    lasts = np.flatnonzero(np.append(group[1:] != group[:-1], True))
    for g, last in zip(group[lasts].tolist(), totals[lasts].tolist(), strict=True):
        windows[g]._totals = last
    return totals


def _bucket_before(window: BucketedWindow, index: int, continues: bool) -> list[float]:
    """What bucket ``index`` holds before a run of readings: empty unless ``continues``."""
    bucket = window.buckets.get(index) if continues else None
    return window._empty_bucket() if bucket is None else bucket


def _accumulated(start: np.ndarray, steps: np.ndarray, segments: Segments, moments: int,
                 k: int) -> np.ndarray:
    """Bucket-laid-out rows accumulated per segment: sums, then minima and maxima if any."""
    out = np.empty_like(steps)
    out[:, :moments] = running(start[:, :moments], steps[:, :moments], segments)
    if steps.shape[1] > moments:
        lows, highs = slice(moments, moments + k), slice(moments + k, moments + 2 * k)
        out[:, lows] = running(start[:, lows], steps[:, lows], segments,
                               np.minimum.accumulate, np.inf)
        out[:, highs] = running(start[:, highs], steps[:, highs], segments,
                                np.maximum.accumulate, -np.inf)
    return out

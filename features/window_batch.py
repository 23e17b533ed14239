"""Many assets' readings folded into their event-time windows at once, a column at a time.

:func:`fold_sorted` gives each reading the window totals :meth:`BucketedWindow.add` would
give it one reading at a time, bit for bit (only the sign of a zero extremum may differ):

- a bucket is its first value, then its readings in order: a running sum per run of
  readings that share a bucket (:func:`features.running.running`);
- the totals run on from the window's through every reading until a bucket expires, and on
  from the totals re-derived from the buckets left then;
- re-derived totals are the buckets' sums added in bucket order (:meth:`BucketedWindow.
  _recompute` adds them so too) and their extrema, for every expiry of the call in one
  numpy pass. Only the bookkeeping of which buckets expire goes a run at a time in Python.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assetwatch.features.running import Segments, running
from assetwatch.features.windows import BucketedWindow

Slot = int | list[float]
"""A segment's starting totals: a window's own, or the index of a re-derivation."""


def fold_sorted(windows: Sequence[BucketedWindow], group: np.ndarray, ts_ms: np.ndarray,
                contributions: np.ndarray) -> np.ndarray:
    """Fold many assets' readings into their windows at once; each reading's window totals.

    ``windows`` are one window (the same spec) of each asset; row ``i`` of ``ts_ms`` and
    ``contributions`` is a reading of ``windows[group[i]]``, an asset's rows adjacent and in
    their fold order, their times never falling behind the one before nor behind the
    window's newest bucket (so no window finds one too old). ``contributions`` holds each
    reading's ``[1, x, x*x, x, x]``: count, sums, sums of squares, minima, maxima.
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
    runs = Segments.of(run_of)
    firsts = np.flatnonzero(run_starts)
    run_index, run_group = index[firsts].tolist(), group[firsts].tolist()
    opens = [r == 0 or run_group[r - 1] != g for r, g in enumerate(run_group)]
    """Runs that are their asset's first: only these can continue a bucket."""
    starts = np.array([_bucket_before(windows[g], b, o)
                       for g, b, o in zip(run_group, run_index, opens, strict=True)])
    ends = _accumulated(starts, steps, runs, moments, k)[np.cumsum(runs.lengths) - 1]
    ended = ends.tolist()
    expiries = _Expiries(width)
    segment_starts, slots = np.zeros(len(firsts), dtype=bool), []
    for r, (g, b) in enumerate(zip(run_group, run_index, strict=True)):
        window = windows[g]
        if opens[r]:
            expiries.open(window)
            segment_starts[r] = True
            slots.append(window._totals)
        if window.head is None or b > window.head:
            window.head = b
            oldest = b - window.n_buckets
            expired = [i for i in window.buckets if i <= oldest]
            if expired:
                for i in expired:
                    del window.buckets[i]
                if not segment_starts[r]:
                    segment_starts[r] = True
                    slots.append(0)
                slots[-1] = expiries.request(window)
        window.buckets[b] = ended[r]
        expiries.ran(window, b, r)
    rederived = expiries.totals(ends, moments, k)
    start = np.array([rederived[s] if isinstance(s, int) else s for s in slots])
    totals = _accumulated(start, steps, Segments.of((np.cumsum(segment_starts) - 1)[run_of]),
                          moments, k)
    lasts = np.flatnonzero(np.append(group[1:] != group[:-1], True))
    for g, last in zip(group[lasts].tolist(), totals[lasts].tolist(), strict=True):
        windows[g]._totals = last
    return totals


class _Expiries:
    """The buckets each expiry of a :func:`fold_sorted` call leaves, re-derived at the end.

    A bucket is a row of a pool: a stored bucket (numbered from 0 up) or the bucket a run
    ended with (run ``r`` is ``-(r + 1)``), which is complete once a later run expires others.
    """

    def __init__(self, width: int) -> None:
        self._width = width
        self._stored: list[list[float]] = []
        self._rows: dict[int, dict[int, int]] = {}
        """Per window (by id), each bucket index's pool row."""
        self._requests: list[list[int]] = []

    def open(self, window: BucketedWindow) -> None:
        """Number ``window``'s stored buckets, at its asset's first run."""
        rows = self._rows[id(window)] = {}
        for i, bucket in window.buckets.items():
            rows[i] = len(self._stored)
            self._stored.append(bucket)

    def ran(self, window: BucketedWindow, index: int, run: int) -> None:
        """Run ``run`` filled (or went on filling) ``window``'s bucket ``index``."""
        self._rows[id(window)][index] = -(run + 1)

    def request(self, window: BucketedWindow) -> int:
        """Ask for the totals of ``window``'s buckets now; the index of the answer."""
        rows = self._rows[id(window)]
        self._requests.append([rows[i] for i in sorted(window.buckets)])
        return len(self._requests) - 1

    def totals(self, ends: np.ndarray, moments: int, k: int) -> np.ndarray:
        """Every request's totals: sums added in bucket order, then minima and maxima."""
        if not self._requests:
            return np.empty((0, self._width))
        padding = -(len(ends) + 1)  # the pool's last row: an empty bucket
        longest = max(1, *map(len, self._requests))  # at least the padding: no buckets left
        ids = np.array([row + [padding] * (longest - len(row)) for row in self._requests],
                       dtype=np.int64).reshape(len(self._requests), longest)
        empty = np.zeros(self._width)
        empty[moments : moments + k], empty[moments + k :] = np.inf, -np.inf
        pool = np.vstack([np.array(self._stored).reshape(-1, self._width), ends, empty])
        stored = len(self._stored)
        block = pool[np.where(ids >= 0, ids, stored - ids - 1)]
        out = np.empty((len(ids), self._width))
        # accumulate adds in order (a reduction may pair); the padding adds an exact 0.0
        out[:, :moments] = np.add.accumulate(block[:, :, :moments], axis=1)[:, -1]
        if self._width > moments:
            out[:, moments : moments + k] = block[:, :, moments : moments + k].min(axis=1)
            out[:, moments + k :] = block[:, :, moments + k :].max(axis=1)
        return out


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

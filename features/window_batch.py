"""Many assets' readings folded into their event-time windows at once, a column at a time.

:func:`fold_sorted` gives each reading the window totals :meth:`BucketedWindow.add` would
give it one reading at a time, bit for bit (only the sign of a zero extremum may differ):

- a bucket is its first value, then its readings in order: a running sum per run of
  readings that share a bucket (:func:`features.running.running`);
- the totals run on from the window's through every reading until a bucket expires, and on
  from the totals re-derived from the buckets left then;
- re-derived totals are the buckets' sums added in bucket order (:meth:`BucketedWindow.
  _recompute` adds them so too) and their extrema, for every expiry of the call in one
  numpy pass; which buckets each expiry leaves is found for every run at once
  (:class:`_Buckets`). Python loops only over the assets, to read and write their windows,
  and over the runs, to store each one's bucket.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assetwatch.features.running import Segments, running
from assetwatch.features.windows import BucketedWindow


def fold_sorted(windows: Sequence[BucketedWindow], assets: Segments, ts_ms: np.ndarray,
                contributions: np.ndarray) -> np.ndarray:
    """Fold many assets' readings into their windows at once; each reading's window totals.

    ``windows`` are one window (the same spec) of each asset; row ``i`` of ``ts_ms`` and
    ``contributions`` is a reading of ``windows[assets.of_row[i]]``, an asset's rows adjacent and in
    their fold order, every asset with at least one, their times never falling behind the
    one before nor behind the window's newest bucket (so no window finds one too old).
    ``contributions`` holds each reading's ``[1, x, x*x, x, x]``: count, sums, sums of
    squares, minima, maxima.
    """
    n = len(ts_ms)
    if not n:
        return np.empty((0, windows[0].bucket_width if windows else 0))
    first = windows[0]
    width, moments, k = first.bucket_width, 1 + 2 * first.k, first.k
    steps, group = contributions[:, :width], assets.of_row
    index = ts_ms // first.bucket_ms
    run_starts = np.ones(n, dtype=bool)
    run_starts[1:] = (index[1:] != index[:-1]) | (group[1:] != group[:-1])
    run_of = np.cumsum(run_starts) - 1
    runs = Segments.of(run_of)
    firsts = np.flatnonzero(run_starts)
    run_index, run_group = index[firsts], group[firsts]
    opens = np.ones(len(firsts), dtype=bool)
    opens[1:] = run_group[1:] != run_group[:-1]
    """Runs that are their asset's first: only these can continue a stored bucket."""
    book = _Buckets(windows, run_index[opens].tolist(), width)
    starts = np.empty((len(firsts), width))
    starts[:] = book.empty
    starts[opens] = book.continued
    ends = _accumulated(starts, steps, runs, moments, k)[runs.lasts]
    try:
        live, expired, own = book.sequence(run_group, run_index, opens, ends)
    except OverflowError:  # times decades apart (offline files): one asset at a time
        return _one_by_one(windows, assets, ts_ms, contributions)
    # the totals run on from the window's at an asset's first run, re-derived where it expires
    segment_starts = opens | expired
    slot = np.cumsum(segment_starts) - 1
    start = np.empty((int(slot[-1]) + 1, width))
    kept = opens & ~expired
    if kept.any():
        start[slot[kept]] = [windows[g]._totals for g in run_group[kept].tolist()]
    start[slot[expired]] = book.rederived(live[expired], own[expired], moments, k)
    totals = _accumulated(start, steps, Segments.of(slot[run_of]), moments, k)
    last_runs = np.append(opens[1:], True)
    for window, head, last in zip(windows, run_index[last_runs].tolist(),
                                  totals[assets.lasts].tolist(), strict=True):
        oldest = head - window.n_buckets
        for i in [i for i in window.buckets if i <= oldest]:
            del window.buckets[i]
        window.head, window._totals = head, last
    for g, b, bucket in zip(run_group.tolist(), run_index.tolist(), ends.tolist(), strict=True):
        window = windows[g]
        if b > window.head - window.n_buckets:  # not expired within the call
            window.buckets[b] = bucket
    return totals


def _one_by_one(windows: Sequence[BucketedWindow], assets: Segments, ts_ms: np.ndarray,
                contributions: np.ndarray) -> np.ndarray:
    """:func:`fold_sorted` called for each asset alone."""
    out = np.empty((len(ts_ms), windows[0].bucket_width))
    for window, first, length in zip(windows, assets.firsts.tolist(), assets.lengths.tolist(),
                                     strict=True):
        rows = slice(first, first + length)
        out[rows] = fold_sorted([window], Segments.of(np.zeros(length, dtype=np.int64)),
                                ts_ms[rows], contributions[rows])
    return out


class _Buckets:
    """Every bucket a :func:`fold_sorted` call sees, in one sequence sorted by (asset, index).

    The sequence holds each asset's stored buckets (less the one its first run continues),
    then the bucket each of its runs ends with. The buckets a run's window holds before the
    run's own are then a range of the sequence: from the first one still inside the window
    (found for every run by one ``searchsorted``) up to the run's own, exclusive.
    """

    def __init__(self, windows: Sequence[BucketedWindow], first_runs: list[int],
                 width: int) -> None:
        self.windows = windows
        self.n_buckets = windows[0].n_buckets
        self.empty = np.array(windows[0]._empty_bucket())
        self.continued = np.empty((len(windows), width))
        """Each asset's first run's starting bucket: the stored one it continues, or empty."""
        counts, indexes = [], []
        self._stored: list[list[float]] = []
        """The stored buckets' rows (lists: only those an expiry adds up become an array)."""
        for g, (window, run) in enumerate(zip(windows, first_runs, strict=True)):
            held = window.buckets.get(run) if window.head == run else None
            self.continued[g] = self.empty if held is None else held
            keys = [i for i in sorted(window.buckets) if i != run]
            counts.append(len(keys))
            indexes += keys
            self._stored += map(window.buckets.__getitem__, keys)
        self._stored_at = (np.repeat(np.arange(len(windows)), counts),
                           np.array(indexes, dtype=np.int64))
        self._ends = self.empty[None, :]
        self._rows = np.zeros(0, dtype=np.int64)
        """Each sequence position's bucket: a stored one's number, or stored + run."""
        self._indexes = np.zeros(0, dtype=np.int64)
        self._bounds = np.zeros(len(windows) + 1, dtype=np.int64)
        """Where each asset's part of the sequence begins (and the last one ends)."""

    def sequence(self, run_group: np.ndarray, run_index: np.ndarray, opens: np.ndarray,
                 ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per run: the first position inside its window, whether buckets expired, its own.

        Raises OverflowError when the bucket indexes are too far apart for one sorted key.
        """
        stored_assets, stored_indexes = self._stored_at
        assets = np.concatenate((stored_assets, run_group))
        indexes = np.concatenate((stored_indexes, run_index))
        self._ends = ends
        self._rows = np.lexsort((indexes, assets))
        self._indexes, sorted_assets = indexes[self._rows], assets[self._rows]
        self._bounds = np.searchsorted(sorted_assets, np.arange(len(self.windows) + 1))
        position = np.empty(len(self._rows), dtype=np.int64)
        position[self._rows] = np.arange(len(self._rows))
        own = position[len(stored_assets):]
        # one sorted key for (asset, index); a bucket is inside a run's window above run - n
        low = int(self._indexes.min())
        stride = int(self._indexes.max()) - low + self.n_buckets + 1
        if stride * len(self.windows) >= 2**62:
            raise OverflowError("bucket indexes too far apart to fold together")
        key = sorted_assets * stride + (self._indexes - low)
        live = np.searchsorted(key, run_group * stride + (run_index - self.n_buckets - low),
                               side="right")
        before = np.where(opens, self._bounds[run_group], np.roll(live, 1))
        heads = np.array([w.head if w.head is not None else -(2**62) for w in self.windows])
        advances = ~opens | (run_index > heads[run_group])
        return live, advances & (live > before), own

    def rederived(self, live: np.ndarray, own: np.ndarray, moments: int, k: int
                  ) -> np.ndarray:
        """The totals of the buckets from ``live`` up to ``own`` (exclusive), per row."""
        out = np.empty((len(live), len(self.empty)))
        if not len(live):
            return out
        longest = max(1, int((own - live).max()))  # at least the padding: no buckets left
        at = live[:, None] + np.arange(longest)
        inside = at < own[:, None]
        ids = np.where(inside, self._rows[np.where(inside, at, 0)], -1)
        stored = len(self._stored)
        needed = np.unique(ids[(ids >= 0) & (ids < stored)])
        # the pool: the stored buckets added up, the runs' ends, an empty bucket (the padding)
        pool = np.vstack((np.array([self._stored[i] for i in needed.tolist()]).reshape(
            len(needed), len(self.empty)), self._ends, self.empty[None, :]))
        block = pool[np.where(ids < 0, len(pool) - 1, np.where(
            ids < stored, np.searchsorted(needed, ids), len(needed) + ids - stored))]
        # accumulate adds in order (a reduction may pair); the padding adds an exact 0.0
        out[:, :moments] = np.add.accumulate(block[:, :, :moments], axis=1)[:, -1]
        if len(self.empty) > moments:
            out[:, moments : moments + k] = block[:, :, moments : moments + k].min(axis=1)
            out[:, moments + k :] = block[:, :, moments + k :].max(axis=1)
        return out


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

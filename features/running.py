"""Running sums and extrema over many segments of rows at once, in row order.

A Python loop ``total += x`` over a segment's rows and ``np.add.accumulate`` over the same
rows do the same IEEE additions in the same order, so the results are bit-identical; this
module runs the accumulation for every segment of a batch in one numpy call, by laying the
segments out as the rows of a padded block (padding that cannot change a result: 0.0 for
sums, +inf for minima, -inf for maxima).

    >>> import numpy as np
    >>> steps = np.array([[1.0], [2.0], [3.0], [4.0]])
    >>> segments = Segments.of(np.array([0, 0, 1, 1]))
    >>> running(np.array([[10.0], [0.5]]), steps, segments).ravel().tolist()
    [11.0, 13.0, 3.5, 7.5]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

PADDING_FACTOR = 2
"""A padded block holds at most this many cells per row it accumulates (plus its longest
segment), so a batch of one long segment and many short ones stays small."""

Accumulate = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Segments:
    """Which segment each row belongs to and its place in it; rows of a segment are adjacent."""

    of_row: np.ndarray
    position: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, segment: np.ndarray) -> Segments:
        """From each row's segment number (non-decreasing, from 0, none skipped)."""
        lengths = np.bincount(segment) if len(segment) else np.zeros(0, np.int64)
        firsts = np.cumsum(lengths) - lengths
        return cls(segment, np.arange(len(segment)) - firsts[segment], lengths)

    @property
    def firsts(self) -> np.ndarray:
        """Each segment's first row."""
        firsts: np.ndarray = np.cumsum(self.lengths) - self.lengths
        return firsts

    @property
    def lasts(self) -> np.ndarray:
        """Each segment's last row."""
        lasts: np.ndarray = np.cumsum(self.lengths) - 1
        return lasts

    def chunks(self) -> list[np.ndarray]:
        """Segment numbers grouped so that no padded block is mostly padding."""
        count, rows = len(self.lengths), int(self.lengths.sum())
        if not count or count * (int(self.lengths.max()) + 1) <= PADDING_FACTOR * (rows + count):
            return [np.arange(count)]
        order = np.argsort(-self.lengths, kind="stable")
        out, begin, cells = [], 0, 0
        sorted_lengths = self.lengths[order].tolist()
        for i, length in enumerate(sorted_lengths):
            longest = sorted_lengths[begin]
            cells += length
            if (i + 1 - begin) * (longest + 1) > PADDING_FACTOR * (cells + i + 1 - begin):
                out.append(order[begin:i])
                begin, cells = i, length
        out.append(order[begin:])
        return out


def running(start: np.ndarray, steps: np.ndarray, segments: Segments,
            accumulate: Accumulate = np.add.accumulate, padding: float = 0.0) -> np.ndarray:
    """Per row, its segment's ``start`` accumulated with the segment's steps up to that row.

    ``start`` is (segments, columns), ``steps`` (rows, columns).
    """
    out = np.empty_like(steps)
    if not len(steps):
        return out
    chunks = segments.chunks()
    for chunk in chunks:
        rows: slice | np.ndarray = slice(None)
        slot = segments.of_row
        if len(chunks) > 1:
            renumber = np.full(len(segments.lengths), -1)
            renumber[chunk] = np.arange(len(chunk))
            slot = renumber[segments.of_row]
            rows = np.flatnonzero(slot >= 0)
            slot = slot[rows]
        block = np.full((len(chunk), int(segments.lengths[chunk].max()) + 1, steps.shape[1]),
                        padding)
        block[:, 0] = start[chunk]
        position = segments.position[rows] + 1
        block[slot, position] = steps[rows]
        accumulate(block, axis=1, out=block)
        out[rows] = block[slot, position]
    return out

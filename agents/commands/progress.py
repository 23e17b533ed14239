"""Progress of a long publish on stderr: rows, rows/s and the time left, every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


def _duration(seconds: float) -> str:
    """``7s``, ``4m05s``, ``2h03m``.

    >>> _duration(7.4), _duration(245), _duration(7380)
    ('7s', '4m05s', '2h03m')
    """
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def progress_line(done: int, total: int | None, elapsed_s: float, verb: str = "replay",
                  unit: str = "rows") -> str:
    """One progress line.

    >>> progress_line(150_000, 500_000, 3.0)
    'replay: 150,000/500,000 rows (30%), 50,000 rows/s, ETA 7s'
    >>> progress_line(10, None, 0.0)
    'replay: 10 rows, 0 rows/s'
    >>> progress_line(120, None, 12.0, "simulate", "readings")
    'simulate: 120 readings in 12s, 10 readings/s'
    """
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    if not total:
        took = f" in {_duration(elapsed_s)}" if elapsed_s >= 1 else ""
        return f"{verb}: {done:,} {unit}{took}, {rate:,.0f} {unit}/s"
    eta = f", ETA {_duration((total - done) / rate)}" if rate > 0 else ""
    return f"{verb}: {done:,}/{total:,} {unit} ({done / total:.0%}), {rate:,.0f} {unit}/s{eta}"


PROGRESS_EVERY_S = 2.0
"""Seconds between two progress lines of a long publish (a paced run is long)."""


class Progress:
    """Writes :func:`progress_line` to ``out`` when told of progress, every ``every_s`` at most."""

    def __init__(self, total: int | None, out: TextIO, every_s: float = PROGRESS_EVERY_S,
                 clock: Callable[[], float] = time.monotonic, verb: str = "replay",
                 unit: str = "rows") -> None:
        self._total, self._out, self._every_s, self._clock = total, out, every_s, clock
        self._verb, self._unit = verb, unit
        self._started = self._last = clock()

    def update(self, done: int) -> None:
        """Report ``done`` rows if a progress line is due."""
        now = self._clock()
        if now - self._last >= self._every_s:
            self._last = now
            self._write(done, now)

    def finish(self, done: int) -> None:
        """Report the final count, whatever the time."""
        self._write(done, self._clock())

    def _write(self, done: int, now: float) -> None:
        print(progress_line(done, self._total, now - self._started, self._verb, self._unit),
              file=self._out, flush=True)

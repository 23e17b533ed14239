"""Progress of a long publish on stderr: rows, rows/s and the time left, at most once a second."""

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


def progress_line(done: int, total: int | None, elapsed_s: float) -> str:
    """One progress line.

    >>> progress_line(150_000, 500_000, 3.0)
    'replay: 150,000/500,000 rows (30%), 50,000 rows/s, ETA 7s'
    >>> progress_line(10, None, 0.0)
    'replay: 10 rows, 0 rows/s'
    """
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    if not total:
        return f"replay: {done:,} rows, {rate:,.0f} rows/s"
    eta = f", ETA {_duration((total - done) / rate)}" if rate > 0 else ""
    return f"replay: {done:,}/{total:,} rows ({done / total:.0%}), {rate:,.0f} rows/s{eta}"


class Progress:
    """Writes :func:`progress_line` to ``out`` when told of progress, every ``every_s`` at most."""

    def __init__(self, total: int | None, out: TextIO, every_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._total, self._out, self._every_s, self._clock = total, out, every_s, clock
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
        print(progress_line(done, self._total, now - self._started), file=self._out, flush=True)

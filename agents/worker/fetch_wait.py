"""How long the worker's next fetch may be held: short while data flows, longer once idle.

A fetch tells the broker how long it may hold the request when it has nothing new. Apache
Kafka answers as soon as data arrives, so the wait costs no latency there, only the idle
requests a short one makes. tansu holds a fetch about its whole wait even when data arrives
(README, Performance), so there the wait is latency: a 10 ms wait took ~6 ms off the
median at 200 readings/s, but an idle worker then spent ~9.5% of a core on empty fetches
instead of ~2.1% with 50 ms.

So the wait adapts: after a fetch that brought records the next one waits
:data:`FLOWING_WAIT_MS`; after each empty one the wait doubles, up to the setting
(``fetch_max_wait_ms``). Data flowing, fetches come back quickly; idle, the worker fetches as
rarely as before, and the first reading after a quiet spell waits no longer than it did.
"""

from __future__ import annotations

FLOWING_WAIT_MS = 10
"""The wait after a fetch that brought records (the hand-written peer's and the relay's)."""


class FetchWait:
    """The wait for the next fetch, from what the last one brought.

    >>> wait = FetchWait(50)
    >>> wait.ms, wait.after(True), wait.after(False), wait.after(False), wait.after(False)
    (50, 10, 20, 40, 50)
    """

    def __init__(self, idle_ms: int) -> None:
        """``idle_ms``: the longest wait (the setting); a fetch starts with it."""
        self.idle_ms = idle_ms
        self.ms = idle_ms

    def after(self, brought_records: bool) -> int:
        """The wait for the fetch after one that did or did not bring records."""
        if brought_records:
            self.ms = min(FLOWING_WAIT_MS, self.idle_ms)
        else:
            self.ms = min(2 * self.ms, self.idle_ms)
        return self.ms

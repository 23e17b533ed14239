"""Ctrl-C as a request to stop: set an event, let the command finish and report.

A long-running verb (``demo``, paced ``simulate`` and ``replay``) ends on Ctrl-C or SIGTERM
by setting ``stop``; the loop that watches it returns, the verb flushes and prints its
summary, and the exit status is the verb's own (0 when all went well). A second signal raises
``KeyboardInterrupt``, which the CLI turns into exit status 130.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def stop_on_interrupt(stop: threading.Event, doing: str) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` and say ``doing`` on stderr; a second one raises."""
    def handle(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print(f"\n{signal.Signals(signum).name}: {doing} (again to abort)...",
              file=sys.stderr, flush=True)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

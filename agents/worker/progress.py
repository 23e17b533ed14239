"""How far the telemetry agent gets: batches completed, agent crashes, a lost scoring helper.

Written on the event loop (by the pipeline and the scorer) and read by /health and /live on
the HTTP threads; each field is one attribute write, so readers never see a torn value.
A worker whose batches stopped, whose agent crash-loops, or whose scoring helper cannot be
replaced must say so on /health rather than look ready while nothing moves.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from assetwatch.text import loggable

log = logging.getLogger(__name__)

EXIT_SCORING_LOST = 3
"""Exit status of a worker whose scoring helper could not be replaced."""


@dataclass
class AgentProgress:
    """The telemetry agent's progress, as readiness and liveness see it."""

    clock: Callable[[], float] = time.monotonic
    last_batch_s: float | None = None
    """When the last batch was acked (``clock`` time)."""
    crashes: int = 0
    last_crash_s: float | None = None
    last_crash: str = ""
    fatal: str | None = None
    """Why the worker cannot go on (it exits); /live answers 503 from then on."""
    exit: Callable[[int], object] = os._exit
    """How :meth:`fail` ends the process (tests record the call instead)."""

    def batch_done(self) -> None:
        """Note that a batch completed now."""
        self.last_batch_s = self.clock()

    def crashed(self, exc: BaseException) -> None:
        """The agent raised: Faust restarts it, and the batch is read again."""
        self.crashes += 1
        self.last_crash_s = self.clock()
        self.last_crash = loggable(f"{type(exc).__name__}: {exc}")

    def fail(self, reason: str, exit_code: int = EXIT_SCORING_LOST) -> None:
        """Fail loudly: mark the worker dead and exit at once with ``exit_code``.

        No graceful stop: the unacked batch is read again by the next owner (at-least-once),
        and a clean shutdown could wait on the very helper that is gone.
        """
        self.fatal = reason
        log.critical("the worker cannot go on and exits with %d: %s", exit_code, reason)
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        self.exit(exit_code)

"""The scoring helper's first code: ignore Ctrl-C, then unpickle and start the helper.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group, the helper too. The
worker stops the helper itself (it drains and then shuts the pool down), so the helper must
not die of the signal first and print a ``KeyboardInterrupt`` traceback. Only the standard
library is imported here: the pool unpickles this function before it can run it, and the
start function with its settings and models (whose unpickling imports numpy, onnxruntime...)
come in as bytes, unpickled after the signal is ignored.
"""

from __future__ import annotations

import pickle
import signal


def start_ignoring_interrupts(payload: bytes) -> None:
    """Pool initializer: SIGINT ignored, then ``start(*args)`` from ``payload``'s pickle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    start, args = pickle.loads(payload)  # our own parent pickled it
    start(*args)

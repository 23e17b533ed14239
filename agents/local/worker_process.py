"""``assetwatch worker`` as a child process.

The demo, evaluate, the benchmark and the tests start, watch and stop workers through this
one class, so they cannot drift apart.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from pydantic import SecretStr

from assetwatch.errors import WorkerError
from assetwatch.settings import Settings

READY_POLL_S = 0.25


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ASSETWATCH_* variables: the child sees exactly what the parent built."""
    env = {}
    for name, value in settings.model_dump(exclude_unset=False).items():
        if value is None:
            continue
        if isinstance(value, tuple | list):
            text = json.dumps(list(value))
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, Path):
            text = str(value.resolve())  # the child may run in another folder
        else:
            text = str(value)
        env[f"ASSETWATCH_{name.upper()}"] = text
    return env


class WorkerProcess:
    """One worker subprocess configured only by ``settings``, logging to ``log_path``.

    ASSETWATCH_* variables of this process are not inherited (the settings say it all);
    ``extra_env`` adds or overrides variables of the child. ``new_session`` starts it in a
    session (and process group) of its own, so a terminal's Ctrl-C reaches only the parent,
    which then stops the worker when it is ready to (the demo drains first).
    """

    def __init__(self, settings: Settings, log_path: Path, cwd: Path | None = None,
                 extra_env: Mapping[str, str] | None = None, new_session: bool = False) -> None:
        self.settings = settings
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETWATCH_")}
        env.update(settings_env(settings))
        env.update(extra_env or {})
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "assetwatch", "worker"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd or log_path.parent,
            start_new_session=new_session,
        )

    @property
    def pid(self) -> int:
        """Process id of the worker child (the benchmark samples its CPU and memory)."""
        return self.process.pid

    def exited(self) -> bool:
        """True once the worker process has ended, for whatever reason."""
        return self.process.poll() is not None

    def log_text(self) -> str:
        """Everything the worker has logged so far (undecodable bytes replaced)."""
        return self.log_path.read_text(errors="replace")

    def check_alive(self) -> None:
        """Raise, with the end of the log, if the worker has exited."""
        if self.exited():
            raise WorkerError(f"worker exited with {self.process.returncode}; end of "
                              f"{self.log_path}:\n{self.log_text()[-3000:]}")

    def health(self) -> dict[str, Any] | None:
        """The /health document (ready or not), or None while nothing answers."""
        url = f"http://127.0.0.1:{self.settings.metrics_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                document: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as error:  # 503: answering, not ready
            document = json.load(error)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None
        return document

    def wait_ready(self, timeout_s: float = 120.0,
                   until: threading.Event | None = None) -> dict[str, Any]:
        """Poll /health until it says ready; the settings need a fixed ``metrics_port``.

        Once ``until`` is set (a Ctrl-C meanwhile) it returns the last answer, ready or not.
        """
        if self.settings.metrics_port == 0:
            raise WorkerError("wait_ready needs a fixed metrics_port, not 0")
        stop = until or threading.Event()
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            self.check_alive()
            last = self.health() or last
            if last is not None and last.get("status") == "ready":
                return last
            if stop.wait(READY_POLL_S):  # polling interval; a Ctrl-C cuts it short
                return last or {}
        reasons = last.get("reasons") if last else "no answer on /health"
        raise WorkerError(f"worker not ready within {timeout_s}s: {reasons} (log: {self.log_path})")

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM (Faust commits offsets and flushes), SIGKILL after ``timeout_s``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

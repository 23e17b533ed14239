"""The HTTP endpoint's connection handling: loopback by default, bounded, quiet on hang-ups."""

from __future__ import annotations

import http.client
import logging
import socket
import struct
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from assetwatch.agents.endpoint import MonitoringServer
from assetwatch.settings import Settings


class _Health:
    def check(self) -> tuple[bool, dict[str, Any]]:
        return True, {"status": "ready"}

    def uptime_s(self) -> float:
        return 1.0

    def failure(self) -> str | None:
        return None


def _until(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling interval, not synchronisation


@pytest.fixture
def release() -> threading.Event:
    return threading.Event()


@pytest.fixture
def server(release: threading.Event) -> Iterator[MonitoringServer]:
    def big() -> tuple[int, dict[str, Any]]:
        release.wait(10)
        return 200, {"x": "a" * 8_000_000}  # more than any socket buffer takes

    served = MonitoringServer(0, CollectorRegistry(), _Health(), routes={"/big": big},
                              threads=2, timeout_s=0.5)
    served.start()
    yield served
    served.close()


def _get(port: int, path: str = "/live") -> int:
    """The status of a GET; 0 when the server closed the connection unanswered (full)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except (ConnectionError, http.client.RemoteDisconnected):
        return 0


def test_the_default_host_is_loopback(server: MonitoringServer) -> None:
    assert Settings(_env_file=None).http_host == "127.0.0.1"  # type: ignore[call-arg]
    assert server._server.server_address[0] == "127.0.0.1"


def test_a_client_that_hangs_up_early_logs_no_error(
    server: MonitoringServer, release: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="assetwatch.agents.endpoint")
    client = socket.create_connection(("127.0.0.1", server.port))
    client.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # a reset, before the answer is written
    release.set()
    _until(lambda: any("hung up" in r.getMessage() for r in caplog.records), "the hang-up")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert _get(server.port) == 200


def test_idle_connections_hold_a_bounded_number_of_threads_and_time_out(
    server: MonitoringServer,
) -> None:
    def http_threads() -> int:
        return sum(t.name.startswith("http") for t in threading.enumerate())

    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(30)]
    try:
        _until(lambda: http_threads() == 2, "the pool to take idle connections")
        assert http_threads() == 2  # 30 idle clients, two threads
        _until(lambda: _get(server.port) == 200, "idle connections to time out")
    finally:
        for sock in idle:
            sock.close()

"""The HTTP endpoint: /metrics (Prometheus), /health (readiness), /live (liveness), extras.

Standard-library HTTP server on a small thread pool, so a scrape never runs on the event
loop; a worker's /health asks the loop for the stream status with a short timeout. Services
add JSON paths of their own as ``routes`` (the feedback service's /performance).

Connections are bounded: ``threads`` requests are served at once, as many more wait, and the
rest are closed at once; a connection idle for ``timeout_s`` is closed, so idle clients hold
neither a thread nor a socket for long. A client that hangs up early is not an error.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from assetwatch.errors import ConfigError
from assetwatch.text import loggable

log = logging.getLogger(__name__)

JSON = "application/json"

Route = Callable[[], tuple[int, dict[str, Any]]]
"""A JSON path: returns (HTTP status, body)."""

PathRoute = Callable[[str], tuple[int, dict[str, Any]]]
"""A JSON path prefix (``/assets/``): called with the whole request path, query included."""


class HealthSource(Protocol):
    """Answers /health and /live; the worker and the feedback service each have one."""

    def check(self) -> tuple[bool, dict[str, Any]]:
        """(ready, document) for /health."""
        ...

    def uptime_s(self) -> float:
        """Seconds since start, reported by /live."""

    def failure(self) -> str | None:
        """Why the process is going down (then /live answers 503), or None."""
        ...


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry
    health: HealthSource
    routes: Mapping[str, Route]
    path_routes: Mapping[str, PathRoute]

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.registry))
            elif path == "/health":
                ready, document = self.health.check()
                self._json(200 if ready else 503, document)
            elif path == "/live":
                self._live()
            elif path in self.routes:
                self._json(*self.routes[path]())
            elif prefix := next((p for p in self.path_routes if path.startswith(p)), None):
                self._json(*self.path_routes[prefix](self.path))
            else:
                self._json(404, {"error": f"no such path: {path[:200]}",
                                 "paths": ["/metrics", "/health", "/live", *self.routes,
                                           *(f"{p}{{id}}" for p in self.path_routes)]})
        except HUNG_UP:
            log.debug("GET %s: the client hung up", loggable(path))
        except Exception as exc:  # a broken probe answers 500, it must not kill the server
            log.exception("GET %s failed", loggable(path))
            self._json(500, {"error": repr(exc)})

    def _live(self) -> None:
        failure, uptime = self.health.failure(), round(self.health.uptime_s(), 1)
        if failure is None:
            self._json(200, {"status": "alive", "uptime_s": uptime})
        else:
            self._json(503, {"status": "failed", "reason": failure, "uptime_s": uptime})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, JSON, json.dumps(body, allow_nan=False).encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), loggable(format % args))


HUNG_UP = (ConnectionError, TimeoutError)
"""What writing to (or reading from) a client that went away or went quiet raises."""


class BoundedHTTPServer(HTTPServer):
    """An HTTP server on ``threads`` pool threads.

    Beyond ``2 * threads`` connections in hand, new ones are closed unanswered rather than
    queued without bound.
    """

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 threads: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="http")
        self._slots = threading.BoundedSemaphore(2 * threads)
        super().__init__(address, handler)  # binds: closes the pool again if that fails

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the connection to the pool, or close it when ``2 * threads`` are in hand."""
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # full: refuse, do not queue
            return
        self._pool.submit(self._serve, request, client_address)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up or timed out is routine; anything else is logged, once."""
        error = sys.exc_info()[1]
        if isinstance(error, HUNG_UP):
            log.debug("connection from %s ended early: %r", client_address, error)
        else:
            log.warning("HTTP connection from %s failed: %r", client_address, error)

    def server_close(self) -> None:
        """Close the socket and cancel connections still waiting for a thread."""
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


class MonitoringServer:
    """Serves the endpoint on ``port`` (0 picks a free one) from :meth:`start` to :meth:`close`.

    It listens on loopback by default (settings ``http_host``); the container images listen on
    every interface, since Prometheus scrapes them from another host.
    """

    def __init__(self, port: int, registry: CollectorRegistry, health: HealthSource,
                 host: str = "127.0.0.1", routes: Mapping[str, Route] | None = None,
                 threads: int = 8, timeout_s: float = 10.0,
                 path_routes: Mapping[str, PathRoute] | None = None) -> None:
        self._routes = dict(routes or {})
        handler = type("Handler", (_Handler,), {"registry": registry, "health": health,
                                                "routes": self._routes, "timeout": timeout_s,
                                                "path_routes": dict(path_routes or {})})
        try:
            self._server = BoundedHTTPServer((host, port), handler, threads)
        except (OSError, socket.gaierror) as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="metrics-endpoint", daemon=True)

    @property
    def port(self) -> int:
        """The bound port (the one picked when 0 was asked for)."""
        return int(self._server.server_address[1])

    def start(self) -> int:
        """Start serving; returns the port."""
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics, health on /health and /live%s",
                 self._server.server_address[0], self.port,
                 "".join(f", {path}" for path in self._routes))
        return self.port

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

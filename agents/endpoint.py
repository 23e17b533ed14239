"""The HTTP endpoint: /metrics (Prometheus), /health (readiness), /live (liveness), extras.

Standard-library HTTP server on daemon threads, so a scrape never runs on the event loop;
a worker's /health asks the loop for the stream status with a short timeout. Services add
JSON paths of their own as ``routes`` (the feedback service's /performance).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from assetwatch.errors import ConfigError

log = logging.getLogger(__name__)

JSON = "application/json"

Route = Callable[[], tuple[int, dict[str, Any]]]
"""A JSON path: returns (HTTP status, body)."""


class HealthSource(Protocol):
    def check(self) -> tuple[bool, dict[str, Any]]:
        """(ready, document) for /health."""
        ...

    def uptime_s(self) -> float: ...


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry
    health: HealthSource
    routes: Mapping[str, Route]

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.registry))
            elif path == "/health":
                ready, document = self.health.check()
                self._json(200 if ready else 503, document)
            elif path == "/live":
                self._json(200, {"status": "alive", "uptime_s": round(self.health.uptime_s(), 1)})
            elif path in self.routes:
                self._json(*self.routes[path]())
            else:
                self._json(404, {"error": f"no such path: {path}",
                                 "paths": ["/metrics", "/health", "/live", *self.routes]})
        except Exception as exc:  # a broken probe answers 500, it must not kill the server
            log.exception("GET %s failed", path)
            self._json(500, {"error": repr(exc)})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, JSON, json.dumps(body, allow_nan=False).encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class MonitoringServer:
    """Serves the endpoint on ``port`` (0 picks a free one) from :meth:`start` to :meth:`close`.

    It listens on every interface by default: Prometheus scrapes from another host.
    """

    def __init__(self, port: int, registry: CollectorRegistry, health: HealthSource,
                 host: str = "0.0.0.0", routes: Mapping[str, Route] | None = None) -> None:
        self._routes = dict(routes or {})
        handler = type("Handler", (_Handler,), {"registry": registry, "health": health,
                                                "routes": self._routes})
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="metrics-endpoint", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> int:
        """Start serving; returns the port."""
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics, health on /health and /live%s",
                 self._server.server_address[0], self.port,
                 "".join(f", {path}" for path in self._routes))
        return self.port

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

"""The demo's web dashboard: one static page polling two JSON paths, served on loopback.

Nothing is fetched from the internet: the page, its script and the vendored chart library
(uPlot, see ``dashboard_static/vendor/README.md``) ship in the package. The JSON comes from
callables, so this module knows HTTP and files, not the demo.

- ``/api/status``: the demo's status document (:func:`agents.local.demo_view.status`);
- ``/api/asset?id=ASSET``: one asset's scores and sensor readings over time.
"""

from __future__ import annotations

import errno
import json
import logging
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import Any

from assetwatch.agents.endpoint import HUNG_UP, BoundedHTTPServer
from assetwatch.text import loggable

log = logging.getLogger(__name__)

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "/vendor/uPlot.iife.min.js": ("vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "/vendor/uPlot.min.css": ("vendor/uPlot.min.css", "text/css; charset=utf-8"),
}

StatusSource = Callable[[], dict[str, Any]]
AssetSource = Callable[[str], dict[str, Any] | None]


def static_file(name: str) -> bytes:
    """One of the dashboard's packaged files (page, script, vendored uPlot)."""
    return (resources.files("assetwatch.agents.local") / "dashboard_static" / name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    status_source: StatusSource
    asset_source: AssetSource

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        try:
            if url.path in STATIC:
                name, content_type = STATIC[url.path]
                self._send(200, content_type, static_file(name))
            elif url.path == "/api/status":
                self._json(200, self.status_source())
            elif url.path == "/api/asset":
                asset = urllib.parse.parse_qs(url.query).get("id", [""])[0]
                found = self.asset_source(asset)
                self._json(404, {"error": "no such asset"}) if found is None \
                    else self._json(200, found)
            else:
                self._json(404, {"error": "no such path", "paths": [*STATIC, "/api/status"]})
        except HUNG_UP:
            log.debug("GET %s: the client hung up", loggable(url.path))

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, "application/json", json.dumps(body, allow_nan=False).encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), loggable(format % args))


class Dashboard:
    """Serves the page on ``127.0.0.1:port``; a busy preferred port falls back to a free one."""

    def __init__(self, port: int, status_source: StatusSource, asset_source: AssetSource,
                 host: str = "127.0.0.1") -> None:
        handler = type("DashboardHandler", (_Handler,), {
            "status_source": staticmethod(status_source),
            "asset_source": staticmethod(asset_source), "timeout": 10.0})
        try:
            self._server = BoundedHTTPServer((host, port), handler, threads=4)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or port == 0:
                raise
            log.info("port %d is taken: serving the dashboard on a free port", port)
            self._server = BoundedHTTPServer((host, 0), handler, threads=4)
        self._thread = threading.Thread(target=self._server.serve_forever, name="dashboard",
                                        daemon=True)

    @property
    def url(self) -> str:
        """Where the dashboard answers."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> str:
        """Serve on a daemon thread; returns the URL."""
        self._thread.start()
        return self.url

    def close(self) -> None:
        """Stop serving, if it started."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

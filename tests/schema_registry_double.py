"""TEST DOUBLE of a Confluent Schema Registry over HTTP: for tests and the benchmark only.

No real Schema Registry server can be installed on the development and CI machines (none
on PyPI, npm or Debian; ``docker-compose.yml`` runs the real ``confluentinc/cp-schema-registry``
where Docker exists). This stand-in lets confluent-kafka's real ``SchemaRegistryClient`` and
``AvroDeserializer`` talk HTTP to something, so the worker's Confluent framing is exercised
end to end. It implements only what those clients call for registering, looking up and
fetching Avro schemas, per-subject compatibility config and (always empty) subject
associations, which the 2.16 deserializer asks for, with the registry's paths,
content type (``application/vnd.schemaregistry.v1+json``) and error bodies
(``{"error_code": 40401, "message": ...}``). Identical schema text gets one id across all
subjects, as in the real registry. What it does NOT do: compatibility checks (every
registration is accepted, whatever the subject's level), schema normalisation or parsing,
references, deletes, modes, contexts, auth. Never point a deployment at it.

    python -m tests.schema_registry_double [--port N]   # prints its URL, serves until killed
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ACCEPTED_BODY_TYPES = (CONTENT_TYPE, "application/vnd.schemaregistry+json", "application/json")
DEFAULT_COMPATIBILITY = "BACKWARD"
"""The real registry's global default."""


class RegistryError(Exception):
    """An error answer: HTTP status, Schema Registry error code, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _subject_missing(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


@dataclass
class RegistryState:
    """Schemas by id, each subject's versions (schema ids in order), per-subject config."""

    schemas: list[tuple[str, str]] = field(default_factory=list)
    """(schemaType, schema text); id = index + 1."""
    subjects: dict[str, list[int]] = field(default_factory=dict)
    config: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def schema_id(self, kind: str, text: str) -> int:
        """The id of this exact schema text, assigned on first sight."""
        if (kind, text) not in self.schemas:
            self.schemas.append((kind, text))
        return self.schemas.index((kind, text)) + 1

    def version_record(self, subject: str, version: int) -> dict[str, Any]:
        """The registry's answer for one subject version."""
        schema_id = self.subjects[subject][version - 1]
        kind, text = self.schemas[schema_id - 1]
        record: dict[str, Any] = {"subject": subject, "version": version, "id": schema_id,
                                  "schema": text}
        if kind != "AVRO":
            record["schemaType"] = kind
        return record


Route = Callable[[RegistryState, re.Match[str], dict[str, Any]], Any]


def _register(state: RegistryState, match: re.Match[str], body: dict[str, Any]) -> Any:
    subject = match["subject"]
    if body.get("references"):
        raise RegistryError(422, 42201, "references are not supported by this test double")
    schema_id = state.schema_id(body.get("schemaType", "AVRO"), body["schema"])
    versions = state.subjects.setdefault(subject, [])
    if schema_id not in versions:
        versions.append(schema_id)
    return {"id": schema_id}


def _lookup(state: RegistryState, match: re.Match[str], body: dict[str, Any]) -> Any:
    subject = match["subject"]
    if subject not in state.subjects:
        raise _subject_missing(subject)
    kind = body.get("schemaType", "AVRO")
    for version, schema_id in enumerate(state.subjects[subject], start=1):
        if state.schemas[schema_id - 1] == (kind, body["schema"]):
            return state.version_record(subject, version)
    raise RegistryError(404, 40403, "Schema not found")


def _by_id(state: RegistryState, match: re.Match[str], body: dict[str, Any]) -> Any:
    schema_id = int(match["id"])
    if not 0 < schema_id <= len(state.schemas):
        raise RegistryError(404, 40403, f"Schema {schema_id} not found")
    kind, text = state.schemas[schema_id - 1]
    return {"schema": text} if kind == "AVRO" else {"schema": text, "schemaType": kind}


def _version(state: RegistryState, match: re.Match[str], body: dict[str, Any]) -> Any:
    subject, wanted = match["subject"], match["version"]
    if subject not in state.subjects:
        raise _subject_missing(subject)
    versions = state.subjects[subject]
    number = len(versions) if wanted in ("latest", "-1") else int(wanted)
    if not 0 < number <= len(versions):
        raise RegistryError(404, 40402, f"Version {wanted} not found.")
    return state.version_record(subject, number)


def _versions(state: RegistryState, match: re.Match[str], body: dict[str, Any]) -> Any:
    if match["subject"] not in state.subjects:
        raise _subject_missing(match["subject"])
    return list(range(1, len(state.subjects[match["subject"]]) + 1))


def _subjects(state: RegistryState, match: re.Match[str], body: dict[str, Any]) -> Any:
    return sorted(state.subjects)


def _put_config(state: RegistryState, match: re.Match[str], body: dict[str, Any]) -> Any:
    level = body.get("compatibility") or body.get("compatibilityLevel")
    if level is None:
        raise RegistryError(422, 42203, "compatibility level missing")
    state.config[match["subject"] or ""] = {**body, "compatibility": str(level).upper()}
    return state.config[match["subject"] or ""]


def _get_config(state: RegistryState, match: re.Match[str], body: dict[str, Any]) -> Any:
    subject = match["subject"] or ""
    if subject in state.config:
        return {"compatibilityLevel": state.config[subject]["compatibility"]}
    if subject:
        raise RegistryError(404, 40408, f"Subject '{subject}' does not have subject-level "
                                        "compatibility configured")
    return {"compatibilityLevel": DEFAULT_COMPATIBILITY}


def _associations(state: RegistryState, match: re.Match[str], body: dict[str, Any]) -> Any:
    return []  # none: AvroDeserializer (2.16+) then falls back to TopicNameStrategy


ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    ("POST", re.compile(r"/subjects/(?P<subject>[^/]+)/versions"), _register),
    ("POST", re.compile(r"/subjects/(?P<subject>[^/]+)"), _lookup),
    ("GET", re.compile(r"/schemas/ids/(?P<id>\d+)"), _by_id),
    ("GET", re.compile(r"/subjects/(?P<subject>[^/]+)/versions/(?P<version>latest|-?\d+)"),
     _version),
    ("GET", re.compile(r"/subjects/(?P<subject>[^/]+)/versions"), _versions),
    ("GET", re.compile(r"/subjects"), _subjects),
    ("PUT", re.compile(r"/config(?:/(?P<subject>[^/]+))?"), _put_config),
    ("GET", re.compile(r"/config(?:/(?P<subject>[^/]+))?"), _get_config),
    ("GET", re.compile(r"/associations/resources/[^/]+/[^/]+"), _associations),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect of a registry
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the double records requests in ``SchemaRegistryDouble.requests`` instead."""

    def _answer(self, status: int, document: Any) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if kind not in ACCEPTED_BODY_TYPES:
            raise RegistryError(415, 415, f"unsupported content type {kind!r}")
        document = json.loads(self.rfile.read(length))
        if not isinstance(document, dict):
            raise RegistryError(422, 42201, "the body is not a JSON object")
        return document

    def _dispatch(self) -> None:
        path = unquote(urlsplit(self.path).path).rstrip("/")
        self.server.double.requests.append((self.command, path))
        for method, pattern, route in ROUTES:
            match = pattern.fullmatch(path)
            if method == self.command and match:
                try:
                    body = self._body()
                    with self.server.double.state.lock:
                        result = route(self.server.double.state, match, body)
                except RegistryError as error:
                    self._answer(error.status, {"error_code": error.code,
                                                "message": error.message})
                    return
                self._answer(HTTPStatus.OK, result)
                return
        self.server.double.unhandled.append((self.command, path))
        self._answer(404, {"error_code": 404, "message": f"HTTP 404 Not Found: {path}"})

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch  # noqa: N815 (http.server's names)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    double: SchemaRegistryDouble


class SchemaRegistryDouble:
    """The stand-in on 127.0.0.1 (port 0: a free one); ``url`` once started."""

    def __init__(self, port: int = 0) -> None:
        self.state = RegistryState()
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request, in arrival order."""
        self.unhandled: list[tuple[str, str]] = []
        """Requests no route answered (404): a client calling what the double lacks."""
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.double = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="schema-registry-double")

    @property
    def url(self) -> str:
        """Base URL for ``SchemaRegistryClient`` and ``ASSETWATCH_SCHEMA_REGISTRY_URL``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SchemaRegistryDouble:
        """Serve on a background thread (the socket already listens)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> SchemaRegistryDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """Serve until SIGTERM or SIGINT; the first stdout line is the URL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    with SchemaRegistryDouble(args.port) as double:
        print(double.url, flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()

"""The Faust app and every confluent-kafka client join a secure cluster with the same settings."""

from __future__ import annotations

import ast
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any, cast

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from prometheus_client import CollectorRegistry

from assetwatch.agents.kafka.security import faust_credentials
from assetwatch.agents.worker.app import create_app
from assetwatch.agents.worker.metrics import Metrics
from assetwatch.agents.worker.scoring import Scorer
from assetwatch.errors import ConfigError
from assetwatch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-Pa55"


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _sasl(protocol: str, mechanism: str, **values: Any) -> Settings:
    return _settings(kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism,
                     kafka_sasl_username="svc-assetwatch", kafka_sasl_password=PASSWORD, **values)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _issue(folder: Path, name: str, common_name: str) -> None:
    """A P-256 key and a certificate for ``common_name`` signed by the test CA."""
    ext = folder / f"{name}.ext"
    ext.write_text(f"subjectAltName=DNS:{common_name}\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(folder / f"{name}.key"), "-out", str(folder / f"{name}.csr"),
             "-subj", f"/CN={common_name}")
    _openssl("x509", "-req", "-in", str(folder / f"{name}.csr"), "-CA", str(folder / "ca.pem"),
             "-CAkey", str(folder / "ca.key"), "-CAcreateserial", "-days", "1",
             "-extfile", str(ext), "-out", str(folder / f"{name}.pem"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away CA with a server certificate (localhost) and a client certificate."""
    folder = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.pem"),
             "-days", "1", "-subj", "/CN=assetwatch-test-ca")
    _issue(folder, "server", "localhost")
    _issue(folder, "client", "assetwatch-client")
    return folder


def _app_auth(settings: Settings) -> dict[str, Any]:
    """What the worker's Faust app hands aiokafka for authentication."""
    app = create_app(settings, cast(Scorer, object()), Metrics(CollectorRegistry()))
    return dict(credentials_to_aiokafka_auth(app.conf.broker_credentials, app.conf.ssl_context))


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_the_faust_app_gets_the_sasl_settings_of_the_confluent_clients(
        protocol: str, mechanism: str) -> None:
    settings = _sasl(protocol, mechanism)
    client, auth = settings.kafka_client_config(), _app_auth(settings)
    assert auth["security_protocol"] == client["security.protocol"] == protocol
    assert auth["sasl_mechanism"] == client["sasl.mechanism"] == mechanism
    assert auth["sasl_plain_username"] == client["sasl.username"] == "svc-assetwatch"
    assert auth["sasl_plain_password"] == client["sasl.password"] == PASSWORD
    assert (auth["ssl_context"] is not None) == (protocol == "SASL_SSL")


def test_plaintext_gives_the_faust_app_no_credentials() -> None:
    assert _app_auth(_settings()) == {"security_protocol": "PLAINTEXT"}


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> dict[str, Any]:
    """TLS over a socket pair; returns the client certificate the server saw."""
    left, right = socket.socketpair()
    seen: dict[str, Any] = {}

    def serve() -> None:
        try:
            with server.wrap_socket(left, server_side=True) as tls:
                seen.update(tls.getpeercert() or {})
        except ssl.SSLError as exc:  # the client refused us: the test checks the client side
            seen["refused"] = exc

    thread = threading.Thread(target=serve)
    thread.start()
    with client.wrap_socket(right, server_hostname="localhost"):
        thread.join(10)
    return seen


def test_the_faust_tls_context_trusts_the_ca_and_presents_the_client_certificate(
        pki: Path) -> None:
    settings = _settings(
        kafka_security_protocol="SSL", kafka_ssl_ca_location=pki / "ca.pem",
        kafka_ssl_certificate_location=pki / "client.pem",
        kafka_ssl_key_location=pki / "client.key")
    client = settings.kafka_client_config()
    assert client["ssl.ca.location"] == str(pki / "ca.pem")
    assert client["ssl.certificate.location"] == str(pki / "client.pem")
    auth = _app_auth(settings)
    assert auth["security_protocol"] == "SSL"
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.pem"))
    server.load_cert_chain(pki / "server.pem", pki / "server.key")
    server.verify_mode = ssl.CERT_REQUIRED
    peer = _handshake(server, auth["ssl_context"])
    assert tuple(peer["subject"]) == ((("commonName", "assetwatch-client"),),)


def test_the_faust_tls_context_refuses_a_server_the_ca_did_not_sign(pki: Path) -> None:
    auth = _app_auth(_settings(kafka_security_protocol="SSL"))  # system CAs only
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki / "server.pem", pki / "server.key")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, auth["ssl_context"])


def test_a_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    settings = _settings(kafka_security_protocol="SSL", kafka_ssl_ca_location=tmp_path / "no")
    with pytest.raises(ConfigError, match="TLS files"):
        faust_credentials(settings.kafka_client_config())


def test_the_hostname_check_can_be_turned_off_for_both_kinds_of_client() -> None:
    settings = _settings(kafka_security_protocol="SSL", kafka_ssl_check_hostname=False)
    assert settings.kafka_client_config()["ssl.endpoint.identification.algorithm"] == "none"
    assert _app_auth(settings)["ssl_context"].check_hostname is False


@pytest.mark.parametrize("values", [
    {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN",
     "kafka_sasl_username": "u"},
    {"kafka_security_protocol": "PLAINTEXT", "kafka_ssl_ca_location": "ca.pem"},
    {"kafka_security_protocol": "SSL", "kafka_ssl_certificate_location": "c.pem"},
    {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "GSSAPI",
     "kafka_sasl_username": "u", "kafka_sasl_password": "p"},
])
def test_incomplete_or_contradictory_security_settings_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"kafka|sasl"):
        _settings(**values)


def test_secrets_stay_out_of_reprs() -> None:
    settings = _sasl("SASL_SSL", "SCRAM-SHA-512", kafka_ssl_key_password="key-Pa55")
    credentials = faust_credentials(settings.kafka_client_config())
    for text in (repr(settings), str(settings), repr(credentials)):
        assert PASSWORD not in text and "key-Pa55" not in text


CLIENTS = {"Producer", "Consumer", "AdminClient"}


def _built_from_shared_config(arg: ast.expr) -> bool:
    """True for ``settings.kafka_client_config()`` or a dict that starts by unpacking it.

    A ``client_config`` parameter that holds it counts too.
    """
    if isinstance(arg, ast.Dict):
        if not arg.keys or arg.keys[0] is not None:
            return False
        arg = arg.values[0]
    if isinstance(arg, ast.Name):
        return arg.id == "client_config"
    return (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute)
            and arg.func.attr == "kafka_client_config")


def test_every_confluent_client_is_built_from_the_shared_client_config() -> None:
    calls = []
    for folder in ("agents", "assetwatch", "scoring", "models", "features", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id in CLIENTS and node.args):
                    calls.append((path.relative_to(ROOT), node.lineno, node.args[0]))
    # the scan sees the clients (it would pass vacuously otherwise): agents/kafka/clients.py
    # builds all of assetwatch's (test_layout.py), plus the fenced Faust module and scripts/
    assert len(calls) >= 6
    wrong = [f"{path}:{line}" for path, line, arg in calls if not _built_from_shared_config(arg)]
    assert not wrong, f"clients not built from Settings.kafka_client_config(): {wrong}"

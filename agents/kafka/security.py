"""The Faust app's broker credentials, from the librdkafka config every client gets.

Derived from ``Settings.kafka_client_config()``, so the two cannot differ.

Faust's aiokafka transport takes ``broker_credentials``: :class:`faust.SASLCredentials`
(PLAIN or SCRAM, over TLS when it carries an ``ssl.SSLContext``) or
:class:`faust.SSLCredentials` (TLS only, optionally with a client certificate). The
credentials' repr shows the user name only, so logging the app's config leaks no password.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import faust
from faust.types.auth import CredentialsT

from assetwatch.errors import ConfigError
from assetwatch.settings import ClientValue


def _text(config: Mapping[str, ClientValue], key: str) -> str | None:
    value = config.get(key)
    return None if value is None else str(value)


def ssl_context(config: Mapping[str, ClientValue]) -> ssl.SSLContext:
    """A client TLS context with the config's CA file, client certificate and hostname check."""
    try:
        context = ssl.create_default_context(cafile=_text(config, "ssl.ca.location"))
        certificate = _text(config, "ssl.certificate.location")
        if certificate is not None:
            context.load_cert_chain(certificate, _text(config, "ssl.key.location"),
                                    _text(config, "ssl.key.password"))
    except (OSError, ssl.SSLError) as exc:  # the file name is in the message, no secret
        raise ConfigError(f"cannot load the Kafka TLS files: {exc}") from exc
    context.check_hostname = config.get("ssl.endpoint.identification.algorithm") != "none"
    return context


def faust_credentials(config: Mapping[str, ClientValue]) -> CredentialsT | None:
    """Faust ``broker_credentials`` equivalent to the librdkafka ``config`` (None: plaintext)."""
    protocol = str(config.get("security.protocol", "PLAINTEXT"))
    context = ssl_context(config) if protocol.endswith("SSL") else None
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=_text(config, "sasl.username"), password=_text(config, "sasl.password"),
            mechanism=_text(config, "sasl.mechanism"), ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None

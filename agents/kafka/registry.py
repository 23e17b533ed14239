"""The Confluent Schema Registry: output subjects, their schema ids, ids back to schemas.

Only this module talks to a registry (confluent-kafka's ``SchemaRegistryClient``, imported
when a registry is configured, so its extra dependencies matter only then). Subjects follow
TopicNameStrategy (``<topic>-value``), one record type per output topic. The topics
assetwatch reads back stay single-object Avro: telemetry (two record types, readings and
BaselineReset orders, written by devices), model updates and labels (read by the workers
and the feedback service, which need no registry for them).
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from importlib import resources
from typing import Any

from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from assetwatch.schemas.codecs import MAGIC, SCHEMA_FILES, SchemaIdResolver, codec
from assetwatch.schemas.wire import TopicWire, confluent_header
from assetwatch.settings import Settings

log = logging.getLogger(__name__)
COMPATIBILITY = "BACKWARD"
"""Consumers on the new schema read records of the old: new fields come with defaults."""


def output_records(settings: Settings) -> dict[str, str]:
    """Record name of every topic assetwatch writes (TopicNameStrategy: one per topic)."""
    return {
        settings.predictions_topic: "Prediction",
        settings.shadow_predictions_topic: "Prediction",
        settings.dead_letter_topic: "DeadLetter",
        settings.drift_topic: "DriftAlert",
        settings.asset_alerts_topic: "AssetAlert",
        settings.operator_alerts_topic: "OperatorAlert",
    }


def registry_client(settings: Settings) -> Any:
    """A ``SchemaRegistryClient`` for the configured URL (``mock://`` gives the in-process one)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    conf: dict[str, str] = {"url": settings.schema_registry_url or ""}
    if settings.schema_registry_username:
        password = settings.schema_registry_password
        secret = password.get_secret_value() if password else ""
        conf["basic.auth.user.info"] = f"{settings.schema_registry_username}:{secret}"
    if settings.schema_registry_ca_file:
        conf["ssl.ca.location"] = str(settings.schema_registry_ca_file)
    return SchemaRegistryClient.new_client(conf)


def schema_text(name: str) -> str:
    """The contract's .avsc as written (docs and logical types kept for other tools)."""
    return (resources.files("assetwatch.schemas") / SCHEMA_FILES[name]).read_text()


def subject_id(client: Any, subject: str, name: str, register: bool) -> int:
    """The schema id of ``name`` under ``subject``: registered (BACKWARD set) or looked up."""
    from confluent_kafka.schema_registry import ConfigCompatibilityLevel, Schema, ServerConfig

    schema = Schema(schema_text(name), "AVRO")
    if not register:
        return int(client.lookup_schema(subject, schema).schema_id)
    schema_id = int(client.register_schema(subject, schema))
    client.set_config(subject, ServerConfig(compatibility=ConfigCompatibilityLevel(COMPATIBILITY)))
    return schema_id


def output_wires(settings: Settings, client: Any = None) -> dict[str, TopicWire]:
    """Each output topic's framing: JSON, single-object, or Confluent with its schema id."""
    records = output_records(settings)
    if settings.output_format == "json":
        return {topic: TopicWire(name, "json") for topic, name in records.items()}
    if not settings.schema_registry_url:
        return {topic: TopicWire(name) for topic, name in records.items()}
    client = client or registry_client(settings)
    wires = {}
    for topic, name in records.items():
        schema_id = subject_id(client, f"{topic}-value", name, settings.schema_registry_register)
        wires[topic] = TopicWire(name, "avro", confluent_header(schema_id))
    log.info("outputs in the Confluent wire format: %s",
             {topic: int.from_bytes(w.prefix[1:], "big") for topic, w in wires.items()
              if w.prefix})
    return wires


def single_object_header(schema_str: str) -> bytes:
    """The single-object header of a schema: its CRC-64-AVRO fingerprint."""
    parsed = parse_schema(json.loads(schema_str))
    return MAGIC + bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


def id_resolver(settings: Settings, client: Any = None) -> SchemaIdResolver | None:
    """Schema id -> single-object header, asking the registry once per id (None: no registry)."""
    if not settings.schema_registry_url:
        return None
    client = client or registry_client(settings)
    known = {header for name in SCHEMA_FILES for header in codec(name).versions}

    @lru_cache(maxsize=256)
    def resolve(schema_id: int) -> bytes | None:
        header = single_object_header(client.get_schema(schema_id).schema_str)
        return header if header in known else None

    return resolve

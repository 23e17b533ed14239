"""The HTTP Schema Registry test double, driven by confluent-kafka's real client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.schema_registry import (
    ConfigCompatibilityLevel,
    Schema,
    SchemaRegistryClient,
    SchemaRegistryError,
    ServerConfig,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from assetwatch.agents.kafka.registry import id_resolver, output_wires, schema_text
from assetwatch.schemas.codecs import decode_any
from assetwatch.scoring.dead_letters import DeadLetterWriter
from assetwatch.settings import Settings
from tests.schema_registry_double import CONTENT_TYPE, SchemaRegistryDouble


@pytest.fixture
def double() -> Iterator[SchemaRegistryDouble]:
    with SchemaRegistryDouble() as running:
        yield running


def test_same_text_one_id_across_subjects_versions_lookup_and_errors(
    double: SchemaRegistryDouble,
) -> None:
    client = SchemaRegistryClient({"url": double.url})
    letter, alert = Schema(schema_text("DeadLetter"), "AVRO"), Schema(schema_text("DriftAlert"),
                                                                     "AVRO")
    first = client.register_schema("a-value", letter)
    assert client.register_schema("b-value", letter) == first
    second = client.register_schema("a-value", alert)
    assert second != first
    fresh = SchemaRegistryClient({"url": double.url})  # no client-side cache
    assert fresh.register_schema("a-value", letter) == first  # re-registering is idempotent
    assert fresh.get_subjects() == ["a-value", "b-value"]
    assert fresh.get_versions("a-value") == [1, 2]
    latest = fresh.get_latest_version("a-value")
    assert (latest.schema_id, latest.version, latest.schema.schema_str) == (
        second, 2, schema_text("DriftAlert"))
    found = fresh.lookup_schema("a-value", letter)
    assert (found.schema_id, found.version) == (first, 1)
    assert fresh.get_schema(second).schema_str == schema_text("DriftAlert")

    with pytest.raises(SchemaRegistryError) as missing:
        fresh.lookup_schema("nope-value", letter)
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40401)
    with pytest.raises(SchemaRegistryError) as unknown:
        fresh.get_schema(999)
    assert unknown.value.error_code == 40403
    with pytest.raises(SchemaRegistryError) as unregistered:
        fresh.lookup_schema("b-value", alert)
    assert unregistered.value.error_code == 40403
    assert double.unhandled == []


def test_compatibility_config_is_kept_per_subject(double: SchemaRegistryDouble) -> None:
    client = SchemaRegistryClient({"url": double.url})
    with pytest.raises(SchemaRegistryError) as unset:
        client.get_config("a-value")
    assert unset.value.error_code == 40408
    client.set_config("a-value", ServerConfig(compatibility=ConfigCompatibilityLevel("FULL")))
    # GET answers compatibilityLevel, as the real registry does
    assert client.get_config("a-value").compatibility_level == ConfigCompatibilityLevel.FULL
    assert client.get_config().compatibility_level == ConfigCompatibilityLevel.BACKWARD


def test_answers_in_the_registry_content_type_and_refuses_other_bodies(
    double: SchemaRegistryDouble,
) -> None:
    with urllib.request.urlopen(f"{double.url}/subjects", timeout=5) as response:
        assert response.headers["Content-Type"] == CONTENT_TYPE
        assert json.load(response) == []
    request = urllib.request.Request(
        f"{double.url}/subjects/x-value/versions", method="POST",
        data=json.dumps({"schema": '"string"'}).encode(), headers={"Content-Type": "text/plain"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 415
    with pytest.raises(urllib.error.HTTPError) as absent:
        urllib.request.urlopen(f"{double.url}/modes/x", timeout=5)
    assert absent.value.code == 404
    assert double.unhandled == [("GET", "/modes/x")]


def test_worker_framing_through_the_double_decodes_with_avro_deserializer(
    double: SchemaRegistryDouble, make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(schema_registry_url=double.url)
    wires = output_wires(settings)
    value = DeadLetterWriter(1_000_000, lambda: 1.5).build(
        (b"cnc-1", b"\xffraw", "t.telemetry", 4, 77), "late", "too late")[1]
    framed = wires[settings.dead_letter_topic].frame(value)

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": double.url}))
    record = deserializer(framed, SerializationContext(settings.dead_letter_topic,
                                                       MessageField.VALUE))
    assert record["reason"] == "late" and record["original_value"] == b"\xffraw"
    assert decode_any(framed, id_resolver(settings))[1]["source_offset"] == 77
    assert ("PUT", f"/config/{settings.dead_letter_topic}-value") in double.requests
    assert double.state.config[f"{settings.dead_letter_topic}-value"]["compatibility"] == \
        "BACKWARD"
    assert double.unhandled == []

"""Every confluent-kafka client assetwatch builds outside Faust, from the one settings object.

What each role needs is said once here: the cluster and its security settings
(:meth:`Settings.kafka_client_config`), the murmur2 partitioner for every producer (the
Java/Faust default, so a keyed record lands on the partition number its asset's telemetry
and state use: silence alerts beside the failure-risk alerts of the same asset), manual
commits for readers, and no log line for idle disconnects, which are normal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from assetwatch.errors import BrokerError
from assetwatch.settings import ClientValue, Settings

METADATA_TIMEOUT_S = 10.0
QUEUE_FULL_POLL_S = 0.05
"""How long a producer whose local queue is full serves delivery reports before trying again."""

PRODUCER_DEFAULTS: Mapping[str, ClientValue] = {
    "partitioner": "murmur2_random",
    "log.connection.close": False,
}
CONSUMER_DEFAULTS: Mapping[str, ClientValue] = {
    "enable.auto.commit": False,
    "log.connection.close": False,
}


def producer(settings: Settings, config: Mapping[str, ClientValue] | None = None) -> Producer:
    """A producer on ``settings``' cluster; ``config`` adds or overrides librdkafka settings."""
    return Producer({**settings.kafka_client_config(), **PRODUCER_DEFAULTS, **(config or {})})


def consumer(settings: Settings, group_id: str,
             config: Mapping[str, ClientValue] | None = None) -> Consumer:
    """A consumer on ``settings``' cluster in group ``group_id``, committing only when told."""
    return Consumer({**settings.kafka_client_config(), **CONSUMER_DEFAULTS,
                     "group.id": group_id, **(config or {})})


def produce(client: Any, topic: str, value: bytes | None, key: bytes | None,
            **options: Any) -> None:
    """Queue one record on ``client`` (a Producer), waiting while its local queue is full.

    ``options`` go to ``produce`` (``on_delivery``, ``headers``); any error but a full queue
    is the caller's.
    """
    while True:
        try:
            client.produce(topic, value, key, **options)
            return
        except BufferError:
            client.poll(QUEUE_FULL_POLL_S)  # let deliveries drain


def admin(settings: Settings) -> AdminClient:
    """An admin client on ``settings``' cluster (topic creation and metadata)."""
    return AdminClient(settings.kafka_client_config())


def partitions_of(client: Consumer, topic: str) -> list[int]:
    """The partition ids of ``topic``, sorted; :class:`BrokerError` when it does not exist.

    Lists every topic: asking for one by name would make tansu (and brokers with
    ``auto.create.topics.enable``) create it.
    """
    try:
        listed = client.list_topics(timeout=METADATA_TIMEOUT_S).topics
    except KafkaException as exc:
        raise BrokerError(f"cannot read the topics' metadata: {exc}") from exc
    metadata = listed.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise BrokerError(f"topic {topic} is missing; run ensure_topics first")
    return sorted(metadata.partitions)

"""Topic names and their explicit creation (tansu would auto-create unknown topics with 4)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from assetwatch.agents.kafka import clients
from assetwatch.errors import BrokerError
from assetwatch.settings import Settings

log = logging.getLogger(__name__)

STATE_TABLE = "feature-state"
ADMIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TopicSpec:
    """A topic as assetwatch creates it."""

    name: str
    partitions: int
    compacted: bool = False
    """Keep the newest record per key forever (state changelogs), not by time."""


def state_changelog_topic(settings: Settings) -> str:
    """Faust's changelog of the per-asset state table (``<app id>-<table>-changelog``)."""
    return f"{settings.app_id}-{STATE_TABLE}-changelog"


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic a worker reads or writes, with its partition count."""
    keyed = settings.partitions
    return [
        TopicSpec(settings.telemetry_topic, keyed),
        TopicSpec(settings.predictions_topic, keyed),
        TopicSpec(settings.dead_letter_topic, keyed),
        TopicSpec(settings.labels_topic, keyed),
        TopicSpec(settings.asset_alerts_topic, keyed),
        TopicSpec(settings.shadow_predictions_topic, keyed),
        TopicSpec(state_changelog_topic(settings), keyed, compacted=True),
        TopicSpec(settings.drift_topic, 1),
        TopicSpec(settings.model_updates_topic, 1),
        TopicSpec(settings.operator_alerts_topic, 1),
        TopicSpec(f"{settings.app_id}-__assignor-__leader", 1),
    ]


def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics; fail if an existing one has the wrong partition count."""
    admin = clients.admin(settings)
    try:
        existing = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
    except KafkaException as exc:
        raise BrokerError(f"cannot reach {settings.kafka_bootstrap_servers}: {exc}") from exc
    wrong = [
        f"{s.name} has {len(existing[s.name].partitions)} partitions, expected {s.partitions}"
        for s in topic_specs(settings)
        if s.name in existing and len(existing[s.name].partitions) != s.partitions
    ]
    if wrong:
        raise BrokerError("topics exist with other partition counts: " + "; ".join(wrong))
    missing = [s for s in topic_specs(settings) if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(s.name, s.partitions, settings.replication_factor,
                     config={"cleanup.policy": "compact"} if s.compacted else {})
            for s in missing
        ],
        operation_timeout=ADMIN_TIMEOUT_S,
    )
    for name, future in futures.items():
        try:
            future.result(timeout=ADMIN_TIMEOUT_S)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"cannot create topic {name}: {exc}") from exc
    log.info("created topics %s", [s.name for s in missing])
    return [s.name for s in missing]

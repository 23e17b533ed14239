"""Publishing maintenance labels (``assetwatch label``): one ``MaintenanceLabel`` per outcome."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, Message

from assetwatch.agents.kafka import clients
from assetwatch.errors import BrokerError, ConfigError
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings

FLUSH_TIMEOUT_S = 30.0


def parse_event_time(text: str | None, now: Callable[[], float] = time.time) -> int:
    """Epoch milliseconds from digits or ISO 8601 (naive means UTC); None means now.

    >>> parse_event_time("1700000000123"), parse_event_time("2023-11-14T22:13:20Z")
    (1700000000123, 1700000000000)
    >>> parse_event_time("2023-11-14T23:13:20+01:00")
    1700000000000
    """
    if text is None:
        return int(now() * 1000)
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"{text!r} is neither epoch milliseconds nor an ISO 8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return round(moment.timestamp() * 1000)


def label_record(asset_id: str, failure: bool, event_ms: int, note: str | None = None,
                 label_id: str | None = None) -> dict[str, Any]:
    """A MaintenanceLabel; its id defaults to ``<asset>-<event ms>`` (a re-send is ignored)."""
    return {"label_id": label_id or f"{asset_id}-{event_ms}", "asset_id": asset_id,
            "event_timestamp": event_ms, "failure": failure, "note": note}


def publish_label(settings: Settings, record: dict[str, Any]) -> tuple[int, int]:
    """Publish one label keyed by asset id and wait for it; returns (partition, offset)."""
    producer = clients.producer(settings, {"acks": "all"})
    delivered: list[Message] = []
    errors: list[KafkaError] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is None:
            delivered.append(message)
        else:
            errors.append(error)

    producer.produce(settings.labels_topic, codec("MaintenanceLabel").encode(record),
                     record["asset_id"].encode(), on_delivery=on_delivery)
    producer.flush(FLUSH_TIMEOUT_S)
    if errors or not delivered:
        raise BrokerError(f"the label was not acknowledged: {errors or 'timed out'}")
    partition, offset = delivered[0].partition(), delivered[0].offset()
    assert partition is not None and offset is not None
    return partition, offset

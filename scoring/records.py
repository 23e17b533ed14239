"""The records of a batch: the messages it takes in, the records it publishes, by kind."""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from assetwatch.schemas.wire import Header
from assetwatch.settings import Settings


class Inbound(NamedTuple):
    """One consumed message, as the broker gave it (a tuple: cheap to pickle in bulk)."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int


class Outbound(NamedTuple):
    """One record to publish."""

    key: bytes | None
    value: bytes
    source: Inbound | None = None
    """The input a prediction is for: its dead letter if the broker refuses the prediction."""
    headers: list[Header] | None = None
    """Record headers beyond the topic's content type (model, dead-letter reason)."""


class Output(Enum):
    """A kind of record a batch publishes; the value names the setting of its topic.

    A batch's outcome carries its records keyed by kind, and the publisher sends each kind to
    its topic, so a new kind of output is a new member here (and its topic setting).
    Members are in publishing order.
    """

    PREDICTION = "predictions_topic"
    DEAD_LETTER = "dead_letter_topic"
    DRIFT_ALERT = "drift_topic"
    ASSET_ALERT = "asset_alerts_topic"
    SHADOW_PREDICTION = "shadow_predictions_topic"

    def topic(self, settings: Settings) -> str:
        """The topic records of this kind are published to."""
        return str(getattr(settings, self.value))


Records = dict[Output, list[Outbound]]
"""A batch's records to publish, by kind."""

"""The records of a batch: the messages it takes in and the records it publishes."""

from __future__ import annotations

from typing import NamedTuple

from assetwatch.schemas.wire import Header


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

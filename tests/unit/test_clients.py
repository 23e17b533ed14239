"""agents/kafka/clients.py: the shared produce-with-back-off."""

from __future__ import annotations

from typing import Any

import pytest

from assetwatch.agents.kafka.clients import produce


class _FullTwice:
    """A producer whose local queue is full for its first two tries."""

    def __init__(self) -> None:
        self.tries, self.polls, self.queued = 0, 0, []

    def produce(self, topic: str, value: bytes, key: bytes, **options: Any) -> None:
        self.tries += 1
        if self.tries <= 2:
            raise BufferError("Local: Queue full")
        self.queued.append((topic, value, key, options))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0


def test_a_full_queue_is_drained_and_the_record_queued_once() -> None:
    producer = _FullTwice()
    produce(producer, "t", b"v", b"k", headers=[("h", b"1")])
    assert producer.polls == 2
    assert producer.queued == [("t", b"v", b"k", {"headers": [("h", b"1")]})]


def test_other_errors_are_the_callers() -> None:
    class Refusing(_FullTwice):
        def produce(self, topic: str, value: bytes, key: bytes, **options: Any) -> None:
            raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        produce(Refusing(), "t", b"v", b"k")

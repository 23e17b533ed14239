"""Dead letters for operators: read them up to where they ended, show them, replay them.

A scan stops at the end offsets the dead-letter topic had when it opened, so a listing or a
replay finishes even while workers keep dead-lettering, and a replay never reads back the
dead letters its own records cause.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from assetwatch.agents.kafka import clients
from assetwatch.agents.kafka.offsets import bounds
from assetwatch.agents.kafka.producer import ReadingPublisher
from assetwatch.errors import BrokerError, SerializationError
from assetwatch.schemas.codecs import codec
from assetwatch.settings import Settings

log = logging.getLogger(__name__)

PREVIEW_CHARS = 40
"""Characters of text (or hex digits) a listing shows of an original value."""
ERROR_CHARS = 160
"""Characters of the error detail a listing shows; ``--json`` carries all of it."""
REASON_WIDTH = len("non_finite_feature")
"""The longest reason code, so listed lines line up."""
POLL_S = 0.5


@dataclass(frozen=True)
class DeadLetter:
    """One DeadLetter record and its own place (partition, offset) in the dead-letter topic."""

    partition: int
    offset: int
    reason: str
    error: str
    source_topic: str
    source_partition: int
    source_offset: int
    original_key: bytes | None
    original_value: bytes | None
    event_id: str | None
    asset_id: str | None
    failed_timestamp: int
    original_value_size: int | None = None  # set when original_value was truncated to fit
    original_value_sha256: str | None = None

    @classmethod
    def decode(cls, partition: int, offset: int, value: bytes | None) -> DeadLetter:
        """Decode one record of the dead-letter topic, read at ``partition`` and ``offset``."""
        if value is None:
            raise SerializationError("DeadLetter: the record has no value")
        return cls(partition, offset, **codec("DeadLetter").decode(value))


@dataclass(frozen=True)
class Selection:
    """Which dead letters an operator asked for: these reasons (none = all), at most ``limit``."""

    reasons: frozenset[str] = frozenset()
    limit: int = 0
    """0 = no limit."""

    def matches(self, letter: DeadLetter) -> bool:
        """True when ``letter`` has one of the reasons asked for (any, when none were)."""
        return not self.reasons or letter.reason in self.reasons

    def apply(self, letters: Iterable[DeadLetter]) -> Iterator[DeadLetter]:
        """The matching letters; stops right after the ``limit``-th, reading no further."""
        taken = 0
        for letter in letters:
            if self.matches(letter):
                yield letter
                taken += 1
                if taken == self.limit:
                    return


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def preview(value: bytes | None, chars: int = PREVIEW_CHARS) -> str:
    """The start of a payload and its size: printable UTF-8 as text, anything else as hex."""
    if value is None:
        return "none"
    try:
        text = value.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c.isspace() for c in text):
        shown = repr(_clip(" ".join(text.split()), chars))
    else:
        half = chars // 2
        shown = "0x" + value[:half].hex() + ("…" if len(value) > half else "")
    return f"{shown} ({len(value)} B)"


def format_line(letter: DeadLetter) -> str:
    """One readable line: reason, source position, asset, value preview, error."""
    source = f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}"
    error = _clip(" ".join(letter.error.split()), ERROR_CHARS)
    return (f"{letter.reason:<{REASON_WIDTH}}  {source}  asset={letter.asset_id or '-'}  "
            f"value={preview(letter.original_value)}  error: {error}")


def _base64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def to_json(letter: DeadLetter) -> dict[str, Any]:
    """Every field, the original key and value as base64, ready for ``json.dumps``."""
    fields = dataclasses.asdict(letter)
    fields["original_key"] = _base64(letter.original_key)
    fields["original_value"] = _base64(letter.original_value)
    return fields


@dataclass
class ScanReport:
    """What a listing or replay went through, for the summary on stderr."""

    by_reason: Counter[str] = field(default_factory=Counter)
    """Selected dead letters per reason."""
    read: int = 0
    """Dead letters read, selected or not."""
    skipped: int = 0
    """Records in the topic that are not DeadLetters."""
    timed_out: bool = False
    """Nothing arrived for the idle timeout before the end offsets were reached."""

    def describe(self) -> str:
        """The one-line summary printed on stderr."""
        counts = " ".join(f"{r}={n}" for r, n in sorted(self.by_reason.items())) or "none"
        text = f"{self.by_reason.total()} selected of {self.read} read: {counts}"
        if self.skipped:
            text += f"; {self.skipped} records that are not DeadLetters skipped"
        if self.timed_out:
            text += "; stopped early: nothing arrived before the end offsets were reached"
        return text


class DeadLetterScan:
    """The dead-letter topic, from its start to the end offsets observed when the scan opens.

    It assigns partitions directly (no group join, nothing committed). The end offsets are
    :func:`assetwatch.agents.kafka.offsets.bounds`' (corrected on tansu, whose ListOffsets
    reports the newest batch's base offset + 1).
    """

    def __init__(self, settings: Settings, idle_timeout_s: float) -> None:
        self.topic = settings.dead_letter_topic
        self.read = 0
        self.skipped = 0
        self.timed_out = False
        self._idle_timeout_s = idle_timeout_s
        self._consumer = clients.consumer(
            settings, f"assetwatch-dlq-{uuid.uuid4().hex[:8]}",
            {"enable.partition.eof": True, "auto.offset.reset": "earliest"})
        try:
            self._bounds = bounds(self._consumer, settings, self.topic)  # (first, end) each
        except BrokerError:
            self._consumer.close()
            raise

    def __iter__(self) -> Iterator[DeadLetter]:
        pending = {p: end for p, (low, end) in self._bounds.items() if end > low}
        self._consumer.assign(
            [TopicPartition(self.topic, p, self._bounds[p][0]) for p in pending])
        idle_since = time.monotonic()
        while pending:
            try:
                messages = self._consumer.consume(1000, POLL_S)
            except KafkaException as exc:
                raise BrokerError(f"reading {self.topic} failed: {exc}") from exc
            if messages:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > self._idle_timeout_s:
                log.warning("%s: nothing arrived for %.1f s; partitions %s unfinished",
                            self.topic, self._idle_timeout_s, sorted(pending))
                self.timed_out = True
                return
            for message in messages:
                letter = self._take(message, pending)
                if letter is not None:
                    yield letter

    def _take(self, message: Message, pending: dict[int, int]) -> DeadLetter | None:
        """The message's dead letter, if it lies before its partition's end; tracks the ends."""
        partition, offset, error = message.partition(), message.offset(), message.error()
        if error is not None and error.code() != KafkaError._PARTITION_EOF:
            raise BrokerError(f"reading {self.topic} failed: {error}")
        assert partition is not None and offset is not None  # set on messages and on EOF events
        if error is not None:
            self._finish(partition, pending)  # caught up with a high watermark >= the end
            return None
        end = pending.get(partition)
        if end is None or offset >= end:
            self._finish(partition, pending)
            return None
        if offset == end - 1:
            self._finish(partition, pending)
        try:
            letter = DeadLetter.decode(partition, offset, message.value())
        except SerializationError as exc:
            log.warning("%s[%d]@%d is not a DeadLetter: %s", self.topic, partition, offset, exc)
            self.skipped += 1
            return None
        self.read += 1
        return letter

    def _finish(self, partition: int, pending: dict[int, int]) -> None:
        if pending.pop(partition, None) is not None:
            self._consumer.pause([TopicPartition(self.topic, partition)])

    def close(self) -> None:
        """Release the consumer once the scan is done (the ``with`` block does)."""
        self._consumer.close()

    def __enter__(self) -> DeadLetterScan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scan(
    settings: Settings,
    selection: Selection,
    idle_timeout_s: float,
    handle: Callable[[DeadLetter], None],
) -> ScanReport:
    """Hand every selected dead letter, in topic order per partition, to ``handle``."""
    report = ScanReport()
    with DeadLetterScan(settings, idle_timeout_s) as letters:
        for letter in selection.apply(letters):
            report.by_reason[letter.reason] += 1
            handle(letter)
        report.read, report.skipped = letters.read, letters.skipped
        report.timed_out = letters.timed_out
    return report


def replay(settings: Settings, selection: Selection, idle_timeout_s: float) -> ScanReport:
    """Publish the selected dead letters' original key and value bytes to the telemetry topic.

    The publisher uses the murmur2 partitioner, so a replayed reading reaches the partition
    (and worker) holding its asset's state. A letter replayed twice is published twice.
    """
    publisher = ReadingPublisher(settings)
    def send(letter: DeadLetter) -> None:
        if letter.original_value_size is None:  # a truncated value is not the reading
            publisher.send_raw(letter.original_key, letter.original_value)
        else:
            log.warning("not replaying dead letter %d: its value is truncated", letter.offset)

    report = scan(settings, selection, idle_timeout_s, send)
    publisher.flush()
    return report

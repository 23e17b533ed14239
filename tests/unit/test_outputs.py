"""OutputPublisher without a broker: a record the producer refuses is that record's outcome."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping, Sequence

import pytest
from confluent_kafka import KafkaError, KafkaException

from assetwatch.agents.worker import scoring
from assetwatch.agents.worker.outputs import Delivery, OutputPublisher
from assetwatch.errors import ScoringHelperError
from assetwatch.schemas.codecs import codec
from assetwatch.schemas.wire import model_headers
from assetwatch.scoring.dead_letters import DeadLetterWriter
from assetwatch.scoring.outcome import Outcome
from assetwatch.scoring.records import Inbound, Outbound, Output
from assetwatch.settings import Settings

LIMIT = 20_000


class FakeProducer:
    """confluent-kafka's produce/poll/flush.

    Refuses values over ``LIMIT`` as librdkafka does, and values in ``broker_refuses`` in the
    delivery report as a broker would.
    """

    def __init__(self, broker_refuses: frozenset[bytes] = frozenset()) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.headers: list[tuple[str, dict[str, str | bytes | None]]] = []
        self._pending: list[tuple[Delivery, bytes]] = []
        self._broker_refuses = broker_refuses

    def produce(self, topic: str, value: bytes, key: bytes | None, *, on_delivery: Delivery,
                headers: list[tuple[str, str | bytes | None]]) -> None:
        self.headers.append((topic, dict(headers)))
        if len(value) > LIMIT:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self._pending.append((on_delivery, value))
        if value not in self._broker_refuses:
            self.sent.append((topic, key, value))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        pending, self._pending = self._pending, []
        for report, value in pending:
            refused = value in self._broker_refuses
            report(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if refused else None, None)
        return 0


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(max_message_bytes=LIMIT + 4096)


def _source(offset: int) -> Inbound:
    return Inbound(b"cnc-1", b"reading", "t.telemetry", 2, offset)


def _outcome(predictions: list[Outbound], letters: list[Outbound]) -> Outcome:
    return Outcome({Output.PREDICTION: predictions, Output.DEAD_LETTER: letters},
                   ["late"] * len(letters))


def test_every_kind_of_record_goes_to_its_topic(settings: Settings) -> None:
    producer = FakeProducer()
    records = {kind: [Outbound(b"cnc-1", kind.name.encode())] for kind in Output}
    OutputPublisher(settings, producer).deliver(Outcome(records))

    assert producer.sent == [(topic, b"cnc-1", kind.name.encode()) for kind, topic in (
        (Output.PREDICTION, settings.predictions_topic),
        (Output.DEAD_LETTER, settings.dead_letter_topic),
        (Output.DRIFT_ALERT, settings.drift_topic),
        (Output.ASSET_ALERT, settings.asset_alerts_topic),
        (Output.SHADOW_PREDICTION, settings.shadow_predictions_topic))]


def test_each_record_carries_its_own_model_s_headers(settings: Settings) -> None:
    producer = FakeProducer()
    champion, other = model_headers("m", "1"), model_headers("m", "2")
    records = [Outbound(b"a", b"1", None, champion), Outbound(b"b", b"2", None, other),
               Outbound(b"c", b"3", None, champion), Outbound(b"d", b"4")]
    OutputPublisher(settings, producer).deliver(Outcome({Output.PREDICTION: records}))

    assert [h.get("model_version") for _, h in producer.headers] == [b"1", b"2", b"1", None]
    assert all(h["content-type"] for _, h in producer.headers)


def test_a_prediction_the_producer_refuses_becomes_its_dead_letter(settings: Settings) -> None:
    producer = FakeProducer()
    good, huge = (Outbound(b"cnc-1", b"p" * 10, _source(1)),
                  Outbound(b"cnc-1", b"p" * (LIMIT + 1), _source(2)))
    outcome = _outcome([good, huge], [])
    OutputPublisher(settings, producer).deliver(outcome)
    assert outcome.predictions == [good] and outcome.dead_letter_reasons == ["publish_failed"]
    (prediction, letter) = producer.sent
    assert prediction == (settings.predictions_topic, b"cnc-1", b"p" * 10)
    record = codec("DeadLetter").decode(letter[2])
    assert (letter[0], record["reason"], record["source_offset"]) == (
        settings.dead_letter_topic, "publish_failed", 2)
    assert "Broker: Message size too large" in record["error"]


def test_a_dead_letter_the_broker_refuses_is_sent_without_its_value(settings: Settings) -> None:
    writer = DeadLetterWriter(settings.max_message_bytes, lambda: 1.0)
    _, value = writer.build(Inbound(b"k", b"v" * 15_000, "t", 0, 9), "oversized", "big")
    producer = FakeProducer(broker_refuses=frozenset({value}))
    outcome = _outcome([], [Outbound(b"k", value)])
    OutputPublisher(settings, producer).deliver(outcome)
    ((topic, _, stripped),) = producer.sent
    record = codec("DeadLetter").decode(stripped)
    assert topic == settings.dead_letter_topic and record["original_value"] == b""
    assert record["original_value_size"] == 15_000 and record["reason"] == "oversized"


class _Failing:
    forgotten = False

    def process(self, batch: Sequence[Inbound], states: Callable[[bytes], bytes | None],
                ends: Mapping[int, int] | None) -> Outcome:
        raise KafkaException(KafkaError(KafkaError._FATAL))  # does not pickle

    def forget(self) -> None:
        self.forgotten = True


def test_an_error_in_the_scoring_helper_crosses_back_as_plain_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failing = _Failing()
    monkeypatch.setattr(scoring, "_helper", (failing, None, None))
    states: Mapping[bytes, bytes | None] = {}
    with pytest.raises(ScoringHelperError) as raised:
        scoring._process_in_helper([_source(0)], states, {})
    copy = pickle.loads(pickle.dumps(raised.value))
    assert isinstance(copy, ScoringHelperError) and "KafkaException" in str(copy)
    assert failing.forgotten  # its kept states may hold readings whose outputs are missing

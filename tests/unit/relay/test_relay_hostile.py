"""Hostile commands: every character MQTT forbids in a topic is refused, and no dead-letter record is
ever too large for Kafka, whatever the key, value or detail it repeats."""

from __future__ import annotations

import hashlib
import queue

import pytest
from confluent_kafka import KafkaError, Message

from mqtt_kafka_sync.errors import CommandError
from mqtt_kafka_sync.kafka.dead_letter import DeadLetter, DeadLettered, DeadLetters
from mqtt_kafka_sync.kafka.dead_letter_copy import DETAIL_MAX_BYTES, STUB_FIELD_BYTES, record_size
from mqtt_kafka_sync.kafka.producer import DeliveryCallback, Headers
from mqtt_kafka_sync.relay.routes import CommandRouter
from mqtt_kafka_sync.routing.command_topic import unsafe_value
from tests.unit.relay.relay_fakes import FakeSink
from tests.unit.relay.test_relay_routes import NOW, ROUTE, _reason, _record

UNSAFE = [
    *(chr(c) for c in range(0x00, 0x20)),
    *(chr(c) for c in range(0x7F, 0xA0)),
    "\ud800",
    "\udfff",
    "\ufdd0",
    "\ufdef",
    "\ufeff",
    "\ufffe",
    "\uffff",
    "\U0001fffe",
    "\U0010ffff",
    "/",
    "+",
    "#",
]


@pytest.mark.parametrize("char", UNSAFE, ids=lambda c: f"U+{ord(c):04X}")
def test_every_character_mqtt_forbids_in_a_topic_is_refused(char: str) -> None:
    assert unsafe_value(f"d{char}1") is not None


@pytest.mark.parametrize("char", ["a", "é", "\u00a0", "\u200b", "\U0001f600", "$", " ", "\ufffd"])
def test_ordinary_characters_pass(char: str) -> None:
    assert unsafe_value(f"d{char}1") is None


def test_a_byte_order_mark_in_a_placeholder_is_dead_lettered_and_named() -> None:
    router = CommandRouter([ROUTE])
    assert _reason(router, _record("p01.d\ufeff1".encode())) == "unsafe-placeholder"
    with pytest.raises(CommandError, match="U\\+FEFF"):
        router.command(_record("p01.d\ufeff1".encode()), NOW)


def _letters(sink: FakeSink) -> tuple[DeadLetters, queue.SimpleQueue[object]]:
    events: queue.SimpleQueue[object] = queue.SimpleQueue()
    return DeadLetters(sink, "dlq", "relay-test", events), events


def _letter(record: Message, detail: str) -> DeadLetter[int]:
    return DeadLetter(record, 7, CommandError("bad-key", detail))


def test_a_600_kb_key_quoted_in_the_detail_still_fits() -> None:
    """The reproduction of the crash loop: the detail repeated the whole key, so the copy was 1.2 MB."""
    sink = FakeSink()
    letters, events = _letters(sink)
    key = b"k" * 600_000
    letters.send(_letter(_record(key), f"key {key.decode()!r} does not match"))
    sink.poll()
    [(topic, value, out_key, headers)] = sink.produced
    assert (topic, out_key, value) == ("dlq", key, b'{"rate": 5}')
    assert len(headers["dlq.detail"].encode()) < DETAIL_MAX_BYTES + 40
    assert "bytes in all" in headers["dlq.detail"]
    event = events.get_nowait()
    assert isinstance(event, DeadLettered) and event.error is None


@pytest.mark.parametrize("size", [900_000, 999_000, 1_000_000, 3_000_000])
def test_a_value_above_the_producer_limit_is_truncated_with_its_size_and_digest(size: int) -> None:
    sink = FakeSink()
    letters, events = _letters(sink)
    value = b"v" * size
    letters.send(_letter(_record(value=value), "expired"))
    sink.poll()
    [(_, out_value, out_key, headers)] = sink.produced
    assert record_size(out_value, out_key, list(headers.items())) <= sink.max_message_bytes
    if size < 990_000:
        assert out_value == value
    else:
        assert headers["dlq.truncated"] == "true"
        assert headers["dlq.original.bytes"] == str(size)
        assert headers["dlq.original.sha256"] == hashlib.sha256(value).hexdigest()
    assert isinstance(events.get_nowait(), DeadLettered)


def test_a_dead_letter_topic_smaller_than_the_producer_gets_a_stub() -> None:
    sink = FakeSink()
    letters, events = _letters(sink)
    real = sink.produce

    def produce(
        topic: str, value: bytes, key: bytes | None, headers: Headers, on_delivery: DeliveryCallback
    ) -> None:
        if len(value) > 50_000:  # the topic's max.message.bytes, met in the delivery report
            on_delivery(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), None)
            return
        real(topic, value, key, headers, on_delivery)

    sink.produce = produce  # type: ignore[method-assign]
    letters.send(_letter(_record(value=b"v" * 200_000), "expired"))
    sink.poll()
    [(_, out_value, _, headers)] = sink.produced
    assert len(out_value) == STUB_FIELD_BYTES
    assert headers["dlq.original.bytes"] == "200000"
    event = events.get_nowait()
    assert isinstance(event, DeadLettered) and event.error is None


def test_an_unknown_dead_letter_topic_is_an_answer_not_an_exception() -> None:
    sink = FakeSink()
    sink.unknown.add("dlq")
    letters, events = _letters(sink)
    letters.send(_letter(_record(), "no route"))  # must not raise: the relay thread would die
    event = events.get_nowait()
    assert isinstance(event, DeadLettered)
    assert event.error is not None and "Unknown topic" in event.error.str()

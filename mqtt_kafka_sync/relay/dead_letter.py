"""Messages the relay will not publish go to the dead-letter topic, with the reason in headers.

The dead-letter record keeps the command's key, value and headers and adds ``dlq.reason`` (a
:class:`~mqtt_kafka_sync.errors.CommandError` reason), ``dlq.detail``, ``dlq.connector``,
``kafka.topic``, ``kafka.partition``, ``kafka.offset`` and, when one was rendered, ``mqtt.topic``.
The relay thread serves the producer's delivery reports (:meth:`DeadLetters.poll`); each becomes a
:class:`DeadLettered` event, and only then may the record's offset be stored. The replay's MQTT
target dead-letters through the same class, and confirms the record to its checkpoint then.

A dead-letter record is never refused for its size (``kafka/dead_letter_copy.py``): ``dlq.detail``
quotes at most 256 bytes of the input, a copy above the producer's ``message.max.bytes`` is cut to
fit (``dlq.truncated``, ``dlq.original.bytes``, ``dlq.original.sha256``), and one the dead-letter
topic itself refuses for size is sent again as a stub. What the producer refuses at once for any other
reason (the topic unknown) comes back as a :class:`DeadLettered` event with the error, like a refusal
in a delivery report: the relay tries again later and stores no offset meanwhile.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from confluent_kafka import KafkaError

from mqtt_kafka_sync.errors import CommandError, KafkaDeliveryError
from mqtt_kafka_sync.kafka.dead_letter_copy import clip, fit, stub
from mqtt_kafka_sync.kafka.producer import DeliveryCallback, Headers
from mqtt_kafka_sync.relay.routes import KafkaRecord, kafka_headers

logger = logging.getLogger(__name__)

LOG_EVERY_S = 60.0

P = TypeVar("P")
"""What the sender needs back with the answer (the relay: the record's place in its offset tracker)."""


class Sink(Protocol):
    """:class:`mqtt_kafka_sync.kafka.producer.KafkaSink`, as the relay uses it."""

    @property
    def errors(self) -> int: ...

    @property
    def max_message_bytes(self) -> int: ...

    def produce(
        self, topic: str, value: bytes, key: bytes | None, headers: Headers, on_delivery: DeliveryCallback
    ) -> None: ...

    def poll(self, timeout: float = 0.0) -> int: ...

    def close(self, timeout: float = 5.0) -> int: ...


@dataclass(frozen=True, slots=True)
class DeadLetter(Generic[P]):
    record: KafkaRecord
    pending: P
    error: CommandError


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """The dead-letter topic's answer for ``letter``: ``error`` None when Kafka has it."""

    letter: DeadLetter[Any]
    error: KafkaError | None


class DeadLetters:
    def __init__(self, sink: Sink, topic: str, connector: str, events: queue.SimpleQueue[object]) -> None:
        self.topic = topic
        self._sink = sink
        self._connector = connector
        self._events = events
        self._logged: dict[str, tuple[float, int]] = {}

    def send(self, letter: DeadLetter[Any], *, small: bool = False) -> None:
        """Produce the dead-letter copy of ``letter``; ``small``: as a stub (the topic refused it)."""
        record, error = letter.record, letter.error
        if not small:
            self._log(letter)
        headers: Headers = [
            *kafka_headers(record),
            ("dlq.reason", error.reason),
            ("dlq.detail", clip(error.detail)),
            ("dlq.connector", self._connector),
            ("kafka.topic", record.topic() or ""),
            ("kafka.partition", str(record.partition())),
            ("kafka.offset", str(record.offset())),
        ]
        if error.mqtt_topic:
            headers.append(("mqtt.topic", clip(error.mqtt_topic)))
        value = record.value() or b""
        key = record.key()
        if small:
            value, key, headers = stub(value, key, headers)
        else:
            value, key, headers = fit(value, key, headers, self._sink.max_message_bytes)
        retry = None if small else self._send_small
        try:
            self._sink.produce(self.topic, value, key, headers, _Report(self._events, letter, retry))
        except KafkaDeliveryError as exc:
            if exc.fatal:
                raise
            if retry is not None and not exc.retriable:
                retry(letter)
                return
            self._events.put(DeadLettered(letter, KafkaError(exc.code or KafkaError._FAIL, exc.detail)))

    def _send_small(self, letter: DeadLetter[Any]) -> None:
        self.send(letter, small=True)

    @property
    def errors(self) -> int:
        """Errors the dead-letter producer's librdkafka reported (for metrics)."""
        return self._sink.errors

    def poll(self) -> None:
        """Serve delivery reports that arrived; never blocks."""
        self._sink.poll(0.0)

    def close(self, timeout: float) -> int:
        """Flush the producer; returns the records still unconfirmed."""
        return self._sink.close(timeout)

    def _log(self, letter: DeadLetter[Any]) -> None:
        """One line per reason and minute, naming the record; the rest are counted in that line."""
        reason = letter.error.reason
        now = time.monotonic()
        last, suppressed = self._logged.get(reason, (-LOG_EVERY_S, 0))
        if now - last < LOG_EVERY_S:
            self._logged[reason] = (last, suppressed + 1)
            return
        self._logged[reason] = (now, 0)
        record = letter.record
        logger.warning(
            "dead-lettering %s [%s] offset %s to %s: %s%s",
            record.topic(),
            record.partition(),
            record.offset(),
            self.topic,
            letter.error,
            f" ({suppressed} more with this reason in the last minute)" if suppressed else "",
        )


class _Report:
    __slots__ = ("_events", "_letter", "_retry_small")

    def __init__(
        self,
        events: queue.SimpleQueue[object],
        letter: DeadLetter[Any],
        retry_small: Callable[[DeadLetter[Any]], None] | None,
    ) -> None:
        self._events = events
        self._letter = letter
        self._retry_small = retry_small

    def __call__(self, err: KafkaError | None, record: Any) -> None:
        if err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE and self._retry_small is not None:
            self._retry_small(self._letter)  # the dead-letter topic takes less than the producer
            return
        self._events.put(DeadLettered(self._letter, err))

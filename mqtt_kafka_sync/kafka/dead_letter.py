"""The one dead-letter writer: every data path produces its dead-letter records through here.

A dead-letter record repeats the original's value, key and headers, then adds ``dlq.reason``,
``dlq.detail`` (clipped, ``dead_letter_copy.py``), ``dlq.connector`` and what the path says about
the original: nothing more for an MQTT message (its ``mqtt.*`` headers are already there), or where a
Kafka record came from (:class:`DeadLetters`: ``kafka.topic``, ``kafka.partition``,
``kafka.offset``, and ``mqtt.topic`` when one was rendered). The copy is cut to fit the limit
(:func:`~mqtt_kafka_sync.kafka.dead_letter_copy.fit`); when the dead-letter topic refuses it for size
anyway (its ``max.message.bytes`` below the producer's, or a batch with a larger record), it goes
again as a :func:`~mqtt_kafka_sync.kafka.dead_letter_copy.stub`, up to ``stub_tries`` times.

What happens with Kafka's answer is each path's own (:class:`Answer`): the ingest releases an MQTT
acknowledgement, holds the copy or reconnects (``ingest/dead_letter.py``); the relay and a replay
into MQTT get a :class:`DeadLettered` event, and only then store the record's offset or checkpoint.

::

    DeadLetterWriter.send ──produce──▶ Kafka ──report──▶ Answer.delivered / .refused
           │  not queued: fatal raises;  refused for size, stubs left ──▶ Answer.again(stubs + 1)
           └──────────────────────────── anything else ──▶ Answer.not_produced
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from confluent_kafka import KafkaError

from mqtt_kafka_sync.errors import CommandError, KafkaDeliveryError
from mqtt_kafka_sync.kafka.dead_letter_copy import clip, fit, stub
from mqtt_kafka_sync.kafka.producer import SIZE_REFUSALS, DeliveryCallback, Headers
from mqtt_kafka_sync.kafka.record import KafkaRecord, kafka_headers

logger = logging.getLogger(__name__)

LOG_EVERY_S = 60.0
"""The Kafka-record writer logs one line per reason in this many seconds."""

P = TypeVar("P")
"""What the sender needs back with the answer (the relay: the record's place in its offset tracker)."""


class Producing(Protocol):
    """What the writer uses of :class:`~mqtt_kafka_sync.kafka.producer.KafkaSink`."""

    @property
    def max_message_bytes(self) -> int: ...

    def produce(
        self, topic: str, value: bytes, key: bytes | None, headers: Headers, on_delivery: DeliveryCallback
    ) -> None: ...


class Answer(Protocol):
    """What one data path does with the answer for one dead-letter copy."""

    def delivered(self) -> None:
        """Kafka has the copy."""

    def refused(self, error: KafkaError) -> None:
        """Kafka's delivery report refused the copy for good."""

    def not_produced(self, error: KafkaDeliveryError) -> None:
        """librdkafka did not queue the copy, and no stub is left to try (or the error is retriable)."""

    def again(self, stubs: int) -> None:
        """Send the copy again as stub number ``stubs`` (:meth:`DeadLetterWriter.send` with it)."""


class DeadLetterWriter:
    """Builds the dead-letter copies of one path and produces them to ``topic``."""

    def __init__(self, sink: Producing, topic: str, connector: str, *, stub_tries: int) -> None:
        """``stub_tries``: stubs of one copy sent at most after size refusals."""
        self.topic = topic
        self._sink = sink
        self._connector = connector
        self._stub_tries = stub_tries

    def send(
        self,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        answer: Answer,
        *,
        reason: str,
        detail: str,
        about: Headers | None = None,
        stubs: int = 0,
        limit: int | None = None,
    ) -> None:
        """Produce the copy of a record (``value``, ``key``, ``headers``); ``about``: the path's own
        headers after ``dlq.connector``; from ``stubs`` 1 on as a stub; ``limit``: at most this many
        bytes (the producer's ``message.max.bytes`` when None)."""
        dlq_headers: Headers = [
            *headers,
            ("dlq.reason", reason),
            ("dlq.detail", clip(detail)),
            ("dlq.connector", self._connector),
            *(about or ()),
        ]
        if stubs:
            value, key, dlq_headers = stub(value, key, dlq_headers)
        else:
            value, key, dlq_headers = fit(value, key, dlq_headers, limit or self._sink.max_message_bytes)
        next_stub = stubs + 1 if stubs < self._stub_tries else None
        try:
            self._sink.produce(self.topic, value, key, dlq_headers, _Report(answer, next_stub))
        except KafkaDeliveryError as exc:
            if exc.fatal:
                raise
            if next_stub is not None and not exc.retriable:
                answer.again(next_stub)
                return
            answer.not_produced(exc)


class _Report:
    """Delivery report of a dead-letter copy."""

    __slots__ = ("_answer", "_next_stub")

    def __init__(self, answer: Answer, next_stub: int | None) -> None:
        self._answer = answer
        self._next_stub = next_stub

    def __call__(self, err: KafkaError | None, record: Any) -> None:
        if err is None:
            self._answer.delivered()
        elif err.code() in SIZE_REFUSALS and self._next_stub is not None:
            # The dead-letter topic takes less than the producer (its max.message.bytes), or the copy
            # was batched with one that was too large: a stub, again.
            self._answer.again(self._next_stub)
        else:
            self._answer.refused(err)


# -- dead letters of Kafka records (the command relay, a replay into MQTT) ---------------------------


class Sink(Producing, Protocol):
    """:class:`mqtt_kafka_sync.kafka.producer.KafkaSink`, as the relay uses it."""

    @property
    def errors(self) -> int: ...

    def __len__(self) -> int:
        """Records produced and not answered yet (librdkafka's out queue)."""
        ...

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
    """Dead-letter copies of Kafka records; every answer becomes a :class:`DeadLettered` event.

    What the producer refuses at once for any other reason than size (the topic unknown) comes back as
    an event with the error too, like a refusal in a delivery report: the sender tries again later.
    """

    STUB_TRIES = 1

    def __init__(self, sink: Sink, topic: str, connector: str, events: queue.SimpleQueue[object]) -> None:
        self.topic = topic
        self._sink = sink
        self._writer = DeadLetterWriter(sink, topic, connector, stub_tries=self.STUB_TRIES)
        self._events = events
        self._logged: dict[str, tuple[float, int]] = {}

    def send(self, letter: DeadLetter[Any], *, small: bool = False) -> None:
        """Produce the dead-letter copy of ``letter``; ``small``: as a stub (the topic refused it)."""
        record, error = letter.record, letter.error
        if not small:
            self._log(letter)
        about: Headers = [
            ("kafka.topic", record.topic() or ""),
            ("kafka.partition", str(record.partition())),
            ("kafka.offset", str(record.offset())),
        ]
        if error.mqtt_topic:
            about.append(("mqtt.topic", clip(error.mqtt_topic)))
        self._writer.send(
            record.value() or b"",
            record.key(),
            [*kafka_headers(record)],
            _Events(self, letter),
            reason=error.reason,
            detail=error.detail,
            about=about,
            stubs=int(small),
        )

    @property
    def errors(self) -> int:
        """Errors the dead-letter producer's librdkafka reported (for metrics)."""
        return self._sink.errors

    def __len__(self) -> int:
        """Dead letters produced and not answered yet (their reports not served by :meth:`poll`)."""
        return len(self._sink)

    def __bool__(self) -> bool:
        """Always true, as a sink (an idle one has length 0)."""
        return True

    def poll(self) -> None:
        """Serve delivery reports that arrived; never blocks."""
        self._sink.poll(0.0)

    def close(self, timeout: float) -> int:
        """Flush the producer; returns the records still unconfirmed."""
        return self._sink.close(timeout)

    def answered(self, letter: DeadLetter[Any], error: KafkaError | None) -> None:
        self._events.put(DeadLettered(letter, error))

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


class _Events:
    """:class:`Answer` for one Kafka record: each answer an event on the sender's queue."""

    __slots__ = ("_letter", "_letters")

    def __init__(self, letters: DeadLetters, letter: DeadLetter[Any]) -> None:
        self._letters = letters
        self._letter = letter

    def delivered(self) -> None:
        self._letters.answered(self._letter, None)

    def refused(self, error: KafkaError) -> None:
        self._letters.answered(self._letter, error)

    def not_produced(self, error: KafkaDeliveryError) -> None:
        self._letters.answered(self._letter, KafkaError(error.code or KafkaError._FAIL, error.detail))

    def again(self, stubs: int) -> None:
        self._letters.send(self._letter, small=True)

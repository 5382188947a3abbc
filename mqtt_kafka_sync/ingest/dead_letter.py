"""The ingest pipeline's dead-letter records (``errors.deadletterqueue.topic.name``).

A message that cannot be routed, decoded or produced becomes a dead-letter record: its payload, its
MQTT topic as the key, its ``mqtt.*`` headers and the reason in ``dlq.*`` headers, cut to fit the
dead-letter topic. The copy is built and produced by the one writer every path uses
(``kafka/dead_letter.py``); what is the ingest's own is what Kafka's answer does here. The MQTT
acknowledgement is released only once Kafka has the copy, like any other record. A copy the topic
refuses for size goes again as a stub (at most :data:`STUB_TRIES`); one the producer cannot queue
yet (the topic unknown to librdkafka) waits among the held records; one the topic refuses for good
is never acknowledged: the task reconnects, so the broker redelivers (:meth:`DeadLetters.refused`).
"""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import KafkaError

from mqtt_kafka_sync.errors import KafkaDeliveryError
from mqtt_kafka_sync.ingest.acks import AckTracker
from mqtt_kafka_sync.ingest.delivery import Incoming
from mqtt_kafka_sync.ingest.held import HeldTopics
from mqtt_kafka_sync.ingest.sink import Sink
from mqtt_kafka_sync.ingest.stats import IngestStats
from mqtt_kafka_sync.kafka.dead_letter import DeadLetterWriter
from mqtt_kafka_sync.logs import per_record_logger

record_logger = per_record_logger("mqtt_kafka_sync.ingest.pipeline")
"""The pipeline's per-record logger (one line per kind and minute): the name kept from before the split."""

STUB_TRIES = 3
"""Stubs of one dead-letter copy sent at most: a stub only fails in a batch with a larger record."""


class DeadLetters:
    """Writes the dead-letter copies of one pipeline (network thread only)."""

    def __init__(
        self,
        connector: str,
        dlq_topic: str,
        *,
        sink: Sink,
        tracker: AckTracker,
        stats: IngestStats,
        held: HeldTopics,
        on_stuck: Callable[[str], None],
    ) -> None:
        self._dlq = dlq_topic
        self._writer = DeadLetterWriter(sink, dlq_topic, connector, stub_tries=STUB_TRIES)
        self._sink = sink
        self._tracker = tracker
        self._stats = stats
        self._held = held.topics
        self._holds = held
        self._on_stuck = on_stuck

    def write(self, incoming: Incoming, *, reason: str, detail: str, stubs: int = 0) -> None:
        """Produce the dead-letter copy of ``incoming``; from ``stubs`` 1 on as a stub, the topic having
        refused the full copy (or a batch the stub was in: up to :data:`STUB_TRIES` stubs are sent)."""
        letter = _Letter(self, incoming, reason, detail, stubs)
        if self._held and self._holds.held_back(self._dlq, incoming.seq, letter.again_as_is):
            return
        sink = self._sink
        message = incoming.message
        self._writer.send(
            message.payload,
            message.topic.encode(),
            incoming.headers,
            letter,
            reason=reason,
            detail=detail,
            stubs=stubs,
            limit=min(sink.max_message_bytes, sink.topic_limits.get(self._dlq, sink.max_message_bytes)),
        )

    def hold(self, letter: _Letter, why: str) -> None:
        """The producer cannot queue the copy yet: it waits among the held records of the topic."""
        self._holds.hold(self._dlq, letter.incoming.seq, why, letter.again_as_is, give_up=None)

    def refused(self, why: str) -> None:
        """Not even the dead-letter topic takes it: never ack; reconnect so the broker redelivers."""
        self._stats.dead_letter_refused += 1
        record_logger.error(
            "dead-letter topic %s refused a record (%s); the MQTT message stays unacknowledged",
            self._dlq,
            why,
        )
        self._on_stuck(f"dead-letter topic refused a record: {why}")

    def dead_lettered(self, incoming: Incoming, reason: str) -> None:
        stats = self._stats
        stats.dead_lettered += 1
        stats.dlq_by_reason[reason] = stats.dlq_by_reason.get(reason, 0) + 1
        if incoming.pending is not None:
            self._tracker.done(incoming.pending)


class _Letter:
    """One dead-letter copy of a message: the :class:`~mqtt_kafka_sync.kafka.dead_letter.Answer`."""

    __slots__ = ("_detail", "_reason", "_stubs", "_writer", "incoming")

    def __init__(self, writer: DeadLetters, incoming: Incoming, reason: str, detail: str, stubs: int) -> None:
        self._writer = writer
        self.incoming = incoming
        self._reason = reason
        self._detail = detail
        self._stubs = stubs

    def delivered(self) -> None:
        self._writer.dead_lettered(self.incoming, self._reason)

    def refused(self, error: KafkaError) -> None:
        self._writer.refused(error.str())

    def not_produced(self, error: KafkaDeliveryError) -> None:
        if error.retriable:
            self._writer.hold(self, error.detail)
        else:
            self._writer.refused(error.detail)

    def again(self, stubs: int) -> None:
        self._writer.write(self.incoming, reason=self._reason, detail=self._detail, stubs=stubs)

    def again_as_is(self) -> None:
        self.again(self._stubs)

"""The ingest pipeline's dead-letter records (``errors.deadletterqueue.topic.name``).

A message that cannot be routed, decoded or produced becomes a dead-letter record with the reason in
its ``dlq.*`` headers, cut to fit the dead-letter topic (``kafka/dead_letter_copy.py``); its MQTT
acknowledgement is released only once Kafka has it, like any other record. A copy the topic refuses
for size goes again as a stub (at most :data:`STUB_TRIES`); one it refuses for good is never
acknowledged: the task reconnects, so the broker redelivers (:meth:`DeadLetters.refused`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from mqtt_kafka_sync.errors import KafkaDeliveryError
from mqtt_kafka_sync.ingest.acks import AckTracker, Pending
from mqtt_kafka_sync.ingest.delivery import SIZE_REFUSALS
from mqtt_kafka_sync.ingest.held import HeldTopics
from mqtt_kafka_sync.ingest.sink import Sink
from mqtt_kafka_sync.ingest.stats import IngestStats
from mqtt_kafka_sync.kafka.dead_letter_copy import clip, fit, stub
from mqtt_kafka_sync.kafka.producer import Headers
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
        self._connector = connector
        self._dlq = dlq_topic
        self._sink = sink
        self._limits = sink.topic_limits
        self._tracker = tracker
        self._stats = stats
        self._held = held.topics
        self._holds = held
        self._on_stuck = on_stuck

    def write(
        self,
        mqtt_topic: str,
        payload: bytes,
        headers: Headers,
        pending: Pending | None,
        *,
        reason: str,
        detail: str,
        seq: int,
        stubs: int = 0,
    ) -> None:
        """Produce the dead-letter copy; from ``stubs`` 1 on as a :func:`stub`, the topic having refused
        the full copy (or a batch the stub was in: up to :data:`STUB_TRIES` stubs are sent)."""
        dlq_headers = [
            *headers,
            ("dlq.reason", reason),
            ("dlq.detail", clip(detail)),
            ("dlq.connector", self._connector),
        ]
        key = mqtt_topic.encode()
        if stubs:
            value, key_out, dlq_headers = stub(payload, key, dlq_headers)
        else:
            limit = min(
                self._sink.max_message_bytes, self._limits.get(self._dlq, self._sink.max_message_bytes)
            )
            value, key_out, dlq_headers = fit(payload, key, dlq_headers, limit)

        def again(next_stubs: int = stubs) -> None:
            self.write(
                mqtt_topic, payload, headers, pending, reason=reason, detail=detail, seq=seq, stubs=next_stubs
            )

        def again_small() -> None:
            again(stubs + 1)

        if self._held and self._holds.held_back(self._dlq, seq, again):
            return
        try:
            self._sink.produce(
                self._dlq,
                value,
                key_out,
                dlq_headers,
                _DlqDelivery(self, pending, reason, retry_small=again_small if stubs < STUB_TRIES else None),
            )
        except KafkaDeliveryError as exc:
            if exc.fatal:
                raise
            if exc.retriable:
                self._holds.hold(self._dlq, seq, exc.detail, again, give_up=None)
            elif stubs < STUB_TRIES:
                again_small()
            else:
                self.refused(pending, exc.detail)

    def refused(self, pending: Pending | None, why: str) -> None:
        """Not even the dead-letter topic takes it: never ack; reconnect so the broker redelivers."""
        self._stats.dead_letter_refused += 1
        record_logger.error(
            "dead-letter topic %s refused a record (%s); the MQTT message stays unacknowledged",
            self._dlq,
            why,
        )
        self._on_stuck(f"dead-letter topic refused a record: {why}")

    def dead_lettered(self, pending: Pending | None, reason: str) -> None:
        stats = self._stats
        stats.dead_lettered += 1
        stats.dlq_by_reason[reason] = stats.dlq_by_reason.get(reason, 0) + 1
        if pending is not None:
            self._tracker.done(pending)


class _DlqDelivery:
    """Delivery report of a dead-letter record."""

    __slots__ = ("_pending", "_reason", "_retry_small", "_writer")

    def __init__(
        self,
        writer: DeadLetters,
        pending: Pending | None,
        reason: str,
        retry_small: Callable[[], None] | None,
    ) -> None:
        self._writer = writer
        self._pending = pending
        self._reason = reason
        self._retry_small = retry_small

    def __call__(self, err: KafkaError | None, record: Any) -> None:
        if err is None:
            self._writer.dead_lettered(self._pending, self._reason)
        elif err.code() in SIZE_REFUSALS and self._retry_small is not None:
            # The dead-letter topic takes less than the producer (its max.message.bytes), or the copy
            # was batched with one that was too large: a stub, again.
            self._retry_small()
        else:
            self._writer.refused(self._pending, err.str())

"""Where an MQTT message becomes a Kafka record.

Runs on the subscriber's network thread, so every step here is short and never blocks: route the
topic (cached), encode the value, hand the record to librdkafka. A message that cannot be routed or
decoded becomes a dead-letter record with the reason in its headers; it is acknowledged to MQTT only
once the dead-letter record is in Kafka, like any other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError

from mqtt_kafka_sync.codec.values import encode_value
from mqtt_kafka_sync.errors import MessageError
from mqtt_kafka_sync.ingest.acks import AckTracker, Pending
from mqtt_kafka_sync.ingest.pacing import PacedAcks
from mqtt_kafka_sync.kafka.producer import Headers, KafkaSink
from mqtt_kafka_sync.mqtt.packets import Publish
from mqtt_kafka_sync.routing.router import Router

logger = logging.getLogger(__name__)

_QOS = (b"0", b"1", b"2")
DELIVERY_POLL_INTERVAL = 0.002
"""Seconds the network loop sleeps at most while Kafka deliveries are outstanding."""
_RETAIN = (b"false", b"true")


@dataclass
class IngestStats:
    """Counters for progress display and metrics; written by one thread each, read by any."""

    received: int = 0
    produced: int = 0
    dead_lettered: int = 0
    delivery_failures: int = 0
    dlq_by_reason: dict[str, int] = field(default_factory=dict)


class IngestPipeline:
    """The :class:`~mqtt_kafka_sync.mqtt.subscriber.MessageHandler` of an ingest task."""

    def __init__(
        self,
        connector: str,
        router: Router,
        *,
        sink: KafkaSink,
        tracker: AckTracker,
        dlq_topic: str,
        on_stuck: Callable[[str], None],
        owns_sink: bool = True,
        pacer: PacedAcks | None = None,
    ) -> None:
        self._connector = connector
        self._owns_sink = owns_sink
        self._pacer = pacer
        self._router = router
        self._sink = sink
        self._tracker = tracker
        self._dlq = dlq_topic
        self._on_stuck = on_stuck
        self.stats = IngestStats()

    # -- MessageHandler -------------------------------------------------------------------------
    def on_connected(self, generation: int, session_present: bool) -> None:
        self._tracker.reset()
        if self._pacer is not None:
            self._pacer.reset()

    def on_disconnected(self, generation: int, reason: str) -> None:
        return None

    def on_tick(self) -> float | None:
        """Serve Kafka delivery reports on the network thread; wake again soon while any are due."""
        if self._owns_sink:
            self._sink.poll(0)
        wait = DELIVERY_POLL_INTERVAL if self._tracker.in_flight or len(self._sink) else None
        if self._pacer is not None:
            paced = self._pacer.flush()
            if paced is not None:
                wait = paced if wait is None else min(wait, paced)
        return wait

    def on_message(self, message: Publish, generation: int) -> None:
        self.stats.received += 1
        pending = (
            self._tracker.add(generation, message.packet_id, message.qos, time.monotonic())
            if message.qos
            else None
        )
        headers: Headers = [
            ("mqtt.topic", message.topic),
            ("mqtt.qos", _QOS[message.qos]),
            ("mqtt.retain", _RETAIN[message.retain]),
        ]
        if message.user_properties:
            headers.extend(message.user_properties)
        self.produce(message, pending, headers)

    def produce(self, message: Publish, pending: Pending | None, headers: Headers) -> None:
        """Route, encode and produce one message (again, after a retriable delivery failure)."""
        try:
            match = self._router.route(message.topic)
            value = encode_value(match, message.payload, message.topic)
        except MessageError as exc:
            self._dead_letter(
                message.topic, message.payload, headers, pending, reason=exc.reason, detail=exc.detail
            )
            return
        self._sink.produce(
            match.kafka_topic, value, match.key, headers, _Delivery(self, pending, message, headers)
        )

    # -- internals --------------------------------------------------------------------------------
    def _dead_letter(
        self,
        mqtt_topic: str,
        payload: bytes,
        headers: Headers,
        pending: Pending | None,
        *,
        reason: str,
        detail: str,
    ) -> None:
        self.stats.dlq_by_reason[reason] = self.stats.dlq_by_reason.get(reason, 0) + 1
        dlq_headers = [
            *headers,
            ("dlq.reason", reason),
            ("dlq.detail", detail),
            ("dlq.connector", self._connector),
        ]
        self._sink.produce(self._dlq, payload, mqtt_topic.encode(), dlq_headers, _DlqDelivery(self, pending))

    def _delivered(self, pending: Pending | None, dead_letter: bool) -> None:
        if dead_letter:
            self.stats.dead_lettered += 1
        else:
            self.stats.produced += 1
        if pending is not None:
            self._tracker.done(pending)


class _Delivery:
    """Delivery report of a data record: ack on success, dead-letter what Kafka refuses for good."""

    __slots__ = ("_headers", "_message", "_pending", "_pipeline")

    def __init__(
        self,
        pipeline: IngestPipeline,
        pending: Pending | None,
        message: Publish,
        headers: Headers,
    ) -> None:
        self._pipeline = pipeline
        self._pending = pending
        self._message = message
        self._headers = headers

    def __call__(self, err: KafkaError | None, record: Any) -> None:
        pipeline = self._pipeline
        if err is None:
            pipeline._delivered(self._pending, dead_letter=False)
            return
        pipeline.stats.delivery_failures += 1
        topic = record.topic() if record is not None else "?"
        if err.retriable() or err.code() == KafkaError._MSG_TIMED_OUT:
            logger.warning("kafka delivery to %s failed (%s); producing again", topic, err.str())
            pipeline.produce(self._message, self._pending, self._headers)
            return
        logger.error(
            "kafka refused a record for topic %s (%s); sending it to the dead-letter topic", topic, err.str()
        )
        pipeline._dead_letter(
            self._message.topic,
            self._message.payload,
            self._headers,
            self._pending,
            reason="kafka-rejected",
            detail=f"topic {topic}: {err.str()}",
        )


class _DlqDelivery:
    __slots__ = ("_pending", "_pipeline")

    def __init__(self, pipeline: IngestPipeline, pending: Pending | None) -> None:
        self._pipeline = pipeline
        self._pending = pending

    def __call__(self, err: KafkaError | None, record: Any) -> None:
        if err is None:
            self._pipeline._delivered(self._pending, dead_letter=True)
            return
        # Not even the dead-letter topic takes it: never ack; reconnect so the broker redelivers.
        logger.error(
            "dead-letter topic %s refused a record (%s); the MQTT message stays unacknowledged",
            self._pipeline._dlq,
            err.str(),
        )
        self._pipeline._on_stuck(f"dead-letter topic refused a record: {err.str()}")

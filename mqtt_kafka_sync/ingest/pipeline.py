"""Where an MQTT message becomes a Kafka record.

Runs on the subscriber's network thread, so every step here is short and never blocks: route the
topic (cached), encode the value, hand the record to librdkafka. A message that cannot be routed or
decoded becomes a dead-letter record with the reason in its headers; it is acknowledged to MQTT only
once the dead-letter record is in Kafka, like any other.

Metrics cost the hot path a few attribute increments per message (per-route counters on a slotted
object found by the route's name) and one histogram bisect per delivery report (Kafka's own latency
figure); nothing is allocated for them. The task's stats loop reads :class:`IngestStats` twice a
second (``telemetry/probe.py``).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
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
from mqtt_kafka_sync.telemetry import registry
from mqtt_kafka_sync.telemetry.catalog import UNROUTED
from mqtt_kafka_sync.telemetry.counters import Buckets, RouteCounters
from mqtt_kafka_sync.telemetry.logfilter import per_record_logger

logger = logging.getLogger(__name__)
record_logger = per_record_logger(__name__)
"""Failures that can hit every message: one line per kind and minute, with the count held back."""

_QOS = (b"0", b"1", b"2")
DELIVERY_POLL_INTERVAL = 0.002
"""Seconds the network loop sleeps at most while Kafka deliveries are outstanding."""
IDLE_POLL_INTERVAL = 1.0
"""Seconds the network loop sleeps at most while nothing is outstanding."""
_RETAIN = (b"false", b"true")


@dataclass
class IngestStats:
    """Counters for progress display and metrics; written by one thread each, read by any."""

    received: int = 0
    produced: int = 0
    dead_lettered: int = 0
    delivery_failures: int = 0
    retried: int = 0
    """Deliveries that failed with a retriable error; the record was produced again."""
    dead_letter_refused: int = 0
    dlq_by_reason: dict[str, int] = field(default_factory=dict)
    """Records the dead-letter topic confirmed, by ``dlq.reason``."""
    routes: defaultdict[str, RouteCounters] = field(default_factory=lambda: defaultdict(RouteCounters))
    """By route name; :data:`~mqtt_kafka_sync.telemetry.catalog.UNROUTED` for messages no route took."""
    delivery_latency: Buckets = field(default_factory=Buckets)
    """Seconds from ``produce()`` to Kafka's acknowledgement, per record (librdkafka measures it)."""


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
        registry.track_ingest(connector, self.stats, tracker)

    # -- MessageHandler -------------------------------------------------------------------------
    def on_connected(self, generation: int, session_present: bool) -> None:
        self._tracker.reset()
        if self._pacer is not None:
            self._pacer.reset()

    def on_disconnected(self, generation: int, reason: str) -> None:
        return None

    def on_tick(self) -> float | None:
        """Serve Kafka delivery reports on the network thread; wake again soon while any are due.

        The loop wakes at least every :data:`IDLE_POLL_INTERVAL` even when idle, so librdkafka's
        error and statistics callbacks (Kafka connection state, for metrics and /readyz) are served.
        """
        if self._owns_sink:
            self._sink.poll(0)
        wait = DELIVERY_POLL_INTERVAL if self._tracker.in_flight or len(self._sink) else IDLE_POLL_INTERVAL
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

    def produce(
        self, message: Publish, pending: Pending | None, headers: Headers, *, again: bool = False
    ) -> None:
        """Route, encode and produce one message (``again``: after a retriable delivery failure)."""
        try:
            match = self._router.route(message.topic)
        except MessageError as exc:
            if not again:
                unrouted = self.stats.routes[UNROUTED]
                unrouted.received += 1
                unrouted.received_bytes += len(message.payload)
            self._dead_letter(
                message.topic, message.payload, headers, pending, reason=exc.reason, detail=exc.detail
            )
            return
        route = self.stats.routes[match.route_name]
        if not again:
            route.received += 1
            route.received_bytes += len(message.payload)
        try:
            value = encode_value(match, message.payload, message.topic)
        except MessageError as exc:
            self._dead_letter(
                message.topic, message.payload, headers, pending, reason=exc.reason, detail=exc.detail
            )
            return
        self._sink.produce(
            match.kafka_topic, value, match.key, headers, _Delivery(self, pending, message, headers, route)
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
        dlq_headers = [
            *headers,
            ("dlq.reason", reason),
            ("dlq.detail", detail),
            ("dlq.connector", self._connector),
        ]
        self._sink.produce(
            self._dlq, payload, mqtt_topic.encode(), dlq_headers, _DlqDelivery(self, pending, reason)
        )

    def _delivered(self, pending: Pending | None) -> None:
        self.stats.produced += 1
        if pending is not None:
            self._tracker.done(pending)

    def _dead_lettered(self, pending: Pending | None, reason: str) -> None:
        stats = self.stats
        stats.dead_lettered += 1
        stats.dlq_by_reason[reason] = stats.dlq_by_reason.get(reason, 0) + 1
        if pending is not None:
            self._tracker.done(pending)


class _Delivery:
    """Delivery report of a data record: ack on success, dead-letter what Kafka refuses for good."""

    __slots__ = ("_headers", "_message", "_pending", "_pipeline", "_route")

    def __init__(
        self,
        pipeline: IngestPipeline,
        pending: Pending | None,
        message: Publish,
        headers: Headers,
        route: RouteCounters,
    ) -> None:
        self._pipeline = pipeline
        self._pending = pending
        self._message = message
        self._headers = headers
        self._route = route

    def __call__(self, err: KafkaError | None, record: Any) -> None:
        pipeline = self._pipeline
        if err is None:
            route = self._route
            route.delivered += 1
            route.delivered_bytes += len(record)
            latency = record.latency()
            if latency is not None:
                pipeline.stats.delivery_latency.observe(latency)
            pipeline._delivered(self._pending)
            return
        pipeline.stats.delivery_failures += 1
        topic = record.topic() if record is not None else "?"
        where = f"{topic} [{record.partition()}]" if record is not None else topic
        if err.retriable() or err.code() == KafkaError._MSG_TIMED_OUT:
            pipeline.stats.retried += 1
            record_logger.warning("kafka delivery to %s failed (%s); producing again", where, err.str())
            pipeline.produce(self._message, self._pending, self._headers, again=True)
            return
        record_logger.error(
            "kafka refused a record for %s (%s); sending it to the dead-letter topic", where, err.str()
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
    __slots__ = ("_pending", "_pipeline", "_reason")

    def __init__(self, pipeline: IngestPipeline, pending: Pending | None, reason: str) -> None:
        self._pipeline = pipeline
        self._pending = pending
        self._reason = reason

    def __call__(self, err: KafkaError | None, record: Any) -> None:
        if err is None:
            self._pipeline._dead_lettered(self._pending, self._reason)
            return
        # Not even the dead-letter topic takes it: never ack; reconnect so the broker redelivers.
        self._pipeline.stats.dead_letter_refused += 1
        record_logger.error(
            "dead-letter topic %s refused a record (%s); the MQTT message stays unacknowledged",
            self._pipeline._dlq,
            err.str(),
        )
        self._pipeline._on_stuck(f"dead-letter topic refused a record: {err.str()}")

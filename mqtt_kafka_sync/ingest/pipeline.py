"""Where an MQTT message becomes a Kafka record.

Runs on the subscriber's network thread, so every step here is short and never blocks: route the
topic (cached), encode the value, hand the record to librdkafka. A message that cannot be routed or
decoded becomes a dead-letter record with the reason in its headers (``dead_letter.py``); it is
acknowledged to MQTT only once the dead-letter record is in Kafka, like any other.

Nothing a message carries can stop the pipeline: a topic longer than ``mqtt.topic.max.length``, a
record librdkafka refuses at once (above ``message.max.bytes``), a device property that names one of
the bridge's own headers (renamed ``mqtt.user.<name>``), an encoder that fails in an unforeseen
way: each becomes a dead-letter record or a renamed header, and the next message flows. A Kafka topic
librdkafka calls unknown holds only that topic's records back (``held.py``), retried with backoff
on the network thread's ticks, and dead-letters them as ``kafka-topic-missing`` once
``errors.retry.timeout.ms`` has passed (``-1``: never). A fatal producer error ends the task process,
which the supervisor restarts.

Metrics cost the hot path a few attribute increments per message (per-route counters on a slotted
object found by the route's name) and one histogram bisect per delivery report (Kafka's own latency
figure); nothing is allocated for them. The task's stats loop reads :class:`IngestStats` twice a
second (``telemetry/probe.py``).

This module keeps the per-message path: :meth:`IngestPipeline.on_message`, :meth:`~IngestPipeline.produce`
and what Kafka's answers call back; the delivery report itself is in ``delivery.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from time import monotonic

from mqtt_kafka_sync.codec.values import encode_value
from mqtt_kafka_sync.errors import KafkaDeliveryError, MessageError
from mqtt_kafka_sync.ingest.acks import AckTracker, Pending
from mqtt_kafka_sync.ingest.dead_letter import DeadLetters
from mqtt_kafka_sync.ingest.delivery import Delivery, DeliveryAlone, Incoming
from mqtt_kafka_sync.ingest.headers import device_properties, mqtt_headers
from mqtt_kafka_sync.ingest.held import HeldTopics
from mqtt_kafka_sync.ingest.routes import IngestRoutes
from mqtt_kafka_sync.ingest.sink import Sink
from mqtt_kafka_sync.ingest.stats import IngestStats
from mqtt_kafka_sync.kafka.dead_letter_copy import clip, record_size
from mqtt_kafka_sync.logs import per_record_logger
from mqtt_kafka_sync.mqtt.packets import Publish
from mqtt_kafka_sync.telemetry.catalog import UNROUTED
from mqtt_kafka_sync.telemetry.counters import RouteCounters
from mqtt_kafka_sync.telemetry.registry import PipelineRegistry
from mqtt_kafka_sync.throttle.pacing import PacedAcks

__all__ = ["DELIVERY_POLL_INTERVAL", "IngestPipeline", "IngestStats", "Sink", "device_properties"]
"""What other modules and the tests take from here (``IngestStats`` and ``Sink`` have their own
modules since the split)."""

logger = logging.getLogger(__name__)
record_logger = per_record_logger(__name__)
"""Failures that can hit every message: one line per kind and minute, with the count held back."""

DELIVERY_POLL_INTERVAL = 0.002
"""Seconds the network loop sleeps at most while Kafka deliveries are outstanding."""
IDLE_POLL_INTERVAL = 1.0
"""Seconds the network loop sleeps at most while nothing is outstanding."""
LIMIT_SLACK_BYTES = 4_096
"""Below a topic's limit by more than this (value and key alone), a record is not measured further."""


class IngestPipeline:
    """The :class:`~mqtt_kafka_sync.mqtt.subscriber.MessageHandler` of an ingest task."""

    def __init__(
        self,
        connector: str,
        routes: IngestRoutes,
        *,
        sink: Sink,
        tracker: AckTracker,
        dlq_topic: str,
        on_stuck: Callable[[str], None],
        owns_sink: bool = True,
        pacer: PacedAcks | None = None,
        topic_max_length: int = 65_535,
        retry_timeout: float | None = 60.0,
        telemetry: PipelineRegistry | None = None,
        serve: Callable[[int], float] | None = None,
    ) -> None:
        """``retry_timeout``: seconds a topic librdkafka calls unknown is retried before its records
        are dead-lettered (None: for ever); ``telemetry``: where the task's probe finds its counters;
        ``serve``: polls a producer shared with other sessions on a tick (instead of ``poll(0)``),
        given this pipeline's records in flight, and returns the wait until the next tick."""
        self._serve = serve
        self._topic_max_length = topic_max_length
        self.limits = sink.topic_limits
        """Kafka topic -> its ``max.message.bytes``, where known (read at start, learned from
        refusals): a record above it is dead-lettered before it is produced, so it never fails the
        records batched with it."""
        self._owns_sink = owns_sink
        self._pacer = pacer
        self._routes = routes
        self._route = routes.router.route
        """The router's own ``route`` (cached per topic), without :class:`IngestRoutes`' call around it."""
        self._encoders = routes.encoders
        self._sink = sink
        self.tracker = tracker
        """Acknowledgements in arrival order; a delivery report releases its message's (``delivery.py``)."""
        self.stats = IngestStats()
        self._holds = HeldTopics(self.stats, retry_timeout=retry_timeout, busy_wait=DELIVERY_POLL_INTERVAL)
        self._held = self._holds.topics
        """Kafka topic -> its records held back; empty nearly always, tested before calling anything."""
        dead_letters = DeadLetters(
            connector,
            dlq_topic,
            sink=sink,
            tracker=tracker,
            stats=self.stats,
            held=self._holds,
            on_stuck=on_stuck,
        )
        self.dead_letter = dead_letters.write
        """Produce the dead-letter copy of a message (:meth:`DeadLetters.write`)."""
        if telemetry is not None:
            telemetry.track_ingest(connector, self.stats, tracker)

    # -- MessageHandler -------------------------------------------------------------------------
    def on_connected(self, generation: int, session_present: bool) -> None:
        self.tracker.reset()
        self._holds.forget_waiting()  # the broker sends them again on this connection
        if self._pacer is not None:
            self._pacer.reset()

    def on_disconnected(self, generation: int, reason: str) -> None:
        return None

    def on_tick(self) -> float | None:
        """Serve Kafka delivery reports on the network thread; wake again soon while any are due.

        The loop wakes at least every :data:`IDLE_POLL_INTERVAL` even when idle, so librdkafka's
        error and statistics callbacks (Kafka connection state, for metrics and /readyz) are served.
        """
        if self._serve is not None:  # a producer shared by several sessions: it says when to poll
            wait = self._serve(self.tracker.in_flight)
        else:
            if self._owns_sink:
                tracker = self.tracker
                tracker.gather()  # the acknowledgements this poll releases go out as one batch
                try:
                    self._sink.poll(0)
                finally:
                    tracker.send_gathered()
            wait = DELIVERY_POLL_INTERVAL if self.tracker.in_flight or len(self._sink) else IDLE_POLL_INTERVAL
        if self._held:
            wait = min(wait, self._holds.retry_due(time.monotonic()))
        if self._pacer is not None:
            paced = self._pacer.flush()
            if paced is not None:
                wait = paced if wait is None else min(wait, paced)
        return wait

    def on_message(self, message: Publish, generation: int) -> None:
        stats = self.stats
        stats.received += 1
        seq = stats.received
        pending = (
            self.tracker.add(generation, message.packet_id, message.qos, monotonic()) if message.qos else None
        )
        if len(message.topic) > self._topic_max_length:
            self.dead_letter(
                Incoming(message, pending, mqtt_headers(message), seq),
                reason="topic-too-long",
                detail=f"topic of {len(message.topic)} characters, above mqtt.topic.max.length "
                f"{self._topic_max_length}",
            )
            return
        self._produce(message, pending, seq, False, False)

    def produce(self, incoming: Incoming, *, again: bool = False, alone: bool = False) -> None:
        """Route, encode and produce one message (``again``: after a retriable delivery failure).

        What is held back is retried in arrival order (``incoming.seq``).
        ``alone``: the record is retried by itself after its batch was refused for size.
        """
        self._produce(incoming.message, incoming.pending, incoming.seq, again, alone)

    def _produce(self, message: Publish, pending: Pending | None, seq: int, again: bool, alone: bool) -> None:
        """:meth:`produce` with the parts of an :class:`Incoming`, built here only on a failure path
        (why: :class:`Incoming`), its headers too (``headers.py``); :meth:`on_message` calls this
        directly. Every message passes here: the router's ``route`` and :func:`encode_value` are called
        without :class:`IngestRoutes`' wrappers around them, and the arguments are positional."""
        topic = message.topic
        try:
            match = self._route(topic)
        except MessageError as exc:
            if not again:
                self._count_received(self.stats.routes[UNROUTED], message)
            self.dead_letter(self._incoming(message, pending, seq), reason=exc.reason, detail=exc.detail)
            return
        route = self.stats.routes[match.route_name]
        payload = message.payload
        if not again:
            route.received += 1
            route.received_bytes += len(payload)
        try:
            value = encode_value(self._encoders[match.route_name], match.fields, payload, topic)
        except MessageError as exc:
            self.dead_letter(self._incoming(message, pending, seq), reason=exc.reason, detail=exc.detail)
            return
        except Exception as exc:  # an encoder fault must cost one message, never the task
            record_logger.exception(
                "route %s could not encode a message of %s", match.route_name, clip(topic)
            )
            self.dead_letter(
                self._incoming(message, pending, seq),
                reason="internal-error",
                detail=f"{type(exc).__name__}: {exc}",
            )
            return
        kafka_topic = match.kafka_topic
        headers = mqtt_headers(message)
        limits = self.limits
        if (
            limits
            and (limit := limits.get(kafka_topic)) is not None
            and len(value) + len(match.key) + LIMIT_SLACK_BYTES > limit
            and (size := record_size(value, match.key, headers)) > limit
        ):
            self.dead_letter(
                Incoming(message, pending, headers, seq),
                reason="kafka-rejected",
                detail=f"topic {kafka_topic}: a record of about {size} bytes, above the topic's "
                f"max.message.bytes {limit}",
            )
            return
        if self._held and self._holds.held_back(
            kafka_topic, seq, lambda: self.produce(Incoming(message, pending, headers, seq), again=True)
        ):
            return
        try:
            self._sink.produce(
                kafka_topic,
                value,
                match.key,
                headers,
                (DeliveryAlone if alone else Delivery)(self, message, pending, route, seq, topic=kafka_topic),
            )
        except KafkaDeliveryError as exc:
            if exc.fatal:
                raise
            incoming = Incoming(message, pending, headers, seq)
            if exc.retriable:
                self.topic_missing(incoming, topic=kafka_topic, why=exc.detail)
                return
            record_logger.error(
                "kafka refused a record for %s (%s); sending it to the dead-letter topic",
                kafka_topic,
                exc.detail,
            )
            self.dead_letter(
                incoming,
                reason="kafka-rejected",
                detail=f"topic {kafka_topic}: {exc.detail} ({len(value)} bytes)",
            )

    @staticmethod
    def _incoming(message: Publish, pending: Pending | None, seq: int) -> Incoming:
        return Incoming(message, pending, mqtt_headers(message), seq)

    @staticmethod
    def _count_received(route: RouteCounters, message: Publish) -> None:
        route.received += 1
        route.received_bytes += len(message.payload)

    def batch_refused(self, incoming: Incoming, *, topic: str, why: str) -> None:
        """Kafka refused the batch this record was in for size (the topic's ``max.message.bytes``).

        librdkafka fails every record of the batch, so small ones fail beside the one too large:
        each is tried again by itself, one at a time and in arrival order; only one refused alone
        goes to the dead-letter topic.
        """
        self._holds.hold(
            topic,
            incoming.seq,
            why,
            lambda: self.produce(incoming, again=True, alone=True),
            give_up=None,
            alone=True,
        )

    def learn_limit(self, topic: str, refused_size: int) -> None:
        """Kafka refused a record of ``refused_size`` bytes sent alone: the topic takes less."""
        known = self.limits.get(topic)
        if known is None or refused_size <= known:
            self.limits[topic] = refused_size - 1
            logger.warning(
                "kafka topic %s takes records below %d bytes; larger ones go to the dead-letter topic "
                "before they are produced",
                topic,
                refused_size,
            )

    def alone_done(self, topic: str) -> None:
        """The record tried by itself has its answer: the next held one may go."""
        held = self._held.get(topic)
        if held is not None:
            held.busy = False

    def topic_missing(self, incoming: Incoming, *, topic: str, why: str) -> None:
        """Kafka or librdkafka calls ``topic`` unknown: hold the message, retry it, dead-letter it late."""
        self._holds.hold(
            topic,
            incoming.seq,
            why,
            lambda: self.produce(incoming, again=True),
            give_up=lambda: self.dead_letter(
                incoming,
                reason="kafka-topic-missing",
                detail=f"topic {topic}: {why}, for longer than errors.retry.timeout.ms",
            ),
        )

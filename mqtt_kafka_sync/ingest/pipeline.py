"""Where an MQTT message becomes a Kafka record.

Runs on the subscriber's network thread, so every step here is short and never blocks: route the
topic (cached), encode the value, hand the record to librdkafka. A message that cannot be routed or
decoded becomes a dead-letter record with the reason in its headers; it is acknowledged to MQTT only
once the dead-letter record is in Kafka, like any other.

Nothing a message carries can stop the pipeline: a topic longer than ``mqtt.topic.max.length``, a
record librdkafka refuses at once (above ``message.max.bytes``), a device property that names one of
the bridge's own headers (renamed ``mqtt.user.<name>``), an encoder that fails in an unforeseen
way: each becomes a dead-letter record or a renamed header, and the next message flows. A Kafka topic
librdkafka calls unknown holds only that topic's records back (:class:`_Held`), retried with backoff
on the network thread's ticks, and dead-letters them as ``kafka-topic-missing`` once
``errors.retry.timeout.ms`` has passed (``-1``: never). A fatal producer error ends the task process,
which the supervisor restarts.

Metrics cost the hot path a few attribute increments per message (per-route counters on a slotted
object found by the route's name) and one histogram bisect per delivery report (Kafka's own latency
figure); nothing is allocated for them. The task's stats loop reads :class:`IngestStats` twice a
second (``telemetry/probe.py``).
"""

from __future__ import annotations

import bisect
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError

from mqtt_kafka_sync.errors import KafkaDeliveryError, MessageError
from mqtt_kafka_sync.ingest.acks import AckTracker, Pending
from mqtt_kafka_sync.ingest.routes import IngestRoutes
from mqtt_kafka_sync.kafka.dead_letter_copy import clip, fit, record_size, stub
from mqtt_kafka_sync.kafka.producer import DeliveryCallback, Headers
from mqtt_kafka_sync.logs import per_record_logger
from mqtt_kafka_sync.mqtt.packets import Publish
from mqtt_kafka_sync.telemetry import registry
from mqtt_kafka_sync.telemetry.catalog import UNROUTED
from mqtt_kafka_sync.telemetry.counters import Buckets, RouteCounters
from mqtt_kafka_sync.throttle.pacing import PacedAcks

logger = logging.getLogger(__name__)
record_logger = per_record_logger(__name__)
"""Failures that can hit every message: one line per kind and minute, with the count held back."""

_QOS = (b"0", b"1", b"2")
DELIVERY_POLL_INTERVAL = 0.002
"""Seconds the network loop sleeps at most while Kafka deliveries are outstanding."""
IDLE_POLL_INTERVAL = 1.0
"""Seconds the network loop sleeps at most while nothing is outstanding."""
_RETAIN = (b"false", b"true")
RESERVED_HEADER_PREFIXES = ("mqtt.", "dlq.", "kafka.", "replay.")
"""Header names the bridge writes itself. A device's MQTT 5 user property with such a name is passed
on as ``mqtt.user.<name>``, so a consumer reading the last ``mqtt.topic`` header reads ours."""
DEVICE_PROPERTY_PREFIX = "mqtt.user."
HOLD_FIRST_DELAY = 0.1
HOLD_MAX_DELAY = 10.0
"""Seconds between tries of a held topic: doubling from the first to the max, with jitter."""
_SIZE_REFUSALS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE})
STUB_TRIES = 3
"""Stubs of one dead-letter copy sent at most: a stub only fails in a batch with a larger record."""
LIMIT_SLACK_BYTES = 4_096
"""Below a topic's limit by more than this (value and key alone), a record is not measured further."""
TOPIC_MISSING = frozenset(
    {KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION}
)
"""Delivery errors that say the topic is gone (deleted mid-run, never created): held and retried."""


def device_properties(properties: list[tuple[str, str]]) -> Headers:
    """MQTT 5 user properties as headers, reserved names renamed ``mqtt.user.<name>``."""
    return [
        (DEVICE_PROPERTY_PREFIX + name if name.startswith(RESERVED_HEADER_PREFIXES) else name, value)
        for name, value in properties
    ]


class Sink(Protocol):
    """:class:`mqtt_kafka_sync.kafka.producer.KafkaSink`, as the pipeline uses it."""

    max_message_bytes: int
    topic_limits: dict[str, int]
    """Kafka topic -> its ``max.message.bytes`` where below :attr:`max_message_bytes`; the pipeline
    lowers one when Kafka refuses a record for size."""

    def produce(
        self, topic: str, value: bytes, key: bytes | None, headers: Headers, on_delivery: DeliveryCallback
    ) -> None: ...

    def poll(self, timeout: float = 0.0) -> int: ...

    def __len__(self) -> int: ...


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
    held: int = 0
    """Records waiting for a Kafka topic that librdkafka calls unknown (now)."""
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
    ) -> None:
        """``retry_timeout``: seconds a topic librdkafka calls unknown is retried before its records
        are dead-lettered (None: for ever)."""
        self._connector = connector
        self._topic_max_length = topic_max_length
        self._retry_timeout = retry_timeout
        self._held: dict[str, _Held] = {}
        self.limits = sink.topic_limits
        """Kafka topic -> its ``max.message.bytes``, where known (read at start, learned from
        refusals): a record above it is dead-lettered before it is produced, so it never fails the
        records batched with it."""
        self._retrying: str | None = None
        self._owns_sink = owns_sink
        self._pacer = pacer
        self._routes = routes
        self._sink = sink
        self._tracker = tracker
        self._dlq = dlq_topic
        self._on_stuck = on_stuck
        self.stats = IngestStats()
        registry.track_ingest(connector, self.stats, tracker)

    # -- MessageHandler -------------------------------------------------------------------------
    def on_connected(self, generation: int, session_present: bool) -> None:
        self._tracker.reset()
        for held in self._held.values():  # the broker sends them again on this connection
            self.stats.held -= len(held.waiting)
            held.waiting.clear()
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
        if self._held:
            wait = min(wait, self._retry_held(time.monotonic()))
        if self._pacer is not None:
            paced = self._pacer.flush()
            if paced is not None:
                wait = paced if wait is None else min(wait, paced)
        return wait

    def on_message(self, message: Publish, generation: int) -> None:
        self.stats.received += 1
        seq = self.stats.received
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
            headers.extend(device_properties(message.user_properties))
        if len(message.topic) > self._topic_max_length:
            self._dead_letter(
                message.topic,
                message.payload,
                headers,
                pending,
                reason="topic-too-long",
                detail=f"topic of {len(message.topic)} characters, above mqtt.topic.max.length "
                f"{self._topic_max_length}",
                seq=seq,
            )
            return
        self.produce(message, pending, headers, seq)

    def produce(
        self,
        message: Publish,
        pending: Pending | None,
        headers: Headers,
        seq: int,
        *,
        again: bool = False,
        alone: bool = False,
    ) -> None:
        """Route, encode and produce one message (``again``: after a retriable delivery failure).

        ``seq`` is the message's place in arrival order: what is held back is retried in that order.
        ``alone``: the record is retried by itself after its batch was refused for size.
        """
        try:
            match = self._routes.route(message.topic)
        except MessageError as exc:
            if not again:
                unrouted = self.stats.routes[UNROUTED]
                unrouted.received += 1
                unrouted.received_bytes += len(message.payload)
            self._dead_letter(
                message.topic,
                message.payload,
                headers,
                pending,
                reason=exc.reason,
                detail=exc.detail,
                seq=seq,
            )
            return
        route = self.stats.routes[match.route_name]
        if not again:
            route.received += 1
            route.received_bytes += len(message.payload)
        try:
            value = self._routes.encode(match, message.payload, message.topic)
        except MessageError as exc:
            self._dead_letter(
                message.topic,
                message.payload,
                headers,
                pending,
                reason=exc.reason,
                detail=exc.detail,
                seq=seq,
            )
            return
        except Exception as exc:  # an encoder fault must cost one message, never the task
            record_logger.exception(
                "route %s could not encode a message of %s", match.route_name, clip(message.topic)
            )
            self._dead_letter(
                message.topic,
                message.payload,
                headers,
                pending,
                reason="internal-error",
                detail=f"{type(exc).__name__}: {exc}",
                seq=seq,
            )
            return
        topic = match.kafka_topic
        limit = self.limits.get(topic)
        if limit is not None and len(value) + len(match.key) + LIMIT_SLACK_BYTES > limit:
            size = record_size(value, match.key, headers)
            if size > limit:
                self._dead_letter(
                    message.topic,
                    message.payload,
                    headers,
                    pending,
                    reason="kafka-rejected",
                    detail=f"topic {topic}: a record of about {size} bytes, above the topic's "
                    f"max.message.bytes {limit}",
                    seq=seq,
                )
                return
        if self._held and self._held_back(
            topic, seq, lambda: self.produce(message, pending, headers, seq, again=True)
        ):
            return
        try:
            self._sink.produce(
                topic,
                value,
                match.key,
                headers,
                _Delivery(self, pending, message, headers, route, seq=seq, topic=topic, alone=alone),
            )
        except KafkaDeliveryError as exc:
            if exc.fatal:
                raise
            if exc.retriable:
                self.topic_missing(message, pending, headers, seq, topic=topic, why=exc.detail)
                return
            record_logger.error(
                "kafka refused a record for %s (%s); sending it to the dead-letter topic", topic, exc.detail
            )
            self._dead_letter(
                message.topic,
                message.payload,
                headers,
                pending,
                reason="kafka-rejected",
                detail=f"topic {topic}: {exc.detail} ({len(value)} bytes)",
                seq=seq,
            )

    def batch_refused(
        self, message: Publish, pending: Pending | None, headers: Headers, seq: int, *, topic: str, why: str
    ) -> None:
        """Kafka refused the batch this record was in for size (the topic's ``max.message.bytes``).

        librdkafka fails every record of the batch, so small ones fail beside the one too large:
        each is tried again by itself, one at a time and in arrival order; only one refused alone
        goes to the dead-letter topic.
        """
        self._hold(
            topic,
            seq,
            why,
            lambda: self.produce(message, pending, headers, seq, again=True, alone=True),
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

    def topic_missing(
        self, message: Publish, pending: Pending | None, headers: Headers, seq: int, *, topic: str, why: str
    ) -> None:
        """Kafka or librdkafka calls ``topic`` unknown: hold the message, retry it, dead-letter it late."""
        self._hold(
            topic,
            seq,
            why,
            lambda: self.produce(message, pending, headers, seq, again=True),
            give_up=lambda: self._dead_letter(
                message.topic,
                message.payload,
                headers,
                pending,
                reason="kafka-topic-missing",
                detail=f"topic {topic}: {why}, for longer than errors.retry.timeout.ms",
                seq=seq,
            ),
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
                self._sink.max_message_bytes, self.limits.get(self._dlq, self._sink.max_message_bytes)
            )
            value, key_out, dlq_headers = fit(payload, key, dlq_headers, limit)

        def again(next_stubs: int = stubs) -> None:
            self._dead_letter(
                mqtt_topic, payload, headers, pending, reason=reason, detail=detail, seq=seq, stubs=next_stubs
            )

        def again_small() -> None:
            again(stubs + 1)

        if self._held and self._held_back(self._dlq, seq, again):
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
                self._hold(self._dlq, seq, exc.detail, again, give_up=None)
            elif stubs < STUB_TRIES:
                again_small()
            else:
                self._refused(pending, exc.detail)

    def _refused(self, pending: Pending | None, why: str) -> None:
        """Not even the dead-letter topic takes it: never ack; reconnect so the broker redelivers."""
        self.stats.dead_letter_refused += 1
        record_logger.error(
            "dead-letter topic %s refused a record (%s); the MQTT message stays unacknowledged",
            self._dlq,
            why,
        )
        self._on_stuck(f"dead-letter topic refused a record: {why}")

    # -- topics librdkafka calls unknown ------------------------------------------------------------
    def _held_back(self, topic: str, seq: int, retry: Callable[[], None]) -> bool:
        """Queue ``retry`` among the records already held for ``topic``, in arrival order."""
        held = self._held.get(topic)
        if held is None or self._retrying == topic:
            return False
        held.add(seq, retry)
        self.stats.held += 1
        return True

    def _hold(
        self,
        topic: str,
        seq: int,
        why: str,
        retry: Callable[[], None],
        give_up: Callable[[], None] | None,
        *,
        alone: bool = False,
    ) -> None:
        now = time.monotonic()
        held = self._held.get(topic)
        if held is None and alone:
            held = self._held[topic] = _Held(now, alone=True)
            logger.warning(
                "kafka refused a batch for %s (%s); trying its records again one at a time", topic, why
            )
        elif held is None:
            held = self._held[topic] = _Held(now)
            logger.error(
                "kafka topic %s is unknown to the producer (%s); holding its records, trying again with "
                "backoff%s",
                topic,
                why,
                ""
                if give_up is None or self._retry_timeout is None
                else f", dead-lettering them after {self._retry_timeout:.0f}s",
            )
        if (
            give_up is not None
            and self._retry_timeout is not None
            and now - held.since >= self._retry_timeout
        ):
            give_up()
            return
        if held.alone:
            held.due = now
        elif self._retrying == topic or held.due <= now:
            held.failed(now)
        held.add(seq, retry)
        self.stats.held += 1

    def _retry_held(self, now: float) -> float:
        """Try held topics that are due, in arrival order; the seconds until the next is due."""
        wait = HOLD_MAX_DELAY
        for topic, held in list(self._held.items()):
            if held.due > now:
                wait = min(wait, held.due - now)
                continue
            if held.busy:  # alone: the one in flight has no answer yet
                wait = min(wait, DELIVERY_POLL_INTERVAL)
                continue
            self._retrying = topic
            attempts = held.attempts
            try:
                while held.waiting and held.attempts == attempts and not held.busy:
                    self.stats.held -= 1
                    held.busy = held.alone
                    held.waiting.pop(0)[1]()
            finally:
                self._retrying = None
            if not held.waiting and held.attempts == attempts:
                del self._held[topic]
                if not held.alone:
                    logger.warning("kafka topic %s takes records again", topic)
            else:
                wait = min(wait, max(0.0, held.due - now))
        return wait

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

    __slots__ = ("_alone", "_headers", "_message", "_pending", "_pipeline", "_route", "_seq", "_topic")

    def __init__(
        self,
        pipeline: IngestPipeline,
        pending: Pending | None,
        message: Publish,
        headers: Headers,
        route: RouteCounters,
        *,
        seq: int,
        topic: str,
        alone: bool,
    ) -> None:
        self._seq = seq
        self._topic = topic
        self._alone = alone
        self._pipeline = pipeline
        self._pending = pending
        self._message = message
        self._headers = headers
        self._route = route

    def __call__(self, err: KafkaError | None, record: Any) -> None:
        pipeline = self._pipeline
        if self._alone:
            pipeline.alone_done(self._topic)
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
        topic = self._topic
        where = f"{topic} [{record.partition()}]" if record is not None else topic
        if err.code() in _SIZE_REFUSALS and self._alone and record is not None:
            pipeline.learn_limit(topic, record_size(record.value() or b"", record.key(), self._headers))
        if err.code() in _SIZE_REFUSALS and not self._alone:
            pipeline.stats.retried += 1
            pipeline.batch_refused(
                self._message, self._pending, self._headers, self._seq, topic=topic, why=err.str()
            )
            return
        if err.code() in TOPIC_MISSING:
            pipeline.stats.retried += 1
            pipeline.topic_missing(
                self._message, self._pending, self._headers, self._seq, topic=topic, why=err.str()
            )
            return
        if err.retriable() or err.code() == KafkaError._MSG_TIMED_OUT:
            pipeline.stats.retried += 1
            record_logger.warning("kafka delivery to %s failed (%s); producing again", where, err.str())
            pipeline.produce(self._message, self._pending, self._headers, self._seq, again=True)
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
            seq=self._seq,
        )


class _Held:
    """Records of one Kafka topic held back, in arrival order: waiting for librdkafka to know the
    topic, or (``alone``) tried one at a time after Kafka refused a batch of them for size."""

    __slots__ = ("alone", "attempts", "busy", "due", "since", "waiting")

    def __init__(self, now: float, *, alone: bool = False) -> None:
        self.alone = alone
        self.busy = False
        """``alone``: one record is in flight; the next waits for its answer."""
        self.since = now
        self.attempts = 0
        self.due = now
        self.waiting: list[tuple[int, Callable[[], None]]] = []
        """``(arrival seq, retry)``, sorted: a record whose delivery failed after later ones were
        held still goes back to its place."""

    def add(self, seq: int, retry: Callable[[], None]) -> None:
        bisect.insort(self.waiting, (seq, retry), key=lambda entry: entry[0])

    def failed(self, now: float) -> None:
        self.attempts += 1
        delay = min(HOLD_MAX_DELAY, HOLD_FIRST_DELAY * 2 ** min(self.attempts, 20))
        self.due = now + delay * random.uniform(0.5, 1.0)


class _DlqDelivery:
    __slots__ = ("_pending", "_pipeline", "_reason", "_retry_small")

    def __init__(
        self,
        pipeline: IngestPipeline,
        pending: Pending | None,
        reason: str,
        retry_small: Callable[[], None] | None,
    ) -> None:
        self._pipeline = pipeline
        self._pending = pending
        self._reason = reason
        self._retry_small = retry_small

    def __call__(self, err: KafkaError | None, record: Any) -> None:
        if err is None:
            self._pipeline._dead_lettered(self._pending, self._reason)
        elif err.code() in _SIZE_REFUSALS and self._retry_small is not None:
            # The dead-letter topic takes less than the producer (its max.message.bytes), or the copy
            # was batched with one that was too large: a stub, again.
            self._retry_small()
        else:
            self._pipeline._refused(self._pending, err.str())

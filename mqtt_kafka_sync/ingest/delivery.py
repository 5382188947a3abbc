"""Kafka's answer for one data record of the ingest pipeline: its delivery report.

Called by librdkafka through ``poll(0)`` on the subscriber's network thread, once per record: on
success it counts and releases the MQTT acknowledgement, and that path is kept to a few attribute
increments and one call. A failure goes back to the pipeline: retried, held, or dead-lettered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError

from mqtt_kafka_sync.ingest.acks import AckTracker, Pending
from mqtt_kafka_sync.ingest.headers import mqtt_headers
from mqtt_kafka_sync.ingest.stats import IngestStats
from mqtt_kafka_sync.kafka.dead_letter_copy import record_size
from mqtt_kafka_sync.kafka.producer import PURGED, SIZE_REFUSALS, Headers
from mqtt_kafka_sync.logs import per_record_logger
from mqtt_kafka_sync.mqtt.packets import Publish
from mqtt_kafka_sync.telemetry.counters import RouteCounters

record_logger = per_record_logger("mqtt_kafka_sync.ingest.pipeline")
"""The pipeline's per-record logger (one line per kind and minute): the name kept from before the split."""

TOPIC_MISSING = frozenset(
    {KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION}
)
"""Delivery errors that say the topic is gone (deleted mid-run, never created): held and retried."""


@dataclass(slots=True)
class Incoming:
    """One MQTT message on its way to Kafka, as every retry, hold and dead-letter copy needs it.

    Built only on a failure path (a dead letter, a hold, a retry), never on the way of a message
    that Kafka takes at once: that path keeps the four parts apart (:class:`Delivery` holds them),
    because one more garbage-collected object per message made the collector run more often and
    promote more, which cost the ingest path about a fifth of its CPU. Never changed once built.
    """

    message: Publish
    pending: Pending | None
    """Its place among the acknowledgements (None for QoS 0)."""
    headers: Headers
    """Its ``mqtt.*`` headers and the device's user properties."""
    seq: int
    """Its place in arrival order: what is held back is retried in that order."""


class Pipeline(Protocol):
    """What a delivery report calls: :class:`~mqtt_kafka_sync.ingest.pipeline.IngestPipeline`."""

    @property
    def stats(self) -> IngestStats: ...

    @property
    def tracker(self) -> AckTracker: ...

    def alone_done(self, topic: str) -> None: ...

    def learn_limit(self, topic: str, refused_size: int) -> None: ...

    def batch_refused(self, incoming: Incoming, *, topic: str, why: str) -> None: ...

    def topic_missing(self, incoming: Incoming, *, topic: str, why: str) -> None: ...

    def produce(self, incoming: Incoming, *, again: bool = False, alone: bool = False) -> None: ...

    def dead_letter(self, incoming: Incoming, *, reason: str, detail: str, stubs: int = 0) -> None: ...


class Delivery:
    """Delivery report of a data record: ack on success, dead-letter what Kafka refuses for good.

    One is built for every record produced: six slots, and ``alone`` a class attribute
    (:class:`DeliveryAlone`) rather than a seventh.
    """

    __slots__ = ("_message", "_pending", "_pipeline", "_route", "_seq", "_topic")
    _alone = False
    """True for a record tried by itself after its batch was refused for size."""

    def __init__(
        self,
        pipeline: Pipeline,
        message: Publish,
        pending: Pending | None,
        route: RouteCounters,
        seq: int,
        *,
        topic: str,
    ) -> None:
        """The parts of :class:`Incoming`, kept apart: it is built only if the delivery fails. Not
        the headers: librdkafka holds its own copy, and a failure builds them again (``headers.py``)."""
        self._pipeline = pipeline
        self._message = message
        self._pending = pending
        self._route = route
        self._seq = seq
        self._topic = topic

    def __call__(self, err: KafkaError | None, record: Any) -> None:
        pipeline = self._pipeline
        if self._alone:
            pipeline.alone_done(self._topic)
        if err is None:  # Kafka has the record: count it, release its acknowledgement
            route = self._route
            route.delivered += 1
            route.delivered_bytes += len(record)
            stats = pipeline.stats
            stats.produced += 1
            latency = record.latency()
            if latency is not None:
                stats.delivery_latency.observe(latency)
            if self._pending is not None:
                pipeline.tracker.done(self._pending)
            return
        if err.code() in PURGED:
            # Taken back from the producer (ShardedWorker, a shard lost): never written. Its MQTT
            # message stays unacknowledged in a session this task no longer runs, so the broker
            # sends it again to that session's next owner; nothing to do here.
            return
        pipeline.stats.delivery_failures += 1
        topic = self._topic
        incoming = Incoming(self._message, self._pending, mqtt_headers(self._message), self._seq)
        where = f"{topic} [{record.partition()}]" if record is not None else topic
        if err.code() in SIZE_REFUSALS and self._alone and record is not None:
            pipeline.learn_limit(topic, record_size(record.value() or b"", record.key(), incoming.headers))
        if err.code() in SIZE_REFUSALS and not self._alone:
            pipeline.stats.retried += 1
            pipeline.batch_refused(incoming, topic=topic, why=err.str())
            return
        if err.code() in TOPIC_MISSING:
            pipeline.stats.retried += 1
            pipeline.topic_missing(incoming, topic=topic, why=err.str())
            return
        if err.retriable() or err.code() == KafkaError._MSG_TIMED_OUT:
            pipeline.stats.retried += 1
            record_logger.warning("kafka delivery to %s failed (%s); producing again", where, err.str())
            pipeline.produce(incoming, again=True)
            return
        record_logger.error(
            "kafka refused a record for %s (%s); sending it to the dead-letter topic", where, err.str()
        )
        pipeline.dead_letter(incoming, reason="kafka-rejected", detail=f"topic {topic}: {err.str()}")


class DeliveryAlone(Delivery):
    """:class:`Delivery` of a record tried by itself: its answer lets the next held record go."""

    __slots__ = ()
    _alone = True

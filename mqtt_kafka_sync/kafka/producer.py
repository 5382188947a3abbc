"""The idempotent Kafka producer every ingest task uses, and the thread that serves its callbacks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from mqtt_kafka_sync.config.common_keys import PRODUCER_GUARANTEE  # not config.spec: it loads fastavro
from mqtt_kafka_sync.errors import KafkaDeliveryError
from mqtt_kafka_sync.kafka.connection_state import STATISTICS_INTERVAL_MS, ConnectionReports, ConnectionState
from mqtt_kafka_sync.kafka.settings import Kafka, client_settings

logger = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]
DeliveryCallback = Callable[[KafkaError | None, Any], None]
SIZE_REFUSALS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE})
"""Delivery errors that say a record (or the batch it was in) is larger than the topic takes."""
PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})
"""Delivery errors of records :meth:`KafkaSink.purge` took back: never written, never to be acknowledged."""


GUARANTEE_SETTINGS = PRODUCER_GUARANTEE
"""These settings carry the delivery guarantee; the config loader refuses overrides of them."""


DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes``: the largest record the producer sends."""

RETRIABLE_AT_PRODUCE = frozenset(
    {KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION}
)
"""Errors ``produce()`` raises that can clear by themselves (a topic being created)."""


def produce_error(exc: KafkaException, topic: str) -> KafkaDeliveryError:
    """What ``produce()`` raised, as our error: ``retriable`` for a topic that may yet appear.

    librdkafka refuses some records in ``produce()`` itself instead of in a delivery report: one
    above ``message.max.bytes`` (``MSG_SIZE_TOO_LARGE``), one for a topic it knows to be missing
    (``_UNKNOWN_TOPIC``), a fatal idempotence error (``_FATAL``).
    """
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if err is None:
        return KafkaDeliveryError(str(exc), topic=topic)
    retriable = err.code() in RETRIABLE_AT_PRODUCE or (err.retriable() and not err.fatal())
    return KafkaDeliveryError(err.str(), topic=topic, retriable=retriable, code=err.code(), fatal=err.fatal())


DEFAULT_BATCH_BYTES = 262_144
BATCH_MARGIN_BYTES = 1_024


def fit_batches(config: dict[str, str], topic_limits: Mapping[str, int]) -> dict[str, str]:
    """``config`` with ``batch.size`` below the smallest topic limit, when one is below it.

    A topic's ``max.message.bytes`` bounds a whole record batch, and librdkafka knows nothing of it:
    two records that each fit, batched together, were refused together (and every record of that
    batch with them). librdkafka keeps a batch of several records within ``batch.size``.
    """
    if not topic_limits:
        return config
    smallest = min(topic_limits.values()) - BATCH_MARGIN_BYTES
    batch = int(config.get("batch.size", DEFAULT_BATCH_BYTES))
    if 0 < smallest < batch:
        logger.info(
            "batch.size %d -> %d: a topic of this task takes at most %d bytes", batch, smallest, smallest
        )
        return {**config, "batch.size": str(smallest)}
    return config


def producer_config(
    kafka: Kafka, client_id: str, defaults: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The idempotent producer's settings: ours, ``defaults``, the connection's, the guarantee."""
    ours = {
        "client.id": client_id,
        "linger.ms": "5",
        "batch.size": "262144",
        # 0 = never give up on a record locally: while Kafka is down the record waits, its MQTT ack
        # waits with it, and the broker's flow control keeps the rest of the backlog on the broker.
        "message.timeout.ms": "0",
        "queue.buffering.max.messages": "200000",
        "socket.nagle.disable": "true",
        "statistics.interval.ms": STATISTICS_INTERVAL_MS,
        **(defaults or {}),
    }
    return {**client_settings(kafka, "producer", ours), **GUARANTEE_SETTINGS}


class KafkaSink(ConnectionReports):
    """The producer of a task. Delivery reports run in whichever thread calls :meth:`poll`.

    An ingest task polls from its MQTT network thread (``IngestPipeline.on_tick``): confluent-kafka
    takes the GIL once per delivery report, and a separate poll thread made the two threads hand
    the GIL back and forth for every message.

    For metrics and readiness: :attr:`kafka_up` says whether a broker connection is up (from
    librdkafka's statistics every ``statistics.interval.ms``, and false at once when it reports all
    brokers down); :attr:`errors` counts the errors librdkafka reported.
    """

    def __init__(self, config: Mapping[str, str], topic_limits: Mapping[str, int] | None = None) -> None:
        self.max_message_bytes = int(config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))
        """The largest record this producer sends (its ``message.max.bytes``)."""
        self.topic_limits: dict[str, int] = {
            topic: limit for topic, limit in (topic_limits or {}).items() if limit < self.max_message_bytes
        }
        """Kafka topic -> its ``max.message.bytes`` where known and below :attr:`max_message_bytes`
        (read at start, learned from refusals; shared by every pipeline producing through this
        sink). Topics that take what the producer sends are not listed: nothing to check."""
        self.connection = ConnectionState(f"kafka producer {config.get('client.id', '')}".rstrip(), config)
        self._producer = Producer(
            dict(config),
            error_cb=self._on_error,
            stats_cb=self.connection.on_stats,
            logger=logging.getLogger("librdkafka"),
        )
        self.last_error: KafkaError | None = None

    def produce(
        self, topic: str, value: bytes, key: bytes | None, headers: Headers, on_delivery: DeliveryCallback
    ) -> None:
        """Hand one record to librdkafka; its delivery report comes through :meth:`poll`.

        Raises :class:`~mqtt_kafka_sync.errors.KafkaDeliveryError` when librdkafka refuses the
        record at once (too large, unknown topic, fatal state); ``on_delivery`` is then never called.
        """
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                # Local queue full: serve deliveries. Bounded by MQTT flow control, so rare.
                self._make_room()
            except KafkaException as exc:
                raise produce_error(exc, topic) from None

    def warm_up(self, topics: list[str], timeout: float = 5.0) -> None:
        """Fetch metadata for ``topics`` now, so the first records do not wait for it.

        Without this the first messages after start-up waited ~80 ms for metadata and the
        idempotent producer id. Kafka being down is not an error here: records wait as usual.
        """
        for topic in topics:
            try:
                self._producer.list_topics(topic, timeout=timeout)
            except KafkaException as exc:
                logger.debug("metadata for %s not available yet: %s", topic, exc)
                return

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery reports (and errors); returns how many events were served."""
        return int(self._producer.poll(timeout))

    def _make_room(self) -> None:
        self._producer.poll(0.05)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding deliveries; returns how many are still outstanding."""
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 5.0) -> int:
        return self.flush(timeout)

    def purge(self) -> None:
        """Take back every record not yet confirmed, queued or in flight; none of them is written
        after this (one already written whose answer had not come is the exception: unknowable).

        Their delivery reports (``PURGED``) come through the next :meth:`poll`. The idempotent
        producer carries on: librdkafka bumps its epoch over the sequence gap the purge leaves.
        """
        self._producer.purge(in_queue=True, in_flight=True, blocking=True)

    def __len__(self) -> int:
        return len(self._producer)

    def __bool__(self) -> bool:
        """Always true: with ``__len__`` alone an idle producer was falsy, and ``sink or KafkaSink(...)``
        quietly built a second producer nobody polled (issue 17's stuck adoption)."""
        return True

    def _on_error(self, err: KafkaError) -> None:
        self.last_error = err
        if self.connection.on_error(err):
            return  # a refusal (authentication, TLS): logged once per episode by the state
        if err.fatal():
            logger.error("kafka producer fatal error: %s", err)
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            logger.warning("kafka: all brokers down (%s); holding MQTT acknowledgements", err.str())
        else:
            logger.debug("kafka producer error: %s", err)


SERVE_BUSY_S = 0.002
"""The poller's wait between polls while records are out (the ingest pipeline's own interval)."""
SERVE_WATCH_S = 0.05
"""Another thread's wait while its records are out: long enough to cost nothing, short enough
to take over within a blink from a poller that stopped (a drained shard, a broken connection)."""
SERVE_IDLE_S = 1.0
POLLER_STALE_S = 0.02
"""A poller that has not polled for this long has stopped polling: the next caller takes over."""


class SharedKafkaSink(KafkaSink):
    """One producer for several pipelines (a sharded task's shards), each on its own network thread.

    One of those threads polls it at a time, the *poller*, and so serves every pipeline's delivery
    reports (each report carries its pipeline: the acknowledgement reaches the right session, whose
    thread is woken to send it). The others only watch, every :data:`SERVE_WATCH_S`, and the first
    to find the poller :data:`POLLER_STALE_S` late takes its place. Every thread polling every 2 ms
    cost ten shards nearly twice the CPU per message of one session; a thread of its own for the
    reports makes two threads take turns with the GIL for every message (``KafkaSink``).
    """

    def __init__(self, config: Mapping[str, str], topic_limits: Mapping[str, int] | None = None) -> None:
        super().__init__(config, topic_limits)
        self._polling = threading.RLock()
        """Held while serving reports (re-entrant: a report's retry may find the queue full)."""
        self._poller = 0
        self._polled_at = 0.0

    def serve(self, in_flight: int) -> float:
        """A network thread's tick: poll when it is this thread's turn; returns its wait, in seconds.

        ``in_flight``: the caller's own records Kafka has not confirmed yet.
        """
        now = time.monotonic()
        me = threading.get_ident()
        if (self._poller != me and now - self._polled_at < POLLER_STALE_S) or not self._polling.acquire(
            blocking=False
        ):
            return SERVE_WATCH_S if in_flight else SERVE_IDLE_S
        try:
            self._poller, self._polled_at = me, now
            self._producer.poll(0)
        finally:
            self._polling.release()
        return SERVE_BUSY_S if in_flight or len(self._producer) else SERVE_IDLE_S

    def poll(self, timeout: float = 0.0) -> int:
        """Serve reports now unless another thread does (a stop, a task owning no shard)."""
        if not self._polling.acquire(blocking=False):
            return 0
        try:
            return int(self._producer.poll(timeout))
        finally:
            self._polling.release()

    def _make_room(self) -> None:
        with self._polling:
            self._producer.poll(0.05)

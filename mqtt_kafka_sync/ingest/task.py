"""One ingest task: an MQTT session in the shared group feeding one idempotent producer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from mqtt_kafka_sync.config.model import SourceConnectorConfig
from mqtt_kafka_sync.ingest.acks import AckTracker
from mqtt_kafka_sync.ingest.pipeline import IngestPipeline
from mqtt_kafka_sync.ingest.routes import IngestRoutes
from mqtt_kafka_sync.kafka.admin import topic_message_limits
from mqtt_kafka_sync.kafka.producer import KafkaSink, SharedKafkaSink, fit_batches, producer_config
from mqtt_kafka_sync.mqtt.packets import Will
from mqtt_kafka_sync.mqtt.subscriber import MessageHandler, MqttSubscriber, SubscriberSettings
from mqtt_kafka_sync.telemetry.registry import PipelineRegistry
from mqtt_kafka_sync.throttle.pacing import AckThrottle, PacedAcks

logger = logging.getLogger(__name__)

PAUSE_SEEN_S = 1.0
"""How long a drain waits at most for the network thread to turn once after the pause."""
LIMITS_TIMEOUT_S = 3.0
"""How long a starting task waits for the topics' max.message.bytes (Kafka down: learned later)."""
HandlerWrapper = Callable[[IngestPipeline], MessageHandler]


def subscriber_settings(
    config: SourceConnectorConfig,
    client_id: str,
    will: Will | None,
    *,
    subscribe: bool = True,
    control_filters: tuple[str, ...] = (),
    filters: tuple[str, ...] | None = None,
) -> SubscriberSettings:
    """``filters``: what to subscribe instead of the shared filters (a shard's own filter)."""
    if filters is None:
        filters = config.shared_filters()
    return SubscriberSettings(
        host=config.mqtt.server.host,
        port=config.mqtt.server.port,
        client_id=client_id,
        filters=filters if subscribe else (),
        control_filters=control_filters,
        qos=config.mqtt_qos,
        keepalive=config.mqtt.keepalive_seconds,
        session_expiry=config.mqtt.session_expiry_seconds,
        receive_maximum=config.mqtt_receive_maximum,
        receive_maximum_bytes=config.mqtt_receive_maximum_bytes,
        connect_timeout=config.mqtt.connect_timeout_seconds,
        username=config.mqtt.username,
        password=config.mqtt.password.reveal() if config.mqtt.password is not None else None,
        will=will,
        tls=config.mqtt.tls,
    )


def static_topics(config: SourceConnectorConfig) -> list[str]:
    """The Kafka topics known before any message: the routes' fixed ones and the dead-letter topic."""
    routed = dict.fromkeys(r.kafka_topic for r in config.routes if "{" not in r.kafka_topic)
    return [*routed, config.dlq_topic]


S = TypeVar("S", bound=KafkaSink)


def task_sink(config: SourceConnectorConfig, client_id: str, sink_class: type[S]) -> S:
    """The idempotent producer of a task (or of a sharded task's shards: ``SharedKafkaSink``).

    Records above a topic's own max.message.bytes are dead-lettered before they are produced, and
    batches kept below it: Kafka refuses a batch above it whole.
    """
    settings = producer_config(config.kafka, client_id)
    limits = topic_message_limits(settings, static_topics(config), timeout=LIMITS_TIMEOUT_S)
    return sink_class(fit_batches(settings, limits), limits)


class IngestTask:
    """Builds and runs the pieces of one task; :meth:`drain` stops it without losing anything."""

    def __init__(
        self,
        config: SourceConnectorConfig,
        index: int,
        *,
        will: Will | None = None,
        client_id: str | None = None,
        sink: KafkaSink | None = None,
        subscribe: bool = True,
        control_filters: tuple[str, ...] = (),
        filters: tuple[str, ...] | None = None,
        handler_wrapper: HandlerWrapper | None = None,
        throttle: AckThrottle | None = None,
        telemetry: PipelineRegistry | None = None,
    ) -> None:
        self.config = config
        self.client_id = client_id or config.task_client_id(index)
        self._own_sink = sink is None
        if sink is None:  # not ``sink or ...``: a KafkaSink with nothing outstanding is falsy (len 0)
            sink = task_sink(config, self.client_id, KafkaSink)
        self.sink = sink
        self.pacer = PacedAcks(throttle, self._send_acks) if throttle is not None else None
        self.tracker = AckTracker(send=self.pacer.push if self.pacer is not None else self._send_acks)
        self.pipeline = IngestPipeline(
            config.name,
            IngestRoutes(config.routes, cache_bytes=config.mqtt_topic_cache_max_bytes),
            sink=self.sink,
            tracker=self.tracker,
            dlq_topic=config.dlq_topic,
            on_stuck=self._stuck,
            owns_sink=self._own_sink,
            pacer=self.pacer,
            topic_max_length=config.mqtt_topic_max_length,
            retry_timeout=None
            if config.errors_retry_timeout_ms < 0
            else config.errors_retry_timeout_ms / 1000,
            telemetry=telemetry,
            serve=sink.serve if isinstance(sink, SharedKafkaSink) else None,  # polled in turns with others
        )
        handler: MessageHandler = self.pipeline if handler_wrapper is None else handler_wrapper(self.pipeline)
        settings = subscriber_settings(
            config,
            self.client_id,
            will,
            subscribe=subscribe,
            control_filters=control_filters,
            filters=filters,
        )
        self.subscriber = MqttSubscriber(settings, handler)

    def _send_acks(self, acks: list[tuple[int, int, int]]) -> None:
        self.subscriber.ack(acks)

    def _stuck(self, reason: str) -> None:
        self.subscriber.reconnect(reason)

    def start(self) -> None:
        if self._own_sink:
            self.sink.warm_up(static_topics(self.config))
        self.subscriber.start()

    def _wait_pause_seen(self, until: float) -> None:
        """Until the network thread starts a turn after the pause: until then it may still read
        and dispatch a chunk it took before, whose records the tracker did not hold yet (a drain
        that found the tracker idle then disconnected with them unacknowledged: duplicates)."""
        paused_at = time.monotonic()
        waits = 0
        while self.subscriber.loop_turned_at <= paused_at and time.monotonic() < until:
            if self.subscriber.stopped:
                return
            waits += 1
            if waits % 10 == 0:  # it may have turned (seeing the pause) just before ``paused_at``,
                self.subscriber.pause()  # then sleep for a second: wake it again
            time.sleep(0.002)

    def drain(self, timeout: float, *, session_expiry: int | None = None) -> bool:
        """Stop taking messages, wait for Kafka to confirm what is in flight, ack it, disconnect.

        Returns False when Kafka did not confirm everything in time; those messages stay
        unacknowledged and the broker delivers them again, so nothing is lost either way.
        """
        deadline = time.monotonic() + timeout
        self.subscriber.pause()
        self._wait_pause_seen(min(deadline, time.monotonic() + PAUSE_SEEN_S))
        if self._own_sink:
            self.sink.flush(max(0.0, deadline - time.monotonic()))
        drained = self.tracker.wait_idle(max(0.0, deadline - time.monotonic()))
        if self.pacer is not None:  # confirmed by Kafka: acknowledge now, whatever the pace
            self.pacer.release_all()
        if not drained:
            logger.warning(
                "%s: %d messages not confirmed by Kafka at shutdown; the broker will redeliver them",
                self.client_id,
                self.tracker.in_flight,
            )
        self.subscriber.stop(session_expiry=session_expiry)
        if self._own_sink:
            self.sink.close(timeout=1.0)
        return drained

"""A relay worker: one :class:`RelayTask` on its own thread, with the face the task process expects
of every worker (``start``, ``snapshot``, ``drain``).

``snapshot()`` maps the relay onto the task counters the supervisor reports for every connector:

==================  ===============================================================================
``received``        records read from Kafka
``produced``        commands the MQTT broker acknowledged (PUBACK / PUBCOMP): delivered downstream
``dead_lettered``   records the dead-letter topic confirmed
``acked``           records whose offsets were stored for commit: acknowledged to the source, in order
``subscribed``      1 once the task joined its consumer group and connected to the MQTT broker
==================  ===============================================================================
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time

from mqtt_kafka_sync.config.model import RelayConnectorConfig
from mqtt_kafka_sync.kafka.consumer import CommandConsumer, PartitionsCallback, consumer_config
from mqtt_kafka_sync.kafka.dead_letter import DeadLetters
from mqtt_kafka_sync.kafka.producer import KafkaSink, producer_config
from mqtt_kafka_sync.mqtt.publisher import MqttPublisher, PublisherSettings
from mqtt_kafka_sync.relay.routes import CommandRouter
from mqtt_kafka_sync.relay.task import RelayTask

logger = logging.getLogger(__name__)


class RelayWorker:
    def __init__(self, config: RelayConnectorConfig, index: int, *, exit_on_crash: bool = False) -> None:
        """``exit_on_crash``: end the process when the relay thread dies of an unexpected error, so
        the supervisor starts it again (task processes set it; tools running a worker in-process
        do not)."""
        self.config = config
        self.loop_turned_at = time.monotonic()
        """When the relay thread last turned its loop (metrics: a wedged thread shows)."""
        self.client_id = f"{config.mqtt.client_id}-{index}-{secrets.token_hex(4)}"
        events: queue.SimpleQueue[object] = queue.SimpleQueue()
        settings = PublisherSettings.of(config, self.client_id)
        sink = KafkaSink(producer_config(config.kafka, self.client_id))
        kafka_settings = consumer_config(config, self.client_id)

        def consumer(
            assigned: PartitionsCallback, revoked: PartitionsCallback, lost: PartitionsCallback
        ) -> CommandConsumer:
            return CommandConsumer(
                kafka_settings, config.kafka_topics(), on_assigned=assigned, on_revoked=revoked, on_lost=lost
            )

        self.task = RelayTask(
            config.name,
            CommandRouter(config.routes),
            consumer=consumer,
            publisher=MqttPublisher(settings, events, hold_acks=True),
            dead_letters=DeadLetters(sink, config.dlq_topic, config.name, events),
            events=events,
            max_inflight=config.mqtt_max_inflight,
            max_attempts=config.mqtt_publish_max_attempts,
        )
        self._exit_on_crash = exit_on_crash
        self._stop = threading.Event()
        self._drain_timeout = 30.0
        self._thread = threading.Thread(target=self._run, name=f"relay-{index}", daemon=True)
        self.drained = False
        self.crashed = False

    def start(self) -> None:
        self.task.start()
        self._thread.start()

    def snapshot(self) -> dict[str, int]:
        stats = self.task.stats
        return {
            "received": stats.received,
            "produced": stats.delivered,
            "dead_lettered": stats.dead_lettered,
            "acked": self.task.tracker.finished,
            "subscribed": int(self.task.ready),
        }

    def drain(self, timeout: float) -> bool:
        """Stop, wait up to ``timeout`` for in-flight commands, commit, disconnect; True when every
        published command was acknowledged (the rest are published again by the next owner)."""
        self._drain_timeout = timeout
        self._stop.set()
        self._thread.join(timeout + 15.0)
        return self.drained

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.loop_turned_at = time.monotonic()
                self.task.step()
            self.drained = self.task.drain(self._drain_timeout)
        except Exception:
            logger.exception("%s: relay thread failed", self.client_id)
            self.crashed = True
            if self._exit_on_crash:
                logging.shutdown()
                os._exit(1)

"""The idempotent Kafka producer every ingest task uses, and the thread that serves its callbacks."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, Producer

logger = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]
DeliveryCallback = Callable[[KafkaError | None, Any], None]

# These settings carry the delivery guarantee; the config loader refuses overrides of them.
GUARANTEE_SETTINGS: Mapping[str, str] = {
    "enable.idempotence": "true",
    "acks": "all",
    # murmur2 on the key bytes, as Java's default partitioner does; random for null keys.
    "partitioner": "murmur2_random",
}


def producer_config(bootstrap: str, client_id: str, overrides: Mapping[str, str]) -> dict[str, str]:
    config = {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "linger.ms": "5",
        # 0 = never give up on a record locally: while Kafka is down the record waits, its MQTT ack
        # waits with it, and the broker's flow control keeps the rest of the backlog on the broker.
        "message.timeout.ms": "0",
        "queue.buffering.max.messages": "200000",
        "socket.nagle.disable": "true",
    }
    config.update(overrides)
    config.update(GUARANTEE_SETTINGS)
    return config


class KafkaSink:
    """A producer plus a thread that polls it, so delivery callbacks run off the MQTT thread."""

    def __init__(self, config: Mapping[str, str]) -> None:
        self._producer = Producer(
            dict(config), error_cb=self._on_error, logger=logging.getLogger("librdkafka")
        )
        self._running = True
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._thread.start()
        self.last_error: KafkaError | None = None

    def produce(
        self, topic: str, value: bytes, key: bytes | None, headers: Headers, on_delivery: DeliveryCallback
    ) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:
                # Local queue full: wait for deliveries. Bounded by MQTT flow control, so rare.
                self._producer.poll(0.05)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding deliveries; returns how many are still outstanding."""
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 5.0) -> int:
        remaining = self.flush(timeout)
        self._running = False
        self._thread.join(2.0)
        return remaining

    def __len__(self) -> int:
        return len(self._producer)

    def _poll_loop(self) -> None:
        while self._running:
            self._producer.poll(0.1)

    def _on_error(self, err: KafkaError) -> None:
        self.last_error = err
        if err.fatal():
            logger.error("kafka producer fatal error: %s", err)
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            logger.warning("kafka: all brokers down (%s); holding MQTT acknowledgements", err.str())
        else:
            logger.debug("kafka producer error: %s", err)

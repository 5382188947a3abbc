"""What the ingest pipeline uses of its Kafka producer, as a structural type (the tests' fake too)."""

from __future__ import annotations

from typing import Protocol

from mqtt_kafka_sync.kafka.producer import DeliveryCallback, Headers


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

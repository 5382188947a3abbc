"""Where replayed records go: a :class:`Target`.

A target takes records in source order and reports each one's fate exactly once, through the
callback given with it. The checkpoint, the throttle and the progress only see ``send`` and
``done``. Two targets:

- :class:`KafkaTarget`, a Kafka topic, written with the idempotent producer (``acks=all``, murmur2
  partitioning as Java clients), so retries neither duplicate nor reorder records within a target
  partition;
- :class:`~mqtt_kafka_sync.replay.mqtt_target.MqttTarget`, MQTT through a command relay
  connector's routes: ``send`` routes the record and publishes it QoS 1/2, ``done`` runs on the
  broker's PUBACK/PUBCOMP, or once the dead-letter topic has a record the relay would not publish.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_NOT_AVAILABLE,
    KafkaError,
    KafkaException,
    Producer,
)

from mqtt_kafka_sync.kafka.producer import producer_config
from mqtt_kafka_sync.kafka.settings import Kafka
from mqtt_kafka_sync.replay.exceptions import ReplayError

Headers = list[tuple[str, bytes | str | None]]
Done = Callable[[str | None], None]
"""Called once per record: None when the target has it, else why it does not."""

DELIVERY_TIMEOUT_MS = 300_000
"""A record the target has not confirmed within 5 minutes stops the replay (the checkpoint stays
before it, so running again resumes there)."""


class SourceRecord:
    """One record read from the replay's source, as a target gets it: its key, value, headers (the
    replay's own added) and timestamp, and where it is in the source.

    Its accessors are those of a :class:`confluent_kafka.Message`, so the MQTT target hands it to
    the relay's router (:class:`~mqtt_kafka_sync.relay.routes.KafkaRecord`) as it is.
    """

    __slots__ = ("_headers", "_key", "_offset", "_partition", "_timestamp_ms", "_topic", "_value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        timestamp_ms: int | None,
    ) -> None:
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._key = key
        self._value = value
        self._headers = headers
        self._timestamp_ms = timestamp_ms

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Headers:
        return self._headers

    def timestamp_ms(self) -> int | None:
        """Epoch milliseconds; None when the source record had no timestamp."""
        return self._timestamp_ms

    def timestamp(self) -> tuple[int, int]:
        if self._timestamp_ms is None:
            return TIMESTAMP_NOT_AVAILABLE, 0
        return TIMESTAMP_CREATE_TIME, self._timestamp_ms

    def unstamped(self) -> SourceRecord:
        """This record without its timestamp (an age the router counts as 0)."""
        return SourceRecord(
            self._topic,
            self._partition,
            self._offset,
            key=self._key,
            value=self._value,
            headers=self._headers,
            timestamp_ms=None,
        )


class Target(Protocol):
    def send(self, record: SourceRecord, done: Done) -> None:
        """Queue one record. Blocks only while the target cannot take more (serving confirmations
        meanwhile)."""
        ...

    def poll(self, timeout: float = 0.0) -> None:
        """Serve confirmations (``done`` callbacks run here)."""
        ...

    def flush(self, timeout: float) -> int:
        """Wait for confirmations; returns how many records are still unconfirmed."""
        ...

    def close(self) -> None: ...


class KafkaTarget:
    """A Kafka topic. ``same_partitions``: write each record to its source partition's number;
    otherwise the producer picks the partition from the key (records without a key: any)."""

    def __init__(self, kafka: Kafka, topic: str, *, same_partitions: bool, client_id: str) -> None:
        defaults = {"message.timeout.ms": str(DELIVERY_TIMEOUT_MS), "linger.ms": "20"}
        self._producer = Producer(
            producer_config(kafka, client_id, defaults), logger=logging.getLogger("librdkafka")
        )
        self.topic = topic
        self._same = same_partitions

    def send(self, record: SourceRecord, done: Done) -> None:
        kwargs: dict[str, Any] = {
            "key": record.key(),
            "value": record.value(),
            "headers": record.headers(),
            "on_delivery": _Report(done),
        }
        if (timestamp_ms := record.timestamp_ms()) is not None:
            kwargs["timestamp"] = timestamp_ms
        if self._same:
            kwargs["partition"] = record.partition()
        while True:
            try:
                self._producer.produce(self.topic, **kwargs)
                return
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain it
            except KafkaException as exc:
                raise ReplayError(f"cannot produce to {self.topic}: {exc.args[0]}") from exc

    def poll(self, timeout: float = 0.0) -> None:
        self._producer.poll(timeout)

    def flush(self, timeout: float) -> int:
        return int(self._producer.flush(timeout))

    def close(self) -> None:
        self._producer.flush(1.0)


class _Report:
    __slots__ = ("_done",)

    def __init__(self, done: Done) -> None:
        self._done = done

    def __call__(self, err: KafkaError | None, _record: Any) -> None:
        self._done(None if err is None else err.str())

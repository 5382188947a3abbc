"""Fake MQTT publisher and dead-letter producer for the relay task and the replay's MQTT target."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError

from mqtt_kafka_sync.errors import KafkaDeliveryError
from mqtt_kafka_sync.mqtt.publisher import Command


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[int, Command]] = []
        self.is_connected = True
        self.stopped: bool | None = None
        self.forgotten: list[int] = []
        self.wakes = 0
        self._unannounced = False
        self._mid = 0

    def start(self) -> None:
        pass

    def connected(self) -> bool:
        return self.is_connected

    def wake(self) -> None:
        """Counts the wake-ups the real publisher makes: when something was published since the last."""
        if self._unannounced:
            self._unannounced = False
            self.wakes += 1

    def publish(self, command: Command, *, wake: bool = True) -> int:
        self._unannounced = not wake
        self.wakes += wake
        self._mid += 1
        self.sent.append((self._mid, command))
        return self._mid

    def forget(self, mids: Iterable[int]) -> None:
        self.forgotten.extend(mids)

    def stop(self, *, end_session: bool) -> None:
        self.stopped = end_session

    def seqs(self) -> list[str]:
        return [c.payload.decode() for _, c in self.sent]


class FakeSink:
    """Records dead letters; :meth:`poll` confirms them (or fails them while ``failing``; answers
    nothing while ``holding``). Like librdkafka, :meth:`produce` refuses at once a record above
    ``max_message_bytes``, and one for a topic in ``unknown``."""

    def __init__(self, max_message_bytes: int = 1_000_000) -> None:
        self.max_message_bytes = max_message_bytes
        self.unknown: set[str] = set()
        self.produced: list[tuple[str, bytes, bytes | None, Any]] = []
        self._reports: list[Callable[[KafkaError | None, Any], None]] = []
        self.failing = False
        self.holding = False
        self.errors = 0

    def produce(self, topic: str, value: bytes, key: bytes | None, headers: Any, on_delivery: Any) -> None:
        if topic in self.unknown:
            raise KafkaDeliveryError("Local: Unknown topic", topic=topic, retriable=True, code=-188)
        size = len(value) + len(key or b"") + sum(len(n) + len(v or b"") for n, v in headers)
        if size > self.max_message_bytes:
            raise KafkaDeliveryError("Broker: Message size too large", topic=topic, code=10)
        self.produced.append((topic, value, key, dict(headers)))
        self._reports.append(on_delivery)

    def __len__(self) -> int:
        return len(self._reports)

    def poll(self, timeout: float = 0.0) -> int:
        if self.holding:
            return 0
        reports, self._reports = self._reports, []
        for report in reports:
            report(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED) if self.failing else None, None)
        return len(reports)

    def close(self, timeout: float = 5.0) -> int:
        return 0

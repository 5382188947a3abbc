"""Fake MQTT publisher and dead-letter producer for the relay task and the replay's MQTT target."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from mqtt_kafka_sync.relay.routes import Command


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[int, Command]] = []
        self.is_connected = True
        self.stopped: bool | None = None
        self._mid = 0

    def start(self) -> None:
        pass

    def connected(self) -> bool:
        return self.is_connected

    def publish(self, command: Command) -> int:
        self._mid += 1
        self.sent.append((self._mid, command))
        return self._mid

    def stop(self, *, end_session: bool) -> None:
        self.stopped = end_session

    def seqs(self) -> list[str]:
        return [c.payload.decode() for _, c in self.sent]


class FakeSink:
    """Records dead letters; :meth:`poll` confirms them (or fails them while ``failing``; answers
    nothing while ``holding``)."""

    def __init__(self) -> None:
        self.produced: list[tuple[str, bytes, bytes | None, Any]] = []
        self._reports: list[Callable[[KafkaError | None, Any], None]] = []
        self.failing = False
        self.holding = False
        self.errors = 0

    def produce(self, topic: str, value: bytes, key: bytes | None, headers: Any, on_delivery: Any) -> None:
        self.produced.append((topic, value, key, dict(headers)))
        self._reports.append(on_delivery)

    def poll(self, timeout: float = 0.0) -> int:
        if self.holding:
            return 0
        reports, self._reports = self._reports, []
        for report in reports:
            report(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED) if self.failing else None, None)
        return len(reports)

    def close(self, timeout: float = 5.0) -> int:
        return 0

"""Supervisor side of a task's shared-memory block: read it, judge readiness, survive restarts.

The block (a :class:`~mqtt_kafka_sync.shared_block.SharedBlock` of doubles, with its lock) is
created here, handed to the task process at start, and written by the task's
:class:`~mqtt_kafka_sync.telemetry.probe.Probe` every 0.5 s.
When a task process dies, :meth:`TaskMetrics.retire` adds its counters and histograms to a base kept
here and zeroes the block, so the next process of the slot starts from zero and the totals the
supervisor exports never go down (what a crashed task counted in its last half second is lost).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from mqtt_kafka_sync.config.model import ConnectorConfig
from mqtt_kafka_sync.mqtt import reasons
from mqtt_kafka_sync.shared_block import SharedBlock, doubles
from mqtt_kafka_sync.telemetry import catalog as c
from mqtt_kafka_sync.telemetry.layout import Layout

STALE_S = 5.0
"""A task whose block is older than this (its stats loop stuck) is not ready."""
LOOP_STUCK_S = 10.0
"""A task whose network loop has not turned for this long is not ready (it turns at least every second)."""


@dataclass(frozen=True)
class TaskSnapshot:
    """One task at one moment, as metrics and /readyz see it."""

    name: str
    """``<connector>/task-<i>``"""
    labels: dict[str, str]
    layout: Layout
    values: list[float]
    alive: bool
    restarts: int

    def value(self, metric: c.MetricDef, **labels: str) -> float:
        return self.values[self.layout.offset(metric, **labels)]

    def problems(self, now: float | None = None) -> list[str]:
        """Why this task is not ready; empty when it is."""
        if not self.alive:
            return ["process not running"]
        now = time.monotonic() if now is None else now
        if now - self.values[Layout.HEARTBEAT] > STALE_S:
            return ["not reporting (starting, or stuck)"]
        found = []
        age = self.loop_age(now)
        if age is not None and age > LOOP_STUCK_S:
            found.append(f"network loop has not turned for {age:.0f}s")
        mqtt_refusal, kafka_refusal = self.refusals()
        if mqtt_refusal is not None:
            found.append(mqtt_refusal)
        elif self.value(c.MQTT_CONNECTED) != 1:
            found.append("MQTT not connected")
        elif self.value(c.SUBSCRIBED) != 1:
            found.append("not in its consumer group" if self.layout.relay else "MQTT not subscribed")
        if kafka_refusal is not None:
            found.append(kafka_refusal)
        elif self.value(c.KAFKA_CONNECTED) != 1:
            found.append("no Kafka broker connection")
        return found

    def refusals(self) -> tuple[str | None, str | None]:
        """The MQTT and the Kafka refusal in force, in words (None where there is none)."""
        values, layout = self.values, self.layout
        mqtt = kafka = None
        if 0 < (index := int(values[Layout.MQTT_REFUSAL])) <= len(c.MQTT_FAILURES):
            mqtt = _mqtt_words(c.MQTT_FAILURES[index - 1], int(values[Layout.MQTT_REFUSAL_CODE]), layout)
        if 0 < (index := int(values[Layout.KAFKA_REFUSAL])) <= len(c.KAFKA_FAILURES):
            # Imported here: the module loads confluent-kafka, which the supervisor need not carry.
            from mqtt_kafka_sync.kafka.connection_state import REFUSAL_WORDS  # noqa: PLC0415

            words = REFUSAL_WORDS[c.KAFKA_FAILURES[index - 1]]
            kafka = f"kafka: {words} (bootstrap servers {layout.kafka_bootstrap})"
        return mqtt, kafka

    def loop_age(self, now: float | None = None) -> float | None:
        """Seconds since the task's network loop turned, as of ``now``; None while it reports nothing."""
        if not self.alive or self.values[Layout.HEARTBEAT] == 0:
            return None
        now = time.monotonic() if now is None else now
        # The probe measured the age when it wrote the block; the block may be a little older.
        return self.value(c.NETWORK_LOOP_AGE) + max(0.0, now - self.values[Layout.HEARTBEAT])

    def owned_shards(self) -> list[str]:
        """Sharded mode: the filters of the shards the task runs now (empty otherwise)."""
        start = self.layout.shards_offset
        return [f for i, f in enumerate(self.layout.shard_filters) if self.values[start + i] == 1.0]

    @property
    def ready(self) -> bool:
        return not self.problems()


def _mqtt_words(reason: str, code: int, layout: Layout) -> str:
    broker = layout.mqtt_broker
    if reason == "subscribe_refused":
        return f"mqtt: broker {broker} refused a subscription: {reasons.describe(code, reasons.SUBACK)}"
    if reason == "tls":
        return f"mqtt: the TLS handshake with broker {broker} failed"
    if code:
        return f"mqtt: broker {broker} refused the connection: {reasons.describe(code, reasons.CONNACK)}"
    return f"mqtt: broker {broker} refused the connection"


class TaskMetrics:
    def __init__(self, config: ConnectorConfig, index: int) -> None:
        self.layout = Layout(config)
        self.block: SharedBlock[float] = doubles(self.layout.size)
        self.name = f"{config.name}/task-{index}"
        self.labels = {"connector": config.name, "task": str(index)}
        self._mask = self.layout.cumulative_mask()
        self._base = [0.0] * self.layout.size

    def read(self) -> list[float]:
        current = self.block[:]
        return [b + v if m else v for b, v, m in zip(self._base, current, self._mask, strict=True)]

    def retire(self) -> None:
        """The task process is gone: keep what it counted, clear its gauges and heartbeat."""
        with self.block.get_lock():
            current = self.block[:]
            self.block[:] = [0.0] * self.layout.size
        for i, (value, cumulative) in enumerate(zip(current, self._mask, strict=True)):
            if cumulative and not math.isnan(value):
                self._base[i] += value

    def snapshot(self, alive: bool, restarts: int) -> TaskSnapshot:
        return TaskSnapshot(self.name, self.labels, self.layout, self.read(), alive, restarts)

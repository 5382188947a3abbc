"""Waiting for records in a Kafka topic, as the integration tests read the bridge's output."""

from __future__ import annotations

import time

from mqtt_kafka_sync.kafka.settings import Kafka
from mqtt_kafka_sync.sim.verify import Record, read_topic


def wait_records(kafka: Kafka, topic: str, count: int, timeout: float = 60.0) -> list[Record]:
    """All of ``topic``'s records once there are at least ``count``; fails at ``timeout``."""
    deadline = time.monotonic() + timeout
    records: list[Record] = []
    while time.monotonic() < deadline:
        records = read_topic(kafka, topic, timeout_s=10)
        if len(records) >= count:
            return records
        time.sleep(0.3)
    raise AssertionError(f"expected {count} records in {topic}, found {len(records)}")

"""The ingest pipeline's counters, read by the task's stats loop (``telemetry/probe.py``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from mqtt_kafka_sync.telemetry.counters import Buckets, RouteCounters


@dataclass
class IngestStats:
    """Counters for progress display and metrics; written by one thread each, read by any."""

    received: int = 0
    produced: int = 0
    dead_lettered: int = 0
    delivery_failures: int = 0
    retried: int = 0
    """Deliveries that failed with a retriable error; the record was produced again."""
    dead_letter_refused: int = 0
    held: int = 0
    """Records waiting for a Kafka topic that librdkafka calls unknown (now)."""
    dlq_by_reason: dict[str, int] = field(default_factory=dict)
    """Records the dead-letter topic confirmed, by ``dlq.reason``."""
    routes: defaultdict[str, RouteCounters] = field(default_factory=lambda: defaultdict(RouteCounters))
    """By route name; :data:`~mqtt_kafka_sync.telemetry.catalog.UNROUTED` for messages no route took."""
    delivery_latency: Buckets = field(default_factory=Buckets)
    """Seconds from ``produce()`` to Kafka's acknowledgement, per record (librdkafka measures it)."""

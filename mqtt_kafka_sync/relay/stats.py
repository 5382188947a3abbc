"""One relay task's counters: written by its relay thread, read by the task's stats loop and metrics
(``telemetry/views.py``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from mqtt_kafka_sync.mqtt.counters import PublishCounters
from mqtt_kafka_sync.telemetry.counters import RouteCounters


@dataclass
class RelayStats(PublishCounters):
    """Counters of one task; written by the relay thread, read by any."""

    received: int = 0
    """Messages taken from Kafka."""
    dropped_on_revoke: int = 0
    """Messages read but not yet published when their partition was revoked (the next owner reads them)."""
    dead_letter_refused: int = 0
    """Dead-letter records Kafka refused (tried again every ``DLQ_RETRY_S``)."""
    routes: defaultdict[str, RouteCounters] = field(default_factory=lambda: defaultdict(RouteCounters))
    """Records routed (received) and commands acknowledged (delivered), by route name;
    :data:`~mqtt_kafka_sync.telemetry.catalog.UNROUTED` for records no route reads."""

"""One relay task's counters: written by its relay thread, read by the task's stats loop and metrics
(``telemetry/views.py``)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from mqtt_kafka_sync.telemetry.counters import RouteCounters


@dataclass
class RelayStats:
    """Counters of one task; written by the relay thread, read by any."""

    received: int = 0
    """Messages taken from Kafka."""
    published: int = 0
    """PUBLISH packets handed to paho, re-publishes included."""
    delivered: int = 0
    """Commands the broker acknowledged (PUBACK / PUBCOMP)."""
    dead_lettered: int = 0
    """Messages the dead-letter topic confirmed."""
    republished: int = 0
    dropped_on_revoke: int = 0
    """Messages read but not yet published when their partition was revoked (the next owner reads them)."""
    outages: int = 0
    dlq_by_reason: dict[str, int] = field(default_factory=dict)
    dead_letter_refused: int = 0
    """Dead-letter records Kafka refused (tried again every ``DLQ_RETRY_S``)."""
    stalls: int = 0
    """Times no in-flight command was acknowledged for ``STALL_S`` while connected."""
    routes: defaultdict[str, RouteCounters] = field(default_factory=lambda: defaultdict(RouteCounters))
    """Records routed (received) and commands acknowledged (delivered), by route name;
    :data:`~mqtt_kafka_sync.telemetry.catalog.UNROUTED` for records no route reads."""

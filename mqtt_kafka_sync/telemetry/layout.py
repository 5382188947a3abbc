"""Where each number of a task sits in its shared-memory block: a layout both processes derive from
the connector's config alone, so nothing but numbers ever crosses between them.

A block is an array of doubles. Slot 0 is the task's heartbeat (its monotonic clock when it last
wrote); slots 1 to 3 say which refusal is in force, for ``/readyz`` (not metrics): the MQTT one as
its position in ``catalog.MQTT_FAILURES`` plus one (0: none) and its MQTT reason code, the Kafka one
as its position in ``catalog.KAFKA_FAILURES`` plus one; then one slot per counter or gauge series,
and ``len(bounds) + 2`` slots per histogram
series (one per bucket, +Inf last, then the sum). Which series exist is fixed by the config: every
route (and ``none``), every known dead-letter and error reason, every in-flight stage, the throttle
gauges when ``throttle.lag.groups`` is set. So every series exists, at zero, from the start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mqtt_kafka_sync.config.model import ConnectorConfig, RelayConnectorConfig, SourceConnectorConfig
from mqtt_kafka_sync.telemetry import catalog as c

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Series:
    metric: c.MetricDef
    labels: Labels
    """Labels beyond ``connector`` and ``task``."""
    offset: int
    width: int

    @property
    def cumulative(self) -> bool:
        """Counters and histograms only grow: kept across task restarts (see ``TaskMetrics``)."""
        return self.metric.kind != "gauge"


class Layout:
    """The series of one task of ``config``, and their offsets in its block."""

    HEARTBEAT = 0
    MQTT_REFUSAL = 1
    MQTT_REFUSAL_CODE = 2
    KAFKA_REFUSAL = 3

    def __init__(self, config: ConnectorConfig) -> None:
        self.relay = isinstance(config, RelayConnectorConfig)
        self.mqtt_broker = f"{config.mqtt.server.host}:{config.mqtt.server.port}"
        self.kafka_bootstrap = config.kafka.bootstrap_servers
        """Named in /readyz when a broker refuses the task."""
        self.series: list[Series] = []
        self._offsets: dict[tuple[str, Labels], int] = {}
        self.size = 4  # the heartbeat, the refusals in force
        routes = [r.name for r in config.routes] + [c.UNROUTED]
        for route in routes:
            for metric in (c.RECEIVED_MESSAGES, c.RECEIVED_BYTES, c.DELIVERED_MESSAGES, c.DELIVERED_BYTES):
                self._add(metric, route=route)
        dlq_reasons = c.RELAY_DLQ_REASONS if self.relay else c.INGEST_DLQ_REASONS
        for reason in (*dlq_reasons, c.OTHER):
            self._add(c.DEAD_LETTERS, reason=reason)
        for reason in c.RELAY_ERRORS if self.relay else c.INGEST_ERRORS:
            self._add(c.ERRORS, reason=reason)
        for metric in (
            c.MQTT_CONNECTED,
            c.KAFKA_CONNECTED,
            c.SUBSCRIBED,
            c.MQTT_RECONNECTS,
            c.NETWORK_LOOP_AGE,
        ):
            self._add(metric)
        for side, reasons in (("mqtt", c.MQTT_FAILURES), ("kafka", c.KAFKA_FAILURES)):
            for reason in reasons:
                self._add(c.CONNECTION_FAILURES, side=side, reason=reason)
        for stage in c.RELAY_STAGES if self.relay else c.INGEST_STAGES:
            self._add(c.IN_FLIGHT, stage=stage)
        if not self.relay:
            self._add(c.KAFKA_DELIVERY_LATENCY)
            self._add(c.END_TO_END_LATENCY)
        self.throttled = isinstance(config, SourceConnectorConfig) and config.throttle is not None
        if self.throttled:
            for metric in (c.THROTTLE_RATE, c.THROTTLE_LAG, c.THROTTLE_ENFORCING):
                self._add(metric)
            for action in c.THROTTLE_ACTIONS:
                self._add(c.THROTTLE_DECISION, action=action)
        self.shard_filters: tuple[str, ...] = ()
        """Sharded mode: one slot per shard after the series, 1 while the task owns it (not a metric:
        the shards are named in the status file and /readyz)."""
        self.shards_offset = self.size
        self._add_shards(config)

    def _add_shards(self, config: ConnectorConfig) -> None:
        if not isinstance(config, SourceConnectorConfig) or config.shards is None:
            return
        self._add(c.SHARDS_OWNED)
        self.shard_filters = config.shards.filters
        self.shards_offset = self.size
        self.size += len(self.shard_filters)

    def _add(self, metric: c.MetricDef, **labels: str) -> None:
        width = len(c.LATENCY_BOUNDS) + 2 if metric.kind == "histogram" else 1
        key = tuple(labels.items())
        series = Series(metric, key, self.size, width)
        self.series.append(series)
        self._offsets[(metric.name, key)] = self.size
        self.size += width

    def offset(self, metric: c.MetricDef, **labels: str) -> int:
        """Raises KeyError for a series the config does not have."""
        return self._offsets[(metric.name, tuple(labels.items()))]

    def of(self, metric: c.MetricDef) -> Iterator[Series]:
        return (s for s in self.series if s.metric is metric)

    def cumulative_mask(self) -> list[bool]:
        mask = [False] * self.size
        for s in self.series:
            if s.cumulative:
                mask[s.offset : s.offset + s.width] = [True] * s.width
        return mask

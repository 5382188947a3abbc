"""Task side of the metrics: read the worker's counters and state into the task's shared block.

The task process's stats loop (``runtime/task_process.py``) calls :meth:`Probe.write` every 0.5 s.
It reads what the data paths already keep (plain attributes written by their own threads) and
writes one array of doubles under the block's lock: the hot path never sees the metrics at all,
beyond the counters it increments. NaN marks a gauge that has no value (no throttle attached).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from mqtt_kafka_sync.config.model import RelayConnectorConfig, SourceConnectorConfig
from mqtt_kafka_sync.shared_block import SharedBlock
from mqtt_kafka_sync.telemetry import catalog as c
from mqtt_kafka_sync.telemetry.counters import Buckets, RouteCounters
from mqtt_kafka_sync.telemetry.layout import Layout
from mqtt_kafka_sync.telemetry.registry import PipelineRegistry
from mqtt_kafka_sync.telemetry.views import (
    FailuresView,
    IngestWorkerView,
    KafkaRefusalsView,
    RelayWorkerView,
    ThrottleView,
)

logger = logging.getLogger(__name__)

THROTTLED_SAMPLES = 2
UNTHROTTLED_SAMPLES = 10
"""Stats-loop samples (0.5 s) with acknowledgements held back / none held before logging a change."""


class Probe:
    """Writes one task's block; made by :func:`ingest_probe` or :func:`relay_probe`."""

    def __init__(
        self, layout: Layout, fill: Callable[[list[float]], None], block: SharedBlock[float]
    ) -> None:
        self.layout = layout
        self._block = block
        self._fill = fill

    def values(self) -> list[float]:
        out = [0.0] * self.layout.size
        self._fill(out)
        out[Layout.HEARTBEAT] = time.monotonic()
        return out

    def write(self) -> None:
        self._block[:] = self.values()  # under the block's lock


def ingest_probe(
    config: SourceConnectorConfig,
    worker: IngestWorkerView,
    block: SharedBlock[float],
    pipelines: PipelineRegistry,
    owned_shards: Callable[[], tuple[int, ...]] | None = None,
) -> Probe:
    """The probe of an ingest task: ``worker``'s state, and the counters of every pipeline the
    task registered in ``pipelines`` (its own session's and adopted ones'); in sharded mode
    ``owned_shards`` says which shards the task runs."""
    layout = Layout(config)
    reader = _IngestReader(layout, config.name, worker, pipelines)
    if owned_shards is None:
        return Probe(layout, reader.fill, block)

    def fill(out: list[float]) -> None:
        reader.fill(out)
        owned = owned_shards()
        out[layout.offset(c.SHARDS_OWNED)] = len(owned)
        for shard in owned:
            out[layout.shards_offset + shard] = 1.0

    return Probe(layout, fill, block)


def relay_probe(config: RelayConnectorConfig, worker: RelayWorkerView, block: SharedBlock[float]) -> Probe:
    """The probe of a relay task."""
    layout = Layout(config)
    return Probe(layout, _RelayReader(layout, worker).fill, block)


class _Common:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def routes(self, out: list[float], routes: dict[str, RouteCounters]) -> None:
        # The layout puts a route's four series side by side: received, bytes, delivered, bytes.
        layout = self.layout
        for name, r in routes.items():
            try:
                base = layout.offset(c.RECEIVED_MESSAGES, route=name)
            except KeyError:  # not a route of the config: cannot happen, and never fatal
                base = layout.offset(c.RECEIVED_MESSAGES, route=c.UNROUTED)
            out[base] += r.received
            out[base + 1] += r.received_bytes
            out[base + 2] += r.delivered
            out[base + 3] += r.delivered_bytes

    def reasons(self, out: list[float], by_reason: dict[str, int]) -> None:
        for reason, count in by_reason.items():
            try:
                offset = self.layout.offset(c.DEAD_LETTERS, reason=reason)
            except KeyError:
                offset = self.layout.offset(c.DEAD_LETTERS, reason=c.OTHER)
            out[offset] += count

    def refusals(self, out: list[float], mqtt: FailuresView, kafka: KafkaRefusalsView) -> None:
        """The refusals in force (for /readyz) and the refused attempts by side and reason."""
        current = mqtt.current
        if current is not None and current.reason in c.MQTT_FAILURES:
            out[Layout.MQTT_REFUSAL] = c.MQTT_FAILURES.index(current.reason) + 1
            out[Layout.MQTT_REFUSAL_CODE] = current.code
        if (refusal := kafka.kafka_refusal) in c.KAFKA_FAILURES:
            out[Layout.KAFKA_REFUSAL] = c.KAFKA_FAILURES.index(refusal) + 1
        for side, counts, known in (
            ("mqtt", dict(mqtt.counts), c.MQTT_FAILURES),
            ("kafka", dict(kafka.kafka_refusals), c.KAFKA_FAILURES),
        ):
            for reason, count in counts.items():
                if reason in known:
                    self.put(out, c.CONNECTION_FAILURES, count, side=side, reason=reason)

    def put(self, out: list[float], metric: c.MetricDef, value: float, **labels: str) -> None:
        out[self.layout.offset(metric, **labels)] = value

    def histogram(self, out: list[float], metric: c.MetricDef, buckets: Buckets) -> None:
        offset = self.layout.offset(metric)
        counts = list(buckets.counts)
        for i, n in enumerate(counts):
            out[offset + i] += n
        out[offset + len(counts)] += buckets.sum


class _IngestReader(_Common):
    def __init__(
        self, layout: Layout, connector: str, worker: IngestWorkerView, pipelines: PipelineRegistry
    ) -> None:
        super().__init__(layout)
        self.connector = connector
        self.worker = worker
        self.pipelines = pipelines
        self._warned = False
        self._throttled = False
        self._held_samples = 0
        self._free_samples = 0

    def fill(self, out: list[float]) -> None:
        task = self.worker.task
        retried = refused = awaiting = 0
        for tracked in self.pipelines.ingest_pipelines(self.connector):
            stats = tracked.stats
            self.routes(out, dict(stats.routes))
            self.reasons(out, dict(stats.dlq_by_reason))
            retried += stats.retried
            refused += stats.dead_letter_refused
            self.histogram(out, c.KAFKA_DELIVERY_LATENCY, stats.delivery_latency)
            self.histogram(out, c.END_TO_END_LATENCY, tracked.end_to_end)
            tracker = tracked.tracker()
            if tracker is not None:
                awaiting += tracker.in_flight
        self.put(out, c.ERRORS, retried, reason="kafka-retried")
        self.put(out, c.ERRORS, refused, reason="dead-letter-refused")
        self.put(out, c.ERRORS, task.sink.errors, reason="kafka-client")
        subscriber = task.subscriber
        self.refusals(out, subscriber.failures, task.sink)
        self.put(out, c.MQTT_CONNECTED, float(subscriber.wait_connected(0)))
        self.put(out, c.SUBSCRIBED, float(subscriber.subscribed))
        self.put(out, c.KAFKA_CONNECTED, float(task.sink.kafka_up))
        self.put(out, c.MQTT_RECONNECTS, subscriber.reconnects)
        self.put(out, c.NETWORK_LOOP_AGE, time.monotonic() - subscriber.loop_turned_at)
        self.put(out, c.ERRORS, subscriber.redeliveries, reason="mqtt-redelivered")
        self.put(out, c.IN_FLIGHT, awaiting, stage="awaiting-kafka")
        held = task.pacer.held if task.pacer is not None else 0
        self.put(out, c.IN_FLIGHT, held, stage="held-by-throttle")
        if self.layout.throttled:
            throttle = self.worker.throttle
            self.throttle(out, throttle)
            self._log_throttled(held, throttle)

    def _log_throttled(self, held: int, throttle: ThrottleView | None) -> None:
        """One line when the throttle starts holding acknowledgements back (1 s running), one when
        it has let everything go for 5 s."""
        if held:
            self._held_samples, self._free_samples = self._held_samples + 1, 0
        else:
            self._held_samples, self._free_samples = 0, self._free_samples + 1
        if not self._throttled and self._held_samples >= THROTTLED_SAMPLES:
            self._throttled = True
            rate = throttle.rate if throttle is not None else math.nan
            lag = throttle.last_lag if throttle is not None else None
            logger.warning(
                "%s: throttled by consumer lag %s: acknowledging %.0f messages/s, %d held back",
                self.connector,
                lag,
                rate,
                held,
            )
        elif self._throttled and self._free_samples >= UNTHROTTLED_SAMPLES:
            self._throttled = False
            logger.warning("%s: no longer throttled", self.connector)

    def throttle(self, out: list[float], throttle: ThrottleView | None) -> None:
        if throttle is None:
            if not self._warned:
                logger.warning(
                    "%s: throttle.lag.groups is set but the worker exposes no throttle; "
                    "throttle metrics stay empty",
                    self.connector,
                )
                self._warned = True
            for series in self.layout.series:
                if series.metric.name.startswith(c.PREFIX + "throttle_"):
                    out[series.offset] = math.nan
            return
        lag = throttle.last_lag
        decision = throttle.last_decision
        action = decision.action if decision is not None else None
        self.put(out, c.THROTTLE_RATE, throttle.rate)
        self.put(out, c.THROTTLE_LAG, math.nan if lag is None else lag)
        self.put(out, c.THROTTLE_ENFORCING, float(throttle.mode == "enforce"))
        for name in c.THROTTLE_ACTIONS:
            value = math.nan if action is None else float(action == name)
            self.put(out, c.THROTTLE_DECISION, value, action=name)


class _RelayReader(_Common):
    def __init__(self, layout: Layout, worker: RelayWorkerView) -> None:
        super().__init__(layout)
        self.worker = worker

    def fill(self, out: list[float]) -> None:
        task = self.worker.task
        stats = task.stats
        self.routes(out, dict(stats.routes))
        self.reasons(out, dict(stats.dlq_by_reason))
        self.put(out, c.ERRORS, stats.dead_letter_refused, reason="dead-letter-refused")
        self.put(out, c.ERRORS, stats.republished, reason="mqtt-republished")
        self.put(out, c.ERRORS, stats.stalls, reason="mqtt-stalled")
        self.put(out, c.ERRORS, task.kafka_errors, reason="kafka-client")
        self.refusals(out, task.mqtt_failures, task)
        self.put(out, c.MQTT_CONNECTED, float(task.mqtt_connected))
        self.put(out, c.SUBSCRIBED, float(task.in_group))
        self.put(out, c.KAFKA_CONNECTED, float(task.kafka_connected))
        self.put(out, c.MQTT_RECONNECTS, stats.outages)
        self.put(out, c.NETWORK_LOOP_AGE, time.monotonic() - self.worker.loop_turned_at)
        self.put(out, c.IN_FLIGHT, task.buffered, stage="buffered")
        self.put(out, c.IN_FLIGHT, _unfinished(task.tracker.unfinished), stage="awaiting-ack")


def _unfinished(read: Callable[[], int]) -> float:
    """The relay thread may change its partitions while we count (a rebalance): try again."""
    for _ in range(3):
        try:
            return float(read())
        except RuntimeError:
            continue
    return math.nan

"""The supervisor's OpenTelemetry side: observable instruments over the tasks' blocks, the histogram
bridge, and the readers: Prometheus (scraped through ``/metrics``) and OTLP/HTTP when configured.

Counters and gauges are observable instruments whose callbacks read the latest task snapshots (each
collection costs a copy of every block, nothing on any hot path). Histograms come through
:mod:`mqtt_kafka_sync.telemetry.bridge`. Every name, unit and label comes from ``catalog.py``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry, generate_latest

from mqtt_kafka_sync import __version__
from mqtt_kafka_sync.telemetry import catalog as c
from mqtt_kafka_sync.telemetry.bridge import (
    CUMULATIVE,
    BridgedExporter,
    BridgedPrometheusReader,
    HistogramBridge,
)
from mqtt_kafka_sync.telemetry.settings import TelemetrySettings
from mqtt_kafka_sync.telemetry.shared import TaskSnapshot

if TYPE_CHECKING:  # the supervisor without a lag reader never loads confluent-kafka
    from mqtt_kafka_sync.kafka.lag import LagSample

SCOPE = "mqtt_kafka_sync"
TASK_METRICS = (
    c.RECEIVED_MESSAGES,
    c.RECEIVED_BYTES,
    c.DELIVERED_MESSAGES,
    c.DELIVERED_BYTES,
    c.DEAD_LETTERS,
    c.ERRORS,
    c.MQTT_CONNECTED,
    c.KAFKA_CONNECTED,
    c.SUBSCRIBED,
    c.MQTT_RECONNECTS,
    c.CONNECTION_FAILURES,
    c.NETWORK_LOOP_AGE,
    c.IN_FLIGHT,
    c.SHARDS_OWNED,
    c.THROTTLE_RATE,
    c.THROTTLE_LAG,
    c.THROTTLE_ENFORCING,
    c.THROTTLE_DECISION,
)
"""Read from the tasks' blocks; the others are the supervisor's own or the bridge's."""


class Source(Protocol):
    def snapshots(self) -> list[TaskSnapshot]: ...
    def lag_points(self) -> list[LagSample]: ...


Callback = Callable[[CallbackOptions], Iterator[Observation]]


class Exporter:
    def __init__(self, source: Source, settings: TelemetrySettings) -> None:
        self._source = source
        self._lock = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=True)
        resource = Resource({"service.name": "mqtt-kafka-sync", "service.version": __version__})
        bridge = HistogramBridge(source.snapshots, InstrumentationScope(SCOPE, __version__), resource)
        readers: list[MetricReader] = [BridgedPrometheusReader(bridge, self.registry)]
        if settings.otlp_endpoint:
            # Imported here: the OTLP exporter (requests, protobuf) adds ~5 MB of RSS that a
            # supervisor only scraped through /metrics would carry for nothing (docs/benchmarks.md).
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
                OTLPMetricExporter,
            )

            otlp = OTLPMetricExporter(endpoint=settings.otlp_endpoint, preferred_temporality=CUMULATIVE)
            readers.append(
                PeriodicExportingMetricReader(
                    BridgedExporter(otlp, bridge), export_interval_millis=settings.otlp_interval_s * 1000
                )
            )
        self.provider = MeterProvider(metric_readers=readers, resource=resource)
        meter = self.provider.get_meter(SCOPE, __version__)
        callbacks: dict[str, Callback] = {m.name: self._from_blocks(m) for m in TASK_METRICS}
        callbacks[c.TASK_UP.name] = self._per_task(lambda s: float(s.alive))
        callbacks[c.TASK_READY.name] = self._per_task(lambda s: float(s.ready))
        callbacks[c.TASK_RESTARTS.name] = self._per_task(lambda s: float(s.restarts))
        callbacks[c.CONSUMER_LAG.name] = self._lag(lambda p: None if p.lag is None else float(p.lag))
        callbacks[c.CONSUMER_TIME_LAG.name] = self._lag(lambda p: p.time_lag_s)
        for metric in c.METRICS:
            if metric.kind == "histogram":
                continue
            create = (
                meter.create_observable_counter if metric.kind == "counter" else meter.create_observable_gauge
            )
            create(
                metric.name,
                callbacks=[callbacks[metric.name]],
                unit=metric.unit,
                description=metric.description,
            )

    def scrape(self) -> bytes:
        """The Prometheus text exposition of every metric now."""
        with self._lock:
            return generate_latest(self.registry)

    def shutdown(self) -> None:
        self.provider.shutdown()

    # -- callbacks ------------------------------------------------------------------------------
    def _from_blocks(self, metric: c.MetricDef) -> Callback:
        def observe(options: CallbackOptions) -> Iterator[Observation]:
            for snap in self._source.snapshots():
                for series in snap.layout.of(metric):
                    value = snap.values[series.offset]
                    if not math.isnan(value):
                        yield Observation(value, {**snap.labels, **dict(series.labels)})

        return observe

    def _per_task(self, read: Callable[[TaskSnapshot], float]) -> Callback:
        def observe(options: CallbackOptions) -> Iterator[Observation]:
            for snap in self._source.snapshots():
                yield Observation(read(snap), snap.labels)

        return observe

    def _lag(self, read: Callable[[LagSample], float | None]) -> Callback:
        def observe(options: CallbackOptions) -> Iterator[Observation]:
            for point in self._source.lag_points():
                value = read(point)
                if value is not None:
                    labels = {"group": point.group, "topic": point.topic, "partition": str(point.partition)}
                    yield Observation(value, labels)

        return observe

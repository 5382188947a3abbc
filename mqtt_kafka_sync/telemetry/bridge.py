"""Histograms counted elsewhere, handed to OpenTelemetry as real histogram points.

OpenTelemetry has no observable (asynchronous) histogram instrument, and the Python SDK does not
implement the specification's ``MetricProducer`` (the bridge for metrics aggregated outside the
SDK). Replaying bucket counts into a synchronous ``Histogram.record`` would cost one call per
message in the supervisor and get the sums wrong. So this module is that bridge: at every
collection it builds cumulative :class:`HistogramDataPoint` s (explicit bounds, per-bucket counts,
sum) from the tasks' shared blocks and adds them to the :class:`MetricsData` the SDK collected,
before the reader or exporter sees it. Both the Prometheus reader and the OTLP exporter get them.
``min`` and ``max`` are not tracked (the SDK's own convention for that: +inf and -inf).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry

from mqtt_kafka_sync.telemetry import catalog as c
from mqtt_kafka_sync.telemetry.shared import TaskSnapshot

_KINDS: tuple[type, ...] = (
    Counter,
    UpDownCounter,
    Histogram,
    ObservableCounter,
    ObservableUpDownCounter,
    ObservableGauge,
)
CUMULATIVE: dict[type, AggregationTemporality] = dict.fromkeys(_KINDS, AggregationTemporality.CUMULATIVE)
"""Our histogram points are cumulative, so every reader must want cumulative data."""


class HistogramBridge:
    def __init__(
        self, snapshots: Callable[[], list[TaskSnapshot]], scope: InstrumentationScope, resource: Resource
    ) -> None:
        self._snapshots = snapshots
        self._scope = scope
        self._resource = resource
        self._start_ns = time.time_ns()

    def metrics(self) -> list[Metric]:
        now = time.time_ns()
        points: dict[str, list[HistogramDataPoint]] = {}
        bounds = c.LATENCY_BOUNDS
        for snap in self._snapshots():
            for metric in (c.KAFKA_DELIVERY_LATENCY, c.END_TO_END_LATENCY):
                for series in snap.layout.of(metric):
                    counts = [int(v) for v in snap.values[series.offset : series.offset + len(bounds) + 1]]
                    total = snap.values[series.offset + len(bounds) + 1]
                    points.setdefault(metric.name, []).append(
                        HistogramDataPoint(
                            attributes={**snap.labels, **dict(series.labels)},
                            start_time_unix_nano=self._start_ns,
                            time_unix_nano=now,
                            count=sum(counts),
                            sum=total,
                            bucket_counts=counts,
                            explicit_bounds=bounds,
                            min=math.inf,
                            max=-math.inf,
                        )
                    )
        by_name = {m.name: m for m in c.METRICS}
        return [
            Metric(
                name=name,
                description=by_name[name].description,
                unit=by_name[name].unit,
                data=HistogramData(
                    data_points=data, aggregation_temporality=AggregationTemporality.CUMULATIVE
                ),
            )
            for name, data in points.items()
        ]

    def extend(self, data: MetricsData) -> MetricsData:
        metrics = self.metrics()
        if not metrics:
            return data
        if not data.resource_metrics:
            scope = ScopeMetrics(scope=self._scope, metrics=metrics, schema_url="")
            return MetricsData(resource_metrics=[ResourceMetrics(self._resource, [scope], "")])
        first, *rest = data.resource_metrics
        # Into the SDK's own scope when it is ours: the OTLP encoder keeps one entry per scope, so a
        # second ScopeMetrics of the same scope would replace the first.
        scopes = list(first.scope_metrics)
        for i, existing in enumerate(scopes):
            if existing.scope == self._scope:
                scopes[i] = ScopeMetrics(existing.scope, [*existing.metrics, *metrics], existing.schema_url)
                break
        else:
            scopes.append(ScopeMetrics(scope=self._scope, metrics=metrics, schema_url=""))
        merged = ResourceMetrics(first.resource, scopes, first.schema_url)
        return MetricsData(resource_metrics=[merged, *rest])


class BridgedPrometheusReader(PrometheusMetricReader):
    """The Prometheus reader, with the bridge's histograms in every scrape; no scope labels."""

    def __init__(self, bridge: HistogramBridge, registry: CollectorRegistry) -> None:
        super().__init__(disable_target_info=True, scope_info_enabled=False, registry=registry)
        self._bridge = bridge

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        if metrics_data is not None:
            metrics_data = self._bridge.extend(metrics_data)
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)


class BridgedExporter(MetricExporter):
    """Wraps an exporter (OTLP) so every export carries the bridge's histograms."""

    def __init__(self, inner: MetricExporter, bridge: HistogramBridge) -> None:
        super().__init__(preferred_temporality=CUMULATIVE)
        self._inner = inner
        self._bridge = bridge

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        return self._inner.export(self._bridge.extend(metrics_data), timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)

"""What ``mqtt-kafka-sync run`` exposes: the metrics port and OTLP export settings.

Apart from ``exporter.py`` so reading them loads nothing: a ``run`` without metrics never imports
the OpenTelemetry SDK (docs/benchmarks.md, "Memory").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TelemetrySettings:
    """What ``mqtt-kafka-sync run`` exposes; the CLI fills it from its options and the environment."""

    host: str = "0.0.0.0"
    port: int = 9464
    """``/metrics``, ``/healthz``, ``/readyz``; 0: no HTTP endpoint."""
    otlp_endpoint: str | None = None
    """Full URL of an OTLP/HTTP metrics endpoint (``.../v1/metrics``); None: no OTLP export."""
    otlp_interval_s: float = 60.0
    lag_interval_s: float = 5.0
    """Seconds between the metrics' consumer lag reads, with the time lag (a few admin requests per
    group); a throttle's group may be read more often, for its ``throttle.lag.interval.seconds``."""
    liveness_timeout_s: float = 60.0
    """``/healthz`` fails when a task's network loop has not turned for this long."""

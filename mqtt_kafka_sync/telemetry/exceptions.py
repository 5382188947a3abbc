"""Errors of the telemetry package."""

from __future__ import annotations

from mqtt_kafka_sync.errors import SyncError


class TelemetryError(SyncError):
    """The metrics endpoint or exporter could not be set up (e.g. the port is taken)."""

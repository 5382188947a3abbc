"""The ingest pipelines of one task process, as metrics see them.

A task runs its own MQTT session and, after a peer died, adopted sessions that come and go
(``ingest/worker.py``), each with its own pipeline. The task process makes one
:class:`PipelineRegistry` and hands it to the worker it builds, which hands it to every pipeline;
each pipeline registers its counters when it is built, so the task's probe
(:mod:`mqtt_kafka_sync.telemetry.probe`) counts adopted sessions' messages too. Counters and
histograms are kept after their pipeline is gone (a few hundred bytes per adoption), so totals
never go down; the ack tracker is kept weakly, for its in-flight count only. A pipeline built
without a registry (tests, tools) is not kept anywhere.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from mqtt_kafka_sync.telemetry.counters import Buckets
from mqtt_kafka_sync.telemetry.views import AckView, IngestCounters


@dataclass(frozen=True)
class TrackedPipeline:
    connector: str
    stats: IngestCounters
    end_to_end: Buckets
    tracker: weakref.ref[AckView]


class PipelineRegistry:
    """What the pipelines of one task process registered (safe from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pipelines: list[TrackedPipeline] = []

    def track_ingest(self, connector: str, stats: IngestCounters, tracker: AckView) -> None:
        """Called by a pipeline when it is built."""
        with self._lock:
            self._pipelines.append(TrackedPipeline(connector, stats, tracker.latency, weakref.ref(tracker)))

    def ingest_pipelines(self, connector: str) -> list[TrackedPipeline]:
        with self._lock:
            return [p for p in self._pipelines if p.connector == connector]

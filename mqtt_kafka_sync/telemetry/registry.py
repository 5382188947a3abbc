"""The ingest pipelines of this task process, as metrics see them.

A task runs its own MQTT session and, after a peer died, adopted sessions that come and go
(``ingest/worker.py``), each with its own pipeline. Every pipeline registers its counters here when
it is built, so the task's probe (:mod:`mqtt_kafka_sync.telemetry.probe`) counts adopted sessions'
messages too. Counters and histograms are kept after their pipeline is gone (a few hundred bytes per
adoption), so totals never go down; the ack tracker is kept weakly, for its in-flight count only.

Only task processes enable it (``runtime/task_process.py``); pipelines built anywhere else (tests,
tools) are not kept.
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


_lock = threading.Lock()
_enabled = False
_pipelines: list[TrackedPipeline] = []


def enable() -> None:
    """Keep what pipelines register from now on (task processes only)."""
    global _enabled
    _enabled = True


def reset() -> None:
    """Forget everything and stop keeping (tests)."""
    global _enabled
    with _lock:
        _enabled = False
        _pipelines.clear()


def track_ingest(connector: str, stats: IngestCounters, tracker: AckView) -> None:
    if not _enabled:
        return
    with _lock:
        _pipelines.append(TrackedPipeline(connector, stats, tracker.latency, weakref.ref(tracker)))


def ingest_pipelines(connector: str) -> list[TrackedPipeline]:
    with _lock:
        return [p for p in _pipelines if p.connector == connector]

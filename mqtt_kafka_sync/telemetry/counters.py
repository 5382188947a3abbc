"""What the data paths count into on their hot threads: plain slotted objects, no locks, no allocation.

:class:`Buckets` is a fixed-bucket histogram cheap enough for the ingest network thread (one
bisect, two adds); :class:`RouteCounters` holds one route's traffic.

OpenTelemetry's own ``Histogram.record`` costs microseconds per call (attribute handling, locks), a
third of a message's whole budget on the hot path, and its data would stay in the task process
anyway. So a task counts into fixed buckets here; its stats loop copies the counts into shared
memory twice a second, and the supervisor hands them to OpenTelemetry as histogram points
(:mod:`mqtt_kafka_sync.telemetry.bridge`).

One writer thread per histogram; readers (the stats loop) copy ``counts`` and ``sum`` without a
lock: a copy may be one observation behind in ``sum``, never inconsistent across buckets for long.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from mqtt_kafka_sync.telemetry.catalog import LATENCY_BOUNDS


class RouteCounters:
    """One route's traffic: messages and payload bytes received, messages and value bytes delivered."""

    __slots__ = ("delivered", "delivered_bytes", "received", "received_bytes")

    def __init__(self) -> None:
        self.received = 0
        self.received_bytes = 0
        self.delivered = 0
        self.delivered_bytes = 0


class Buckets:
    """``counts[i]`` holds observations ``<= bounds[i]`` and above the bound before; the last, the rest."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BOUNDS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

"""The shards a sharded task owns, seen by its metrics and ``/readyz`` as one task.

The probe (``telemetry/probe.py``) reads ``worker.task.subscriber`` and ``worker.task.sink`` of an
ingest worker. A sharded task has one session per owned shard, coming and going with the group's
assignment, so the subscriber view sums or combines what the owned shards report, plus what shards
released earlier counted (totals never go down). The sink is the task's one producer, shared by
the shards, as it is. A task that owns no shard (more workers
than shards, or between assignments) is connected and subscribed as far as readiness goes (it is a
standby, which is a working state); Kafka is up when its producer's connection is.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping

from mqtt_kafka_sync.ingest.task import IngestTask
from mqtt_kafka_sync.kafka.producer import KafkaSink
from mqtt_kafka_sync.mqtt.failures import Failure

Tasks = Callable[[], list[IngestTask]]


class RetiredCounts:
    """What released shards' sessions counted."""

    def __init__(self) -> None:
        self.reconnects = 0
        self.redeliveries = 0
        self.mqtt_failures: Counter[str] = Counter()

    def add(self, task: IngestTask) -> None:
        subscriber = task.subscriber
        self.reconnects += subscriber.reconnects
        self.redeliveries += subscriber.redeliveries
        self.mqtt_failures.update(subscriber.failures.counts)


class ShardFailures:
    def __init__(self, tasks: Tasks, retired: RetiredCounts) -> None:
        self._tasks = tasks
        self._retired = retired

    @property
    def current(self) -> Failure | None:
        return next((f for t in self._tasks() if (f := t.subscriber.failures.current) is not None), None)

    @property
    def counts(self) -> Mapping[str, int]:
        total = Counter(self._retired.mqtt_failures)
        for task in self._tasks():
            total.update(task.subscriber.failures.counts)
        return total


class ShardSubscribers:
    """``subscriber`` of the probe: every owned shard's session at once."""

    def __init__(self, tasks: Tasks, retired: RetiredCounts, settled: Callable[[], bool]) -> None:
        self._tasks = tasks
        self._retired = retired
        self._settled = settled
        self.failures = ShardFailures(tasks, retired)

    @property
    def subscribed(self) -> bool:
        """Running every shard assigned to it, and each one's subscription acknowledged."""
        return self._settled() and all(t.subscriber.subscribed for t in self._tasks())

    @property
    def reconnects(self) -> int:
        return self._retired.reconnects + sum(t.subscriber.reconnects for t in self._tasks())

    @property
    def redeliveries(self) -> int:
        return self._retired.redeliveries + sum(t.subscriber.redeliveries for t in self._tasks())

    @property
    def loop_turned_at(self) -> float:
        return min((t.subscriber.loop_turned_at for t in self._tasks()), default=time.monotonic())

    def wait_connected(self, timeout: float) -> bool:
        return all(t.subscriber.wait_connected(timeout) for t in self._tasks())


class ShardsTask:
    """``worker.task`` of a sharded worker, for the probe."""

    def __init__(self, tasks: Tasks, settled: Callable[[], bool], sink: KafkaSink) -> None:
        self.retired = RetiredCounts()
        self.subscriber = ShardSubscribers(tasks, self.retired, settled)
        self.sink = sink
        self.pacer = None

"""Runs every task of every connector as its own process and keeps them running.

A task process that dies is started again with the same MQTT client id, so it resumes its
persistent session and the broker re-sends what it had not acknowledged. On SIGINT/SIGTERM the
supervisor asks each task to drain (stop taking messages, let Kafka confirm what is in flight, ack
it) and exits 0 once they have.

Task processes, the config check and the lag reader are started by ``child_process.start_child``,
not multiprocessing, so no resource tracker joins the tree. Each task slot has two shared-memory
blocks (``shared_block.py``) its process writes every 0.5 s: the counters of ``--status-file`` and
the metrics block (``telemetry/shared.py``). With telemetry settings the supervisor serves them on
one port (``/metrics``, ``/healthz``, ``/readyz``) and exports OTLP.

Consumer lag, for the metrics and for every throttled task, is read by one child process of the
supervisor (``kafka/lag_hub.py``, planned in ``runtime/lag.py``); a throttled task reads its lag
from a shared-memory feed the supervisor writes (``kafka/lag_feed.py``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mqtt_kafka_sync.child_process import ChildProcess, start_child
from mqtt_kafka_sync.config.model import ConnectorConfig, SourceConnectorConfig
from mqtt_kafka_sync.errors import SyncError
from mqtt_kafka_sync.logs import configure_logging
from mqtt_kafka_sync.runtime.lag import lag_watches, throttle_feeds
from mqtt_kafka_sync.runtime.task_process import STAT_FIELDS, task_main
from mqtt_kafka_sync.shared_block import SharedBlock, integers
from mqtt_kafka_sync.signals import stop_on_signals
from mqtt_kafka_sync.telemetry.settings import TelemetrySettings
from mqtt_kafka_sync.telemetry.shared import TaskMetrics, TaskSnapshot

if TYPE_CHECKING:  # imported where used: a run without lag reader or metrics loads neither
    from mqtt_kafka_sync.kafka.lag_feed import LagFeed
    from mqtt_kafka_sync.kafka.lag_hub import LagHub
    from mqtt_kafka_sync.telemetry.service import TelemetryService

logger = logging.getLogger(__name__)


class SharedMemoryError(SyncError):
    """The counters shared with the task processes could not be created (no memory, no fds)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(
            f"cannot create the shared memory the task processes report through ({cause.strerror or cause}); "
            "it is a few KB of anonymous memory (memfd_create) per task, counted in the process's memory: "
            "raise the container's memory limit, or the open-file limit (ulimit -n) if it says too many "
            "open files"
        )


@dataclass
class TaskSlot:
    config: ConnectorConfig
    index: int
    stats: SharedBlock[int]
    metrics: TaskMetrics
    lag_feed: LagFeed | None = None
    """Where the supervisor's lag reader writes this task's throttle lag (throttled tasks only)."""
    process: ChildProcess | None = None
    restarts: int = 0
    """Consecutive restarts (the backoff); reset after a minute alive."""
    restarts_total: int = 0
    next_start: float = 0.0
    started_at: float = field(default_factory=time.monotonic)

    @property
    def label(self) -> str:
        return f"{self.config.name}/task-{self.index}"


class Supervisor:
    def __init__(
        self,
        configs: Sequence[ConnectorConfig],
        *,
        drain_timeout: float = 30.0,
        log_level: int = logging.WARNING,
        telemetry: TelemetrySettings | None = None,
    ) -> None:
        self.configs = list(configs)
        watches = lag_watches(configs, telemetry.lag_interval_s if telemetry is not None else None)
        self.lag: LagHub | None = None
        """The one lag reader process, for the metrics and every throttle (None: nobody needs lag)."""
        if watches:
            from mqtt_kafka_sync.kafka.lag_hub import LagHub  # noqa: PLC0415 - loads confluent-kafka

            self.lag = LagHub(watches, functools.partial(configure_logging, log_level))
        try:
            feeds = throttle_feeds(configs, self.lag)
            self.slots = [
                TaskSlot(c, i, integers(len(STAT_FIELDS)), TaskMetrics(c, i), feeds.get(c.name))
                for c in configs
                for i in range(c.tasks_max)
            ]
        except OSError as exc:
            raise SharedMemoryError(exc) from None
        self._status_failing = False
        self._drain_timeout = drain_timeout
        self._log_level = log_level
        self._stop = threading.Event()
        self.telemetry: TelemetryService | None = None
        if telemetry is not None:
            from mqtt_kafka_sync.telemetry.service import TelemetryService  # noqa: PLC0415 - the OTel SDK

            lag_samples = self.lag.samples if self.lag is not None else list
            self.telemetry = TelemetryService(telemetry, self.snapshots, lag_samples)

    def request_stop(self) -> None:
        self._stop.set()

    def totals(self) -> dict[str, int]:
        """Counters summed over all tasks (received, produced, dead_lettered, acked, subscribed)."""
        totals = dict.fromkeys(STAT_FIELDS, 0)
        for slot in self.slots:
            for name, value in zip(STAT_FIELDS, slot.stats[:], strict=True):
                totals[name] += value
        return totals

    def status(self) -> dict[str, object]:
        """Per-task counters and liveness, as ``run --status-file`` writes them."""
        tasks = []
        for slot in self.slots:
            proc = slot.process
            entry: dict[str, object] = {
                "task": slot.label,
                "pid": proc.pid if proc is not None else None,
                "alive": proc is not None and proc.is_alive(),
                "restarts": slot.restarts,
            }
            entry.update(zip(STAT_FIELDS, slot.stats[:], strict=True))
            if slot.metrics.layout.shard_filters:
                alive = bool(entry["alive"])
                entry["shards"] = (
                    slot.metrics.snapshot(alive, slot.restarts_total).owned_shards() if alive else []
                )
            tasks.append(entry)
        return {"tasks": tasks, "totals": self.totals()}

    def snapshots(self) -> list[TaskSnapshot]:
        """Every task's metrics block now, with its liveness (what the telemetry exports)."""
        return [
            slot.metrics.snapshot(slot.process is not None and slot.process.is_alive(), slot.restarts_total)
            for slot in self.slots
        ]

    def write_status(self, path: Path) -> bool:
        """Write the status file; best effort: a failure (a full disk) is logged once, never fatal,
        and the next call tries again. Returns whether it was written."""
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.status()))
            tmp.replace(path)
        except OSError as exc:
            if not self._status_failing:
                logger.error("cannot write the status file %s (%s); trying again every second", path, exc)
                self._status_failing = True
            with contextlib.suppress(OSError):
                tmp.unlink()
            return False
        if self._status_failing:
            logger.warning("status file %s written again", path)
            self._status_failing = False
        return True

    def run(
        self,
        on_tick: Callable[[Supervisor], object] | None = None,
        tick: float = 1.0,
        *,
        handle_signals: bool = True,
    ) -> int:
        """Run until SIGINT/SIGTERM (or :meth:`request_stop`), then drain every task; returns 0.

        Raises :class:`~mqtt_kafka_sync.telemetry.exceptions.TelemetryError` before starting any
        task when the metrics port cannot be bound, and
        :class:`~mqtt_kafka_sync.kafka.assignment.CoordinationTopicError` when a sharded
        connector's coordination topic has another partition count than it has shards.
        """
        self._prepare_shards()
        if self.telemetry is not None:
            self.telemetry.start()
        if self.lag is not None:
            self.lag.start()
        with stop_on_signals(self._stop) if handle_signals else contextlib.nullcontext():
            return self._run(tick, on_tick)

    def _run(self, tick: float, on_tick: Callable[[Supervisor], object] | None) -> int:
        try:
            next_tick = time.monotonic() + tick
            while not self._stop.is_set():
                self._keep_alive()
                if on_tick is not None and time.monotonic() >= next_tick:
                    on_tick(self)
                    next_tick += tick
                self._stop.wait(0.2)
            if self.telemetry is not None:
                self.telemetry.stopping = True  # /readyz: 503 while draining
            return self._drain_all()
        finally:
            if self.telemetry is not None:
                self.telemetry.stop()
            if self.lag is not None:
                self.lag.stop()

    def _prepare_shards(self) -> None:
        """Sharded connectors: their coordination topics, before any task starts."""
        sharded = [c for c in self.configs if isinstance(c, SourceConnectorConfig) and c.shards is not None]
        if sharded:
            from mqtt_kafka_sync.ingest.shards import prepare_shards  # noqa: PLC0415 - sharded mode only

            for config in sharded:
                prepare_shards(config)

    def _keep_alive(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            proc = slot.process
            if proc is not None and proc.is_alive():
                if now - slot.started_at > 60:
                    slot.restarts = 0
                continue
            if proc is not None:
                delay = min(30.0, 0.5 * 2**slot.restarts)
                logger.warning(
                    "%s exited with code %s; starting it again in %.1fs", slot.label, proc.exitcode, delay
                )
                slot.restarts += 1
                slot.restarts_total += 1
                slot.next_start = now + delay
                slot.process = None
                proc.close()
                slot.metrics.retire()
            if now >= slot.next_start:
                self._start(slot)

    def _start(self, slot: TaskSlot) -> None:
        shared = [slot.stats.fd, slot.metrics.block.fd]
        if slot.lag_feed is not None:
            shared.append(slot.lag_feed.fd)
        try:
            slot.process = start_child(
                task_main,
                name=slot.label,
                args=(slot.config, slot.index),
                kwargs={
                    "stats": slot.stats,
                    "metrics": slot.metrics.block,
                    "log_level": self._log_level,
                    "drain_timeout": self._drain_timeout,
                    "lag_feed": slot.lag_feed,
                },
                pass_fds=shared,
            )
        except OSError as exc:  # no memory or no process slot left: try again as after a crash
            logger.error("cannot start %s (%s); trying again in %.1fs", slot.label, exc, 5.0)
            slot.next_start = time.monotonic() + 5.0
            return
        slot.started_at = time.monotonic()

    def _drain_all(self) -> int:
        running = [s.process for s in self.slots if s.process is not None and s.process.is_alive()]
        for proc in running:
            proc.terminate()  # SIGTERM: the task drains
        deadline = time.monotonic() + self._drain_timeout + 10
        for proc in running:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                logger.error(
                    "%s did not stop in time; killing it (the broker redelivers its messages)", proc.name
                )
                proc.kill()
                proc.join(5)
        return 0

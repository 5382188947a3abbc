"""The body of one task process: build the task, run it until SIGTERM, drain, exit.

Every 0.5 s its main thread copies the worker's counters into the supervisor's shared arrays: the
status counters, and the metrics block through :class:`~mqtt_kafka_sync.telemetry.probe.Probe`.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
import threading
from multiprocessing.sharedctypes import SynchronizedArray
from typing import Protocol

from mqtt_kafka_sync.config.model import ConnectorConfig, RelayConnectorConfig
from mqtt_kafka_sync.runtime.logs import configure_logging, dump_stacks_on_sigusr1
from mqtt_kafka_sync.telemetry import registry
from mqtt_kafka_sync.telemetry.probe import Probe

logger = logging.getLogger(__name__)

STAT_FIELDS = ("received", "produced", "dead_lettered", "acked", "subscribed")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the supervisor dies, as a crash of the whole worker would."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:
            logger.debug("prctl(PR_SET_PDEATHSIG) unavailable")


def _tune_gc() -> None:
    """The hot path allocates many short-lived objects that reference counting frees (no cycles).

    With the default generation-0 threshold (700 allocations) the cyclic collector ran thousands of
    times a second and scanned every long-lived object each time: 28% of a task's CPU in a profile
    of a backlog drain. Freezing what start-up built and collecting less often took the drain from
    42,000 to 51,000 messages/s (loadtests, docs/benchmarks.md).
    """
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


class Worker(Protocol):
    """What a task runs: an ingest or a relay worker."""

    def start(self) -> None: ...
    def snapshot(self) -> dict[str, int]: ...
    def drain(self, timeout: float) -> bool: ...


def _worker(config: ConnectorConfig, index: int) -> tuple[Worker, str]:
    """The worker for ``config``'s connector class, and what it reads from, for the log."""
    # Imported here: keep the spawn import light.
    if isinstance(config, RelayConnectorConfig):
        from mqtt_kafka_sync.relay.worker import RelayWorker  # noqa: PLC0415

        topics = ", ".join(config.kafka_topics())
        return RelayWorker(config, index, exit_on_crash=True), f"{topics} (group {config.kafka_group_id})"
    from mqtt_kafka_sync.ingest.worker import IngestWorker  # noqa: PLC0415

    return IngestWorker(config, index), ", ".join(config.shared_filters())


def task_main(
    config: ConnectorConfig,
    index: int,
    *,
    stats: SynchronizedArray[int],
    metrics: SynchronizedArray[float],
    log_level: int,
    drain_timeout: float,
) -> None:
    _die_with_parent()
    configure_logging(log_level)
    dump_stacks_on_sigusr1()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which sends SIGTERM
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    registry.enable()
    worker, reads = _worker(config, index)
    probe = Probe(config, worker, metrics)
    _tune_gc()
    worker.start()
    announced = False
    while not stop.wait(0.5):
        snapshot = worker.snapshot()
        stats[:] = [snapshot[name] for name in STAT_FIELDS]
        probe.write()
        if snapshot["subscribed"] and not announced:
            logger.info(
                "%s task %d (pid %d) subscribed to %s",
                config.name,
                index,
                os.getpid(),
                reads,
            )
            announced = True
        if os.getppid() == 1:
            break
    worker.drain(drain_timeout)
    snapshot = worker.snapshot()
    stats[:] = [snapshot[name] for name in STAT_FIELDS]
    probe.write()

"""The body of one task process: build the task, run it until SIGTERM, drain, exit."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
import threading
from multiprocessing.sharedctypes import SynchronizedArray

from mqtt_kafka_sync.config.model import SourceConnectorConfig
from mqtt_kafka_sync.runtime.logs import configure_logging

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


def task_main(
    config: SourceConnectorConfig,
    index: int,
    stats: SynchronizedArray[int],
    log_level: int,
    drain_timeout: float,
) -> None:
    _die_with_parent()
    configure_logging(log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which sends SIGTERM
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    from mqtt_kafka_sync.ingest.worker import IngestWorker  # noqa: PLC0415 - keep the spawn import light

    worker = IngestWorker(config, index)
    _tune_gc()
    worker.start()
    announced = False
    while not stop.wait(0.5):
        snapshot = worker.snapshot()
        stats[:] = [snapshot[name] for name in STAT_FIELDS]
        if snapshot["subscribed"] and not announced:
            logger.info(
                "%s task %d (pid %d) subscribed to %s",
                config.name,
                index,
                os.getpid(),
                ", ".join(config.shared_filters()),
            )
            announced = True
        if os.getppid() == 1:
            break
    worker.drain(drain_timeout)
    snapshot = worker.snapshot()
    stats[:] = [snapshot[name] for name in STAT_FIELDS]

"""The body of one task process: build the task, run it until SIGTERM, drain, exit.

Every 0.5 s its main thread copies the worker's counters into the supervisor's shared arrays: the
status counters, and the metrics block through :class:`~mqtt_kafka_sync.telemetry.probe.Probe`.
The process makes the one :class:`~mqtt_kafka_sync.telemetry.registry.PipelineRegistry` its
pipelines register in and the probe reads, and hands a throttled worker the lag feed the supervisor
writes (``kafka/lag_feed.py``), so the task reads no lag itself.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Protocol

from mqtt_kafka_sync.config.model import ConnectorConfig, RelayConnectorConfig
from mqtt_kafka_sync.logs import configure_logging, dump_stacks_on_sigusr1
from mqtt_kafka_sync.signals import stop_on_signals

if TYPE_CHECKING:  # the supervisor imports this module for task_main: what only the task needs, it imports
    from mqtt_kafka_sync.kafka.lag_feed import LagFeed
    from mqtt_kafka_sync.shared_block import SharedBlock
    from mqtt_kafka_sync.telemetry.probe import Probe

logger = logging.getLogger(__name__)

STAT_FIELDS = ("received", "produced", "dead_lettered", "acked", "subscribed")
_PR_SET_PDEATHSIG = 1
THREAD_CRASH_EXIT_CODE = 70
"""Exit code of a task process one of whose threads died (EX_SOFTWARE)."""


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the supervisor dies, as a crash of the whole worker would."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:
            logger.debug("prctl(PR_SET_PDEATHSIG) unavailable")


def _exit_on_thread_crash(args: threading.ExceptHookArgs) -> None:
    """Any exception that escapes a thread of the task ends the task process.

    A task whose MQTT or Kafka thread died would otherwise live on half-alive: connected, green on
    every signal, acknowledging nothing. Exiting lets the supervisor restart it (its restarts show in
    ``mqtt_kafka_sync_task_restarts_total``) and the broker redeliver what was unacknowledged.
    """
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    logger.critical(
        "thread %s of the task died; exiting so the supervisor restarts the task",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
    )
    logging.shutdown()
    os._exit(THREAD_CRASH_EXIT_CODE)


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


def _worker(
    config: ConnectorConfig, index: int, metrics: SharedBlock[float], lag_feed: LagFeed | None
) -> tuple[Worker, Probe, str]:
    """The worker for ``config``'s connector class, its probe, and what it reads from, for the log."""
    # Imported here: the task's, not the supervisor's (docs/benchmarks.md, "Memory of `run`").
    from mqtt_kafka_sync.telemetry.probe import ingest_probe, relay_probe  # noqa: PLC0415
    from mqtt_kafka_sync.telemetry.registry import PipelineRegistry  # noqa: PLC0415

    if isinstance(config, RelayConnectorConfig):
        from mqtt_kafka_sync.relay.worker import RelayWorker  # noqa: PLC0415

        relay = RelayWorker(config, index, exit_on_crash=True)
        topics = ", ".join(config.kafka_topics())
        return relay, relay_probe(config, relay, metrics), f"{topics} (group {config.kafka_group_id})"
    pipelines = PipelineRegistry()
    if config.shards is not None:
        from mqtt_kafka_sync.ingest.shards import ShardedWorker  # noqa: PLC0415

        sharded = ShardedWorker(config, index, telemetry=pipelines)
        probe = ingest_probe(config, sharded, metrics, pipelines, owned_shards=lambda: sharded.owned)
        return sharded, probe, f"shards of group {config.shards.group} ({len(config.shards.filters)} shards)"
    from mqtt_kafka_sync.ingest.worker import IngestWorker  # noqa: PLC0415
    from mqtt_kafka_sync.runtime.lag import fed_lag  # noqa: PLC0415

    lag = fed_lag(config, lag_feed) if lag_feed is not None else None
    ingest = IngestWorker(config, index, lag=lag, telemetry=pipelines)
    return ingest, ingest_probe(config, ingest, metrics, pipelines), ", ".join(config.shared_filters())


def task_main(
    config: ConnectorConfig,
    index: int,
    *,
    stats: SharedBlock[int],
    metrics: SharedBlock[float],
    log_level: int,
    drain_timeout: float,
    lag_feed: LagFeed | None = None,
) -> None:
    _die_with_parent()
    configure_logging(log_level)
    dump_stacks_on_sigusr1()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which sends SIGTERM
    stop = threading.Event()
    with stop_on_signals(stop, (signal.SIGTERM,)):
        _serve(
            config,
            index,
            stats=stats,
            metrics=metrics,
            lag_feed=lag_feed,
            drain_timeout=drain_timeout,
            stop=stop,
        )


def _serve(
    config: ConnectorConfig,
    index: int,
    *,
    stats: SharedBlock[int],
    metrics: SharedBlock[float],
    lag_feed: LagFeed | None,
    drain_timeout: float,
    stop: threading.Event,
) -> None:
    """Run the task until ``stop`` is set (SIGTERM) or the supervisor is gone, then drain."""
    threading.excepthook = _exit_on_thread_crash
    worker, probe, reads = _worker(config, index, metrics, lag_feed)
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

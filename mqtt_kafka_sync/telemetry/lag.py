"""Consumer lag for the metrics, read by the supervisor from the outside (committed offsets vs log end).

Which groups: every relay connector's ``kafka.group.id`` on its command topics, and every source
connector's ``throttle.lag.groups`` on the topics its routes write. Reading from the outside (the
admin API, ``kafka/lag.py``) shows a group's lag even when none of its consumers runs, which is
exactly when it matters; each read also fetches the record at the committed offset of lagging
partitions, for the time lag. A group whose lag cannot be read has no lag series until it can
(logged once when that starts and once when it ends). The reads run in a child process
(:class:`LagPoller` says why).
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess

from confluent_kafka import KafkaException

from mqtt_kafka_sync.config.model import ConnectorConfig, RelayConnectorConfig
from mqtt_kafka_sync.errors import LagReadError
from mqtt_kafka_sync.kafka.lag import LagReader, LagSnapshot
from mqtt_kafka_sync.throttle.lag_throttle import route_topics

logger = logging.getLogger(__name__)
_ctx = multiprocessing.get_context("spawn")

TopicFilter = Callable[[str], bool]


@dataclass(frozen=True)
class LagPoint:
    group: str
    topic: str
    partition: int
    lag: int
    time_lag_s: float | None


@dataclass
class _Watch:
    bootstrap: str
    group: str
    filters: list[TopicFilter]
    reader: LagReader | None = None
    failing: bool = False

    def accepts(self, topic: str) -> bool:
        return any(f(topic) for f in self.filters)


def _subscription_filter(topics: Sequence[str]) -> TopicFilter:
    """Topics a relay subscription reads: names, or ``^`` patterns matched as librdkafka does."""
    names = {t for t in topics if not t.startswith("^")}
    patterns = [re.compile(t) for t in topics if t.startswith("^")]
    return lambda topic: topic in names or any(p.search(topic) for p in patterns)


def watches(configs: Iterable[ConnectorConfig]) -> list[_Watch]:
    found: dict[tuple[str, str], _Watch] = {}

    def add(bootstrap: str, group: str, topic_filter: TopicFilter) -> None:
        watch = found.setdefault((bootstrap, group), _Watch(bootstrap, group, []))
        watch.filters.append(topic_filter)

    for config in configs:
        if isinstance(config, RelayConnectorConfig):
            add(
                config.kafka.bootstrap_servers,
                config.kafka_group_id,
                _subscription_filter(config.kafka_topics()),
            )
        elif config.throttle is not None:
            for group in config.throttle.groups:
                add(config.kafka.bootstrap_servers, group, route_topics(config.routes))
    return list(found.values())


class _Reads:
    """Reads every watched group's lag once per :meth:`poll_once`; logs once per change of state."""

    def __init__(self, configs: Iterable[ConnectorConfig]) -> None:
        self._watches = watches(configs)

    def poll_once(self) -> list[LagPoint]:
        points: list[LagPoint] = []
        for watch in self._watches:
            points.extend(self._read(watch) or ())
        return points

    def _read(self, watch: _Watch) -> list[LagPoint] | None:
        try:
            if watch.reader is None:
                watch.reader = LagReader(watch.bootstrap, [watch.group], topics=watch.accepts, timeout=5.0)
            snapshot = watch.reader.read(time_lag=True)
        except (LagReadError, KafkaException) as exc:
            if not watch.failing:
                logger.warning(
                    "consumer lag of group %s unreadable (%s); no lag metrics for it", watch.group, exc
                )
            watch.failing = True
            return None
        if watch.failing:
            logger.warning("consumer lag of group %s readable again", watch.group)
        watch.failing = False
        return _points(snapshot)


def _read_forever(
    configs: list[ConnectorConfig], interval: float, out: Connection, setup: Callable[[], None]
) -> None:
    """The lag reader process: read, send, sleep; exits when the supervisor is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    setup()
    reads = _Reads(configs)
    while True:
        points = reads.poll_once()
        try:
            out.send(points)
        except OSError:  # the supervisor closed its end, or died
            return
        time.sleep(interval)


class LagPoller:
    """Reads the watched groups' lag every ``interval`` seconds, in a child process of its own.

    Why a process: librdkafka's admin client can crash the process it runs in (a NULL dereference
    when ListConsumerGroupOffsets meets NOT_COORDINATOR, e.g. for a group the coordinator is still
    loading: librdkafka#5040). The supervisor must not go down with it, so a thread here starts the
    reader process, takes its results from a pipe, and starts it again 5 s after it died (logged).
    ``setup`` runs first in the child (logging); it must be picklable.
    """

    RESTART_S = 5.0

    def __init__(
        self, configs: Iterable[ConnectorConfig], interval: float, setup: Callable[[], None]
    ) -> None:
        self._configs = list(configs)
        self._enabled = bool(watches(self._configs))
        self._interval = interval
        self._setup = setup
        self._points: list[LagPoint] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._process: SpawnProcess | None = None
        self._thread = threading.Thread(target=self._run, name="lag-poller", daemon=True)

    def start(self) -> None:
        if self._enabled:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10.0)

    def points(self) -> list[LagPoint]:
        with self._lock:
            return list(self._points)

    def _run(self) -> None:
        while not self._stop.is_set():
            code = self._run_child()
            with self._lock:
                self._points = []
            if self._stop.is_set():
                return
            logger.warning(
                "lag reader process exited (code %s); no lag metrics until it runs again in %.0fs",
                code,
                self.RESTART_S,
            )
            self._stop.wait(self.RESTART_S)

    def _run_child(self) -> int | None:
        reader, writer = _ctx.Pipe(duplex=False)
        process = _ctx.Process(
            target=_read_forever,
            args=(self._configs, self._interval, writer, self._setup),
            name="lag-reader",
            daemon=True,
        )
        process.start()
        writer.close()
        try:
            while not self._stop.is_set():
                try:
                    if reader.poll(0.5):
                        points = reader.recv()
                        with self._lock:
                            self._points = points
                    elif not process.is_alive():
                        break
                except (EOFError, OSError):
                    break
        finally:
            reader.close()
            if process.is_alive():
                process.terminate()
            process.join(10.0)
        return process.exitcode


def _points(snapshot: LagSnapshot) -> list[LagPoint]:
    return [
        LagPoint(s.group, s.topic, s.partition, s.lag, s.time_lag_s)
        for g in snapshot.groups
        for s in g.partitions
        if s.lag is not None
    ]

"""The supervisor's one lag reader process: every group's lag, for the metrics and every throttle.

``mqtt-kafka-sync run`` reads consumer lag for two users: the metrics (every relay connector's group
and every throttle group, with the time lag) and each throttled ingest task (its
``throttle.lag.groups`` on the topics its routes write). Both read the same groups, so one child
process reads each group once per interval, at the shortest interval anyone needs (a throttle's
``throttle.lag.interval.seconds`` may be shorter than the metrics' interval); the time lag, which
costs a fetch per lagging partition, only as often as the metrics want it. The supervisor's
:class:`LagHub` takes every reading from a pipe and

- keeps each group's latest reading with the time lag for the metrics (:meth:`LagHub.samples`); a
  group whose read failed has no lag series until a read succeeds again;
- writes each throttle's lag into its task's :class:`~mqtt_kafka_sync.kafka.lag_feed.LagFeed`: the
  largest total among its groups, counted on its own topics only.

Why a child process: librdkafka's admin client can crash the process it runs in (a NULL dereference
when ListConsumerGroupOffsets meets NOT_COORDINATOR, librdkafka#5040). The supervisor must not go down
with it: a crashed child is logged and started again after :attr:`LagHub.RESTART_S`; meanwhile the
metrics have no lag series and the feeds go stale, so the throttles hold their rates. A new child
forgets the baselines of partitions without a commit (``lag.py``).

Imports: confluent-kafka and the admin client are imported where the child reads (and where the hub
first needs a reading), not at the top: the supervisor imports this module, and the child only
needs the admin client; a ``run`` with no lag to read loads neither (docs/benchmarks.md, "Memory").
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mqtt_kafka_sync.child_process import ChildEnd, ChildProcess, start_with_channel
from mqtt_kafka_sync.errors import LagReadError
from mqtt_kafka_sync.kafka.lag_feed import LagFeed
from mqtt_kafka_sync.kafka.lag_process import how_it_ended
from mqtt_kafka_sync.kafka.lag_topics import TopicFilter

if TYPE_CHECKING:
    from mqtt_kafka_sync.kafka.lag import GroupLag, LagReader, LagSample
    from mqtt_kafka_sync.kafka.settings import Kafka

logger = logging.getLogger(__name__)

GroupKey = tuple[str, str]
"""(bootstrap servers, group)."""
READ_TIMEOUT_S = 5.0
"""Per admin request: one slow group delays the others' reads by at most a few of these."""


@dataclass(frozen=True)
class LagWatch:
    """One group to read: on which topics (picklable), how often, how often with the time lag."""

    kafka: Kafka
    """Its connection (crosses to the reader process with its secrets; never logged)."""
    group: str
    topics: TopicFilter
    interval: float
    time_lag_interval: float | None = None
    """None: never read the time lag (no metrics)."""

    @property
    def key(self) -> GroupKey:
        from mqtt_kafka_sync.kafka.settings import connection  # noqa: PLC0415 - see the module docstring

        return (connection(self.kafka).bootstrap_servers, self.group)


@dataclass(frozen=True)
class Reading:
    """One read of one watched group: its lag; None when it could not be read (the child logs why)."""

    key: GroupKey
    lag: GroupLag | None
    timed: bool
    """Read with the time lag."""


@dataclass
class _Schedule:
    watch: LagWatch
    reader: LagReader | None = None
    due: float = 0.0
    timed_due: float = 0.0
    failing: bool = False

    def read(self, now: float) -> Reading:
        from confluent_kafka import KafkaException  # noqa: PLC0415 - the child's, see the module docstring

        from mqtt_kafka_sync.kafka.lag import LagReader  # noqa: PLC0415

        watch = self.watch
        timed = watch.time_lag_interval is not None and now >= self.timed_due
        try:
            if self.reader is None:
                self.reader = LagReader(
                    watch.kafka, [watch.group], topics=watch.topics, timeout=READ_TIMEOUT_S
                )
            (lag,) = self.reader.read(time_lag=timed).groups
        except (LagReadError, KafkaException) as exc:
            if not self.failing:
                logger.warning("consumer lag of group %s unreadable (%s)", watch.group, exc)
            self.failing = True
            return Reading(watch.key, None, timed)
        if self.failing:
            logger.warning("consumer lag of group %s readable again", watch.group)
        self.failing = False
        if timed and watch.time_lag_interval is not None:
            self.timed_due = now + watch.time_lag_interval
        return Reading(watch.key, lag, timed)


def _read_forever(watches: Sequence[LagWatch], setup: Callable[[], None], send_to: ChildEnd) -> None:
    """The lag reader process: read each group when due, send, sleep; exits when the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    out = send_to.open()
    setup()
    schedules = [_Schedule(w) for w in watches]
    while True:
        for schedule in schedules:
            now = time.monotonic()
            if now < schedule.due:
                continue
            reading = schedule.read(now)
            schedule.due = max(schedule.due + schedule.watch.interval, now)
            try:
                out.send(reading)
            except OSError:  # the supervisor closed its end, or died
                return
        time.sleep(max(0.0, min(s.due for s in schedules) - time.monotonic()))


@dataclass
class _Feed:
    feed: LagFeed
    keys: tuple[GroupKey, ...]
    topics: TopicFilter


@dataclass
class _Latest:
    readings: dict[GroupKey, Reading] = field(default_factory=dict)
    timed: dict[GroupKey, GroupLag] = field(default_factory=dict)
    """The latest reading with the time lag of each group that is readable now: the metrics."""


class LagHub:
    """Runs the lag reader process for ``watches`` and hands its readings out; see the module docstring.

    ``setup`` runs first in the child (logging); it must be picklable.
    """

    RESTART_S = 5.0

    def __init__(self, watches: Sequence[LagWatch], setup: Callable[[], None]) -> None:
        self._watches = list(watches)
        self._setup = setup
        self._feeds: list[_Feed] = []
        self._latest = _Latest()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._process: ChildProcess | None = None
        self._thread = threading.Thread(target=self._run, name="lag-hub", daemon=True)
        self.started = 0
        """Reader processes started so far (more than one: after a crash)."""

    def feed(self, feed: LagFeed, bootstrap: str, groups: Sequence[str], topics: TopicFilter) -> None:
        """Write the lag of ``groups`` on ``topics`` into ``feed`` after every reading of one of them."""
        keys = tuple((bootstrap, g) for g in groups)
        missing = [k for k in keys if k not in {w.key for w in self._watches}]
        if missing:
            raise ValueError(f"groups not watched: {missing}")
        self._feeds.append(_Feed(feed, keys, topics))

    @property
    def pid(self) -> int | None:
        """The reader process's pid while one runs."""
        process = self._process
        return process.pid if process is not None else None

    def start(self) -> None:
        if self._watches:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10.0)

    def samples(self) -> list[LagSample]:
        """Every partition with a lag, of the latest readings with the time lag (the metrics)."""
        with self._lock:
            groups = list(self._latest.timed.values())
        return [s for g in groups for s in g.partitions if s.lag is not None]

    # -- the reading thread -----------------------------------------------------------------------
    def take(self, reading: Reading) -> None:
        """One reading from the child (the hub's thread; public for tests)."""
        with self._lock:
            latest = self._latest
            latest.readings[reading.key] = reading
            if reading.lag is None:
                latest.timed.pop(reading.key, None)
            elif reading.timed:
                latest.timed[reading.key] = reading.lag
            readings = dict(latest.readings)
        for feed in self._feeds:
            if reading.key in feed.keys:
                _write(feed, readings)

    def _run(self) -> None:
        while not self._stop.is_set():
            code = self._run_child()
            with self._lock:
                self._latest = _Latest()
            if self._stop.is_set():
                return
            logger.warning(
                "lag reader process %s; no lag metrics and throttles hold their rates until it runs "
                "again in %.0fs",
                how_it_ended(code),
                self.RESTART_S,
            )
            self._stop.wait(self.RESTART_S)

    def _run_child(self) -> int | None:
        try:
            process, reader = start_with_channel(
                _read_forever, name="lag-reader", args=(self._watches, self._setup), duplex=False
            )
        except OSError as exc:
            logger.error("cannot start the lag reader process (%s)", exc)
            return None
        self._process = process
        self.started += 1
        try:
            while not self._stop.is_set():
                try:
                    if reader.poll(0.5):
                        self.take(reader.recv())
                    elif not process.is_alive():
                        break
                except (EOFError, OSError):
                    break
        finally:
            reader.close()
            if process.is_alive():
                process.terminate()
            process.join(10.0)
            self._process = None
        return process.exitcode


def _write(feed: _Feed, readings: dict[GroupKey, Reading]) -> None:
    """The feed's lag from its groups' latest readings: unreadable when one of them is; nothing until
    each was read once."""
    from mqtt_kafka_sync.kafka.lag import LagSnapshot  # noqa: PLC0415 - loaded by the readings already

    groups: list[GroupLag] = []
    for key in feed.keys:
        reading = readings.get(key)
        if reading is None:
            return
        if reading.lag is None:
            feed.feed.put_unreadable()
            return
        groups.append(reading.lag.on(feed.topics))
    feed.feed.put(LagSnapshot(0.0, tuple(groups)).lag())

"""The throttle a data path asks before letting records through, and the thread that steers it by lag.

How the ingest uses it (``throttle/pacing.py`` holds the acknowledgements it may not send yet)::

    throttle, loop = ingest_throttle(config, tasks=config.tasks_max, lag=fed)   # None when off
    task = IngestTask(config, index, throttle=throttle)
    loop.start()           # samples lag every throttle.lag.interval.seconds, sets the rate
    ...                    # network thread: m = throttle.allow(k, now); send the first m acks, keep
                           # the rest in order; wake again after throttle.next_allowed_in(now)
    loop.stop()            # at drain

:class:`LagThrottle` implements :class:`AckThrottle`; both calls are O(1), allocate nothing and take
one short lock, so the MQTT network thread can call them for every batch of acknowledgements.
``rate``, ``last_lag``, ``mode`` and ``last_decision`` are there for metrics to read. The lag comes
from a :class:`LagSource`: under the supervisor the feed of its one lag reader process, else a
reader process of the throttle's own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from mqtt_kafka_sync.config.model import RouteConfig, SourceConnectorConfig, ThrottleConfig
from mqtt_kafka_sync.errors import LagReadError
from mqtt_kafka_sync.kafka.lag_process import IsolatedLagReader
from mqtt_kafka_sync.kafka.lag_topics import TopicTemplates
from mqtt_kafka_sync.throttle.controller import (
    ControllerSettings,
    Decision,
    Mode,
    RateController,
    TokenBucket,
)

__all__ = [
    "FixedRateThrottle",
    "LagSource",
    "LagThrottle",
    "ThrottleLoop",
    "TopicTemplates",
    "controller_settings",
    "ingest_throttle",
    "route_topics",
]
"""``TopicTemplates`` lives in ``kafka/lag_topics.py`` (the lag reader process takes it); it is
named here too because the throttle's callers build it."""

logger = logging.getLogger(__name__)

Clock = Callable[[], float]


def controller_settings(config: ThrottleConfig) -> ControllerSettings:
    return ControllerSettings(
        lag_high=config.lag_high,
        lag_low=config.lag_low,
        rate_min=config.rate_min,
        rate_max=config.rate_max,
        step=config.step_max,
        interval=config.interval_seconds,
        mode=config.mode,
    )


class LagThrottle:
    """A token bucket whose rate a :class:`RateController` sets from the lag it is given.

    In ``observe`` mode :meth:`allow` grants everything and :meth:`next_allowed_in` is always
    ``None``; the controller still runs on what actually went through, so ``rate`` and
    ``last_decision`` show what ``enforce`` would have done.
    """

    def __init__(
        self,
        settings: ControllerSettings,
        *,
        clock: Clock = time.monotonic,
        initial_rate: float | None = None,
    ) -> None:
        self.settings = settings
        self.mode: Mode = settings.mode
        self.controller = RateController(settings, initial_rate=initial_rate)
        self.bucket = TokenBucket(self.controller.rate, clock=clock)
        self._clock = clock
        self._observed = 0  # observe mode: everything let through (one writer: the caller of allow)
        self.last_decision: Decision | None = None

    # -- AckThrottle (hot path) -----------------------------------------------------------------
    def allow(self, n: int, now: float) -> int:
        if self.mode == "observe":
            self._observed += n
            return n
        return self.bucket.try_take(n, now)

    def next_allowed_in(self, now: float) -> float | None:
        if self.mode == "observe":
            return None
        wait = self.bucket.wait_time(1, now)
        return wait if wait > 0 else None

    # -- read by metrics ------------------------------------------------------------------------
    @property
    def rate(self) -> float:
        """The permitted rate, records/s (in observe mode: what enforce would permit)."""
        return self.controller.rate

    @property
    def last_lag(self) -> int | None:
        return self.last_decision.lag if self.last_decision is not None else None

    @property
    def admitted(self) -> int:
        """Records let through so far."""
        return self._observed if self.mode == "observe" else self.bucket.taken

    # -- steering (the loop's thread) -----------------------------------------------------------
    def update(self, lag: int | None, now: float | None = None) -> Decision:
        """One controller step with the lag just read (None: could not be read)."""
        now = self._clock() if now is None else now
        decision = self.controller.step(now, lag, self.admitted)
        if self.mode == "enforce" and decision.rate != decision.rate_before:
            self.bucket.set_rate(decision.rate, now)
        self.last_decision = decision
        return decision


class LagSource(Protocol):
    """Where a throttle's lag comes from: under the supervisor, the feed of its one lag reader process
    (:class:`~mqtt_kafka_sync.kafka.lag_feed.FedLagReader`); elsewhere (a replay, a task built on its
    own) a reader process of the throttle's own
    (:class:`~mqtt_kafka_sync.kafka.lag_process.IsolatedLagReader`)."""

    def read_lag(self) -> int | None:
        """The lag the controller acts on now (None: no watched partition has one); raises
        :class:`LagReadError` when it cannot be read."""
        ...

    def close(self) -> None: ...


class ThrottleLoop:
    """A daemon thread: every ``interval`` seconds, read the lag and step the throttle.

    A lag that cannot be read holds the rate (logged once when it starts failing and once when it
    recovers); the floor keeps traffic moving meanwhile.
    """

    def __init__(
        self,
        throttle: LagThrottle,
        source: LagSource,
        interval: float,
        *,
        on_decision: Callable[[Decision], None] | None = None,
        name: str = "throttle",
    ) -> None:
        """``source`` is closed at :meth:`stop`."""
        self.throttle = throttle
        self._source: LagSource | None = source
        self._interval = interval
        self._on_decision = on_decision
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._source is not None:
            self._source.close()
            self._source = None

    def sample_once(self) -> Decision:
        """Read the lag and step the throttle once (what the thread does every interval)."""
        try:
            if self._source is None:
                raise LagReadError("the throttle is stopped")
            lag = self._source.read_lag()
        except LagReadError as exc:
            if not self._failing and not self._stop.is_set():  # not a failure while shutting down
                logger.warning("throttle: cannot read consumer lag (%s); holding the rate", exc)
            self._failing = True
            lag = None
        else:
            if self._failing:
                logger.info("throttle: consumer lag readable again")
            self._failing = False
        decision = self.throttle.update(lag)
        if self._on_decision is not None:
            self._on_decision(decision)
        return decision

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.sample_once()
            except Exception:  # a dead steering thread would freeze the rate silently
                logger.exception("throttle: lag sample failed; holding the rate")


def route_topics(routes: Iterable[RouteConfig]) -> TopicTemplates:
    """The topics ``routes`` write: a throttle watches lag there only (throttling cannot shrink lag
    elsewhere)."""
    return TopicTemplates(r.kafka_topic for r in routes)


def ingest_throttle(
    config: SourceConnectorConfig,
    *,
    tasks: int = 1,
    clock: Clock = time.monotonic,
    lag: LagSource | None = None,
) -> tuple[LagThrottle, ThrottleLoop] | None:
    """The throttle of one ingest task and its loop (not started); None when throttling is off.

    ``tasks``: how many tasks share the connector's rates (``tasks.max``); each gets an even share
    of ``throttle.rate.min``, ``throttle.rate.max`` and ``throttle.step.max``. The lag of the
    ``throttle.lag.groups`` on the topics the connector's routes write comes from ``lag`` (under the
    supervisor: its lag reader's feed), else from a reader process of the task's own
    (``lag_process.py`` says why a process).
    """
    cfg = config.throttle
    if cfg is None:
        return None
    settings = controller_settings(cfg).share(1.0 / tasks)
    throttle = LagThrottle(settings, clock=clock)
    if lag is None:
        lag = IsolatedLagReader(
            config.kafka,
            cfg.groups,
            topics=route_topics(config.routes),
            name=f"lag-reader-{config.name}",
        )
    return throttle, ThrottleLoop(throttle, lag, cfg.interval_seconds, name=f"throttle-{config.name}")


class FixedRateThrottle:
    """An :class:`AckThrottle` at a constant rate (the replay's ``--rate-max`` without lag groups)."""

    def __init__(self, rate: float, *, clock: Clock = time.monotonic) -> None:
        self.bucket = TokenBucket(rate, clock=clock)
        self.rate = rate

    def allow(self, n: int, now: float) -> int:
        return self.bucket.try_take(n, now)

    def next_allowed_in(self, now: float) -> float | None:
        wait = self.bucket.wait_time(1, now)
        return wait if wait > 0 else None

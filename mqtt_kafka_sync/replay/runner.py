"""A planned replay, run: the target opened, the throttle wired to its lag reader, the copy loop
driven until done, stopped or failed.

::

    with ReplayRunner(session, planned, events) as runner:   # the target, open (MQTT: connected)
        result = runner.run()                                 # until done, or runner.stop is set

``runner.stop`` is the one way to end a run early (the command sets it on SIGINT and SIGTERM): the
copy loop stops reading, waits up to 10 s for what was sent, checkpoints, and returns an incomplete
:class:`~mqtt_kafka_sync.replay.progress.ReplayResult`. A target that stalls (MQTT: nothing
confirmed for ``--stall-timeout`` seconds) fails the run with :class:`ReplayError` instead.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Protocol

from mqtt_kafka_sync.kafka.lag_process import IsolatedLagReader
from mqtt_kafka_sync.kafka.lag_topics import TopicTemplates
from mqtt_kafka_sync.replay.copier import Copier
from mqtt_kafka_sync.replay.mqtt_target import STALL_TIMEOUT_S, MqttTarget, mqtt_target
from mqtt_kafka_sync.replay.progress import Progress, ReplayResult
from mqtt_kafka_sync.replay.session import Planned, ReplaySession
from mqtt_kafka_sync.replay.target import KafkaTarget
from mqtt_kafka_sync.replay.to_mqtt import dead_letter_summary
from mqtt_kafka_sync.throttle.controller import Decision
from mqtt_kafka_sync.throttle.lag_throttle import FixedRateThrottle, LagThrottle, ThrottleLoop
from mqtt_kafka_sync.throttle.pacing import AckThrottle

KAFKA_FINAL_WAIT_S = 30.0
"""Seconds a Kafka target gets to confirm the last records once all were sent."""


class RunEvents(Protocol):
    """What a run reports while it goes (the command prints them)."""

    def progress(self, progress: Progress) -> None: ...

    def decision(self, decision: Decision) -> None: ...


class ReplayRunner:
    """Runs one :class:`Planned` replay of a :class:`ReplaySession`; see the module docstring."""

    def __init__(self, session: ReplaySession, planned: Planned, events: RunEvents) -> None:
        self.stop = threading.Event()
        """Set it to stop the run cleanly (confirmed records checkpointed)."""
        self._session = session
        self._planned = planned
        self._events = events
        self._target: KafkaTarget | MqttTarget | None = None

    @property
    def stall_timeout(self) -> float:
        return self._session.request.stall_timeout or STALL_TIMEOUT_S

    def open(self) -> None:
        """Open the target, ready to send (for MQTT: once the broker accepted the connection)."""
        session, plan = self._session, self._planned.checkpoint.plan
        relay = session.relay
        if relay is None:
            self._target = KafkaTarget(
                session.target_kafka,
                plan.target,
                same_partitions=plan.same_partitions,
                client_id=session.client_id,
            )
            return
        target = mqtt_target(
            relay,
            expiry_from=session.request.expiry_from or "written",
            stall_timeout=self.stall_timeout,
            stop=self.stop,
        )
        try:
            target.connect(relay.mqtt.connect_timeout_seconds)
        except BaseException:
            target.close()
            raise
        self._target = target

    def run(self) -> ReplayResult:
        """Copy until the plan is done or :attr:`stop` is set; raises :class:`ReplayError`."""
        target = self._target
        if target is None:
            raise RuntimeError("open() the runner first")
        session, planned = self._session, self._planned
        throttle: AckThrottle | None = None
        loop: ThrottleLoop | None = None
        if planned.settings is not None:
            lag_throttle = LagThrottle(planned.settings)
            reader = IsolatedLagReader(
                session.target_kafka, planned.groups, topics=TopicTemplates(planned.watched)
            )
            loop = ThrottleLoop(
                lag_throttle, reader, planned.settings.interval, on_decision=self._events.decision
            )
            throttle = lag_throttle
        elif planned.fixed_rate is not None:
            throttle = FixedRateThrottle(planned.fixed_rate)
        copier = Copier(
            planned.checkpoint,
            planned.path,
            session.consumer,
            target,
            throttle=throttle,
            stop=self.stop,
            on_progress=self._events.progress,
            progress_interval=session.request.progress_interval,
            final_wait=self.stall_timeout if isinstance(target, MqttTarget) else KAFKA_FINAL_WAIT_S,
        )
        if loop is not None:
            loop.start()
        try:
            return copier.run()
        finally:
            if loop is not None:
                loop.stop()

    def dead_letter_summary(self) -> str | None:
        """``N dead-lettered to <topic>: <reason> <n>, ...`` after an MQTT replay that dead-lettered
        records; None otherwise."""
        target = self._target
        if isinstance(target, MqttTarget) and target.stats.dead_lettered:
            return dead_letter_summary(target.stats, target.dead_letter_topic)
        return None

    def close(self) -> None:
        if self._target is not None:
            self._target.close()

    def __enter__(self) -> ReplayRunner:
        self.open()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

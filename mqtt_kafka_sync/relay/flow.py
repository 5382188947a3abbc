"""When a relay task pauses its partitions, and when it resumes them: flow control with hysteresis.

The partitions are paused while the broker is unreachable, while more than :data:`BUFFER_HIGH`
records wait for the window, or while :data:`UNSTORED_HIGH` records wait for an earlier offset to
finish; they resume once the broker is back, every re-sent command is acknowledged, at most
:data:`BUFFER_LOW` records wait and the unstored records are down to half. A paused consumer keeps
polling (the task reads nothing from it meanwhile), so it stays in the group.
"""

from __future__ import annotations

import logging
from typing import Protocol

from mqtt_kafka_sync.relay.offsets import TopicPartition as TP

logger = logging.getLogger(__name__)

BUFFER_HIGH = 5_000
BUFFER_LOW = 2_000
UNSTORED_HIGH = 20_000
"""Records finished or not whose offsets cannot be stored yet (an earlier one is stuck, e.g. the
dead-letter topic refuses it): above this the partitions pause, so memory stays bounded."""


class Pausable(Protocol):
    """The relay task's consumer, as flow control uses it."""

    assigned: set[TP]
    paused: set[TP]

    def pause(self, tps: set[TP]) -> None: ...
    def resume(self, tps: set[TP]) -> None: ...


class PauseControl:
    def __init__(self, name: str, consumer: Pausable) -> None:
        self.name = name
        self.reason = ""
        """Why the partitions are paused now (``mqtt-down``, ``backlog``, ``offsets-stuck``); "" when not."""
        self._consumer = consumer

    def update(self, *, online: bool, resending: bool, buffered: int, unfinished: int, outages: int) -> None:
        """Pause or resume for the task's state now; ``outages``: broker outages so far (a resume
        after one is logged at INFO)."""
        consumer = self._consumer
        if not online:
            want = "mqtt-down"
        elif buffered >= BUFFER_HIGH:
            want = "backlog"
        elif unfinished >= UNSTORED_HIGH:
            want = "offsets-stuck"
        elif self.reason and (resending or buffered > BUFFER_LOW or unfinished > UNSTORED_HIGH // 2):
            want = self.reason
        else:
            want = ""
        if want:
            consumer.pause(consumer.assigned)
            if want != self.reason:
                logger.debug("%s: paused %d partitions (%s)", self.name, len(consumer.paused), want)
            self.reason = want
        elif self.reason:
            count = len(consumer.paused)
            consumer.resume(set(consumer.paused))
            outage = self.reason == "mqtt-down" and outages > 0
            log = logger.info if outage else logger.debug
            log("%s: resumed %d partitions (%s over)", self.name, count, self.reason)
            self.reason = ""

"""Pacing MQTT acknowledgements to a rate, so the broker holds a backlog instead of Kafka's consumers.

Withholding a PUBACK is how an MQTT receiver slows a sender down without dropping anything: once
``mqtt.receive.maximum`` messages are unacknowledged the broker stops sending and keeps the rest.
The throttle (``throttle/lag_throttle.py``, driven by consumer lag) says how many acknowledgements may go
now; the rest wait here, in arrival order, and the network loop wakes when the next may go.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

Acks = list[tuple[int, int, int]]


class AckThrottle(Protocol):
    """How many acknowledgements (or replayed records) may go now (``throttle/lag_throttle.py``).

    ``now`` is monotonic seconds, passed in so callers that already read the clock do not read it
    twice and tests can drive time. Both calls must be O(1) and allocation-free: the ingest calls
    them on its MQTT network thread.
    """

    def allow(self, n: int, now: float) -> int:
        """Take up to ``n`` permits; returns how many were granted (0 to ``n``): release exactly that
        many, the first ones in order, and keep the rest for later."""
        ...

    def next_allowed_in(self, now: float) -> float | None:
        """Seconds until the next permit, or ``None`` when one is available now (or nothing limits)."""
        ...


class PacedAcks:
    """Holds confirmed acknowledgements until the throttle lets them go; order is kept."""

    def __init__(
        self, throttle: AckThrottle, send: Callable[[Acks], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._throttle = throttle
        self._send = send
        self._clock = clock
        self._queue: deque[tuple[int, int, int]] = deque()
        self._lock = threading.Lock()

    def push(self, acks: Acks) -> None:
        """Called by the ack tracker with acknowledgements Kafka has confirmed."""
        with self._lock:
            self._queue.extend(acks)

    def flush(self) -> float | None:
        """Send what the throttle allows now; returns how long until more may go (None: nothing waits)."""
        with self._lock:
            queue = self._queue
            if not queue:
                return None
            now = self._clock()
            granted = self._throttle.allow(len(queue), now)
            batch = [queue.popleft() for _ in range(granted)]
            waiting = bool(queue)
        if batch:
            self._send(batch)
        return self._throttle.next_allowed_in(now) if waiting else None

    def release_all(self) -> None:
        """At shutdown: everything held is in Kafka, so acknowledge it regardless of the pace."""
        with self._lock:
            batch = list(self._queue)
            self._queue.clear()
        if batch:
            self._send(batch)

    def reset(self) -> None:
        """A new connection: held acknowledgements belong to the old one and must not be sent."""
        with self._lock:
            self._queue.clear()

    @property
    def held(self) -> int:
        return len(self._queue)

"""Acknowledge MQTT messages in the order they arrived, each only once Kafka has it.

MQTT 5 (section 4.6) asks a receiver to send PUBACKs in the order the PUBLISH packets came.
Kafka confirms records per partition, so confirmations from different partitions can come back in
any order: the tracker holds them and releases the longest confirmed prefix. The number it holds is
bounded by the broker's flow control (our Receive Maximum).

The tracker also times each message from its arrival to Kafka's confirmation
(:attr:`AckTracker.latency`, the end-to-end histogram of the metrics): one clock read and one bisect
per confirmation, nothing allocated.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from time import monotonic

from mqtt_kafka_sync.telemetry.counters import Buckets


class Pending:
    """One received QoS 1/2 message waiting for Kafka; ``done`` flips once."""

    __slots__ = ("done", "generation", "packet_id", "qos", "received_at")

    def __init__(self, generation: int, packet_id: int, qos: int, received_at: float) -> None:
        self.generation = generation
        self.packet_id = packet_id
        self.qos = qos
        self.received_at = received_at
        self.done = False


AckSender = Callable[[list[tuple[int, int, int]]], None]


class AckTracker:
    def __init__(self, send: AckSender) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._queue: deque[Pending] = deque()
        self._idle = threading.Event()
        self._idle.set()
        self._gathered: list[tuple[int, int, int]] | None = None
        """While set (:meth:`gather`), released acknowledgements wait here for one send."""
        self.acked = 0
        """Acknowledgements handed to the subscriber (while gathering, counted when the batch goes)."""
        self.latency = Buckets()
        """Seconds from ``received_at`` (monotonic) to Kafka's confirmation, per message."""

    def reset(self) -> None:
        """Forget everything pending: a new connection will get those messages again."""
        with self._lock:
            self._queue.clear()
            self._idle.set()

    def add(self, generation: int, packet_id: int, qos: int, received_at: float) -> Pending:
        """Called for every message, by the one thread that receives them, without the lock.

        ``deque.append`` is atomic, and :meth:`done` (under the lock, on any thread) pops only
        confirmed entries, never this new one, and sets idle only once the queue is empty: so the
        queue holding exactly this entry after the append means empty -> busy, and idle is cleared
        then (only then: Event calls take a lock), whichever way the threads interleave.
        """
        pending = Pending(generation, packet_id, qos, received_at)
        queue = self._queue
        queue.append(pending)
        if len(queue) == 1:
            self._idle.clear()
        return pending

    def done(self, pending: Pending) -> None:
        self.latency.observe(monotonic() - pending.received_at)
        with self._lock:
            pending.done = True
            queue = self._queue
            if not queue or queue[0] is not pending:
                # Confirmed out of order: it waits for those before it. Or a message of a connection
                # reset() forgot, with nothing pending now: idle is set already (by whoever emptied
                # the queue), and must not be set here, where an add() may be under way.
                return
            gathered = self._gathered
            released: list[tuple[int, int, int]] = [] if gathered is None else gathered
            while queue and queue[0].done:
                head = queue.popleft()
                released.append((head.generation, head.packet_id, head.qos))
            if gathered is not None:
                return  # sent, counted and idle set by send_gathered
            self.acked += len(released)
            # Sent before idle is set, and under the lock: a drain that sees idle disconnects next,
            # and the acknowledgements must be queued before its DISCONNECT (with a producer shared
            # by several sessions, this runs on whichever thread polled it). ``send`` only queues.
            if released:
                self._send(released)
            if not queue:
                self._idle.set()

    def gather(self) -> None:
        """Until :meth:`send_gathered`, hold released acknowledgements back to send them as one batch
        (around a ``poll`` that serves many delivery reports: one send instead of one per report)."""
        with self._lock:
            if self._gathered is None:
                self._gathered = []

    def send_gathered(self) -> None:
        """Send what :meth:`gather` held back, and stop holding."""
        with self._lock:
            gathered, self._gathered = self._gathered, None
            if gathered:
                self.acked += len(gathered)
                self._send(gathered)
            if not self._queue:
                self._idle.set()

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def wait_idle(self, timeout: float) -> bool:
        return self._idle.wait(timeout)

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

Pending = int
"""A message waiting for Kafka: its number in arrival order on this tracker (a plain int, so the
hundreds in flight are no objects the garbage collector has to visit; one per message was)."""

AckSender = Callable[[list[tuple[int, int, int]]], None]


class AckTracker:
    """The messages in flight, from the oldest unacknowledged one (number :attr:`_head`) on: their
    acknowledgements and arrival times in two deques, and the numbers Kafka confirmed out of order."""

    def __init__(self, send: AckSender) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._acks: deque[tuple[int, int, int]] = deque()
        """``(generation, packet id, qos)`` of each message from the head on."""
        self._received: deque[float] = deque()
        """``time.monotonic()`` of each message's arrival, from the head on."""
        self._head = 0
        """The number of the message first in :attr:`_acks`."""
        self._added = 0
        """The number the next message gets (written by :meth:`add` and :meth:`reset` only)."""
        self._confirmed: set[int] = set()
        """Numbers Kafka confirmed while one before them waits."""
        self._idle = threading.Event()
        self._idle.set()
        self._gathered: list[tuple[int, int, int]] | None = None
        """While set (:meth:`gather`), released acknowledgements wait here for one send."""
        self.acked = 0
        """Acknowledgements handed to the subscriber (while gathering, counted when the batch goes)."""
        self.latency = Buckets()
        """Seconds from arrival (monotonic) to Kafka's confirmation, per message."""

    def reset(self) -> None:
        """Forget everything pending: a new connection will get those messages again. Called on the
        thread that adds; a confirmation of a forgotten message is ignored (its number is below the
        new head)."""
        with self._lock:
            self._acks.clear()
            self._received.clear()
            self._confirmed.clear()
            self._head = self._added
            self._idle.set()

    def add(self, generation: int, packet_id: int, qos: int, received_at: float) -> Pending:
        """Called for every message, by the one thread that receives them, without the lock.

        ``deque.append`` is atomic, and :meth:`done` (under the lock, on any thread) pops only
        confirmed entries, never this new one, and sets idle only once the queue is empty: so the
        queue holding exactly this entry after the append means empty -> busy, and idle is cleared
        then (only then: Event calls take a lock), whichever way the threads interleave.
        """
        number = self._added
        self._added = number + 1
        self._received.append(received_at)
        acks = self._acks
        acks.append((generation, packet_id, qos))
        if len(acks) == 1:
            self._idle.clear()
        return number

    def done(self, pending: Pending) -> None:
        with self._lock:
            offset = pending - self._head
            acks = self._acks
            if offset < 0 or offset >= len(acks):
                # A message of a connection reset() forgot: nothing to release, and idle must not be
                # touched here, where an add() may be under way (whoever emptied the queue set it).
                return
            received = self._received
            self.latency.observe(monotonic() - received[offset])
            if offset:  # confirmed out of order: it waits for those before it
                self._confirmed.add(pending)
                return
            gathered = self._gathered
            released: list[tuple[int, int, int]] = [] if gathered is None else gathered
            released.append(acks.popleft())
            received.popleft()
            head = pending + 1
            confirmed = self._confirmed
            while confirmed and head in confirmed:
                confirmed.remove(head)
                released.append(acks.popleft())
                received.popleft()
                head += 1
            self._head = head
            if gathered is not None:
                return  # sent, counted and idle set by send_gathered
            self.acked += len(released)
            # Sent before idle is set, and under the lock: a drain that sees idle disconnects next,
            # and the acknowledgements must be queued before its DISCONNECT (with a producer shared
            # by several sessions, this runs on whichever thread polled it). ``send`` only queues.
            self._send(released)
            if not acks:
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
            if not self._acks:
                self._idle.set()

    @property
    def in_flight(self) -> int:
        return len(self._acks)

    def wait_idle(self, timeout: float) -> bool:
        return self._idle.wait(timeout)

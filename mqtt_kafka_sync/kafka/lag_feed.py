"""The lag of one throttle, handed from the supervisor's lag reader to a task process.

Under ``mqtt-kafka-sync run`` the supervisor reads every group's lag in one child process
(``lag_hub.py``) and writes each throttled task's lag into a :class:`LagFeed`: three doubles in
shared memory (a reading number, the lag, whether it could be read), created with the task's slot and
handed to every process started for it. Shared memory rather than a pipe: a writer never blocks on
a task that stopped reading, and a restarted task reads the same cell.

The task's throttle reads it through :class:`FedLagReader`, which has the ``read_lag``/``close``
of :class:`~mqtt_kafka_sync.kafka.lag_process.IsolatedLagReader` and the same failure rule: a lag
that cannot be read raises :class:`LagReadError`, and so does a feed with no new reading for
``max_age`` seconds (the reader process crashed, or hangs on Kafka), so the throttle holds its rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from mqtt_kafka_sync.errors import LagReadError
from mqtt_kafka_sync.shared_block import SharedBlock, doubles

_SEQ, _LAG, _READABLE = range(3)
FIRST_READING_GRACE_S = 30.0
"""How long a new task waits for the first reading before calling its lag unreadable: the reader
process may still be starting (Python, confluent-kafka, the first admin requests)."""


class LagFeed:
    """One throttle's lag in shared memory: written by the supervisor, read by the task.

    A task process receives it pickled, with :attr:`fd` in its ``pass_fds``
    (``mqtt_kafka_sync/shared_block.py``).
    """

    def __init__(self) -> None:
        self._cell: SharedBlock[float] = doubles(3)
        self._cell[:] = [0.0, math.nan, 0.0]

    @property
    def fd(self) -> int:
        """The shared memory's file descriptor, for ``pass_fds``."""
        return self._cell.fd

    def put(self, lag: int | None) -> None:
        """A reading: the largest group total, None when no watched partition has a lag yet."""
        self._write(math.nan if lag is None else float(lag), readable=True)

    def put_unreadable(self) -> None:
        """A reading that failed (Kafka did not answer)."""
        self._write(math.nan, readable=False)

    def get(self) -> tuple[int, int | None, bool]:
        """(reading number, lag, readable); reading 0: nothing written yet."""
        seq, lag, readable = self._cell[:]
        return int(seq), None if math.isnan(lag) else int(lag), bool(readable)

    def _write(self, lag: float, *, readable: bool) -> None:
        with self._cell.get_lock():
            self._cell[:] = [self._cell[_SEQ] + 1, lag, float(readable)]


class FedLagReader:
    """A throttle's lag source in a task process: the latest reading of its :class:`LagFeed`."""

    def __init__(self, feed: LagFeed, max_age: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._feed = feed
        self._max_age = max_age
        self._clock = clock
        self._seq = 0
        self._started_at = clock()
        self._seen_at = self._started_at
        """When this reader first saw the current reading: its own clock, never the supervisor's."""

    def read_lag(self) -> int | None:
        """The lag of the latest reading; raises :class:`LagReadError` when it failed or is stale.

        None before the first reading, for :data:`FIRST_READING_GRACE_S`: the throttle holds its
        rate either way, and a start is no failure to log."""
        seq, lag, readable = self._feed.get()
        now = self._clock()
        if seq == 0:
            if now - self._started_at <= FIRST_READING_GRACE_S:
                return None
            raise LagReadError(f"the supervisor's lag reader has read no lag in {FIRST_READING_GRACE_S:.0f}s")
        if seq != self._seq:
            self._seq, self._seen_at = seq, now
        elif now - self._seen_at > self._max_age:
            raise LagReadError(f"no new lag reading from the supervisor's lag reader in {self._max_age:.0f}s")
        if not readable:
            raise LagReadError("the supervisor's lag reader cannot read the lag (it logs why)")
        return lag

    def close(self) -> None:
        """Nothing to release: the supervisor owns the reader and the feed."""

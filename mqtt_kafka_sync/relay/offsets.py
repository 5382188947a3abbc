"""Which offset may be stored for commit: per partition, the end of the finished prefix.

A record is *finished* when the MQTT broker acknowledged its command (PUBACK for QoS 1, PUBCOMP for
QoS 2) or the dead-letter topic has it. Records of one partition finish in any order (a dead-letter
confirmation can overtake a PUBACK), so the tracker keeps each partition's unfinished records in
offset order and releases an offset only when every earlier one is finished: a committed offset
never skips a command that was not delivered.

Each assignment of a partition gets a fresh state object. A revoked partition's state is dropped,
and acknowledgements still arriving for it (the broker answers publishes made before the
revocation) are ignored, even if the partition has been assigned again meanwhile.

Used by the relay thread only; no locking.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

TopicPartition = tuple[str, int]


class _Partition:
    __slots__ = ("last_added", "pending", "tp")

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.pending: deque[Pending] = deque()
        self.last_added = -1


class Pending:
    """One record handed to MQTT or the dead-letter topic; ``done`` flips once."""

    __slots__ = ("_state", "done", "offset", "tp")

    def __init__(self, tp: TopicPartition, offset: int, state: _Partition) -> None:
        self.tp = tp
        self.offset = offset
        self.done = False
        self._state = state


class OffsetTracker:
    def __init__(self) -> None:
        self._partitions: dict[TopicPartition, _Partition] = {}
        self.finished = 0
        """Records released in order (their offsets stored), over the tracker's life."""

    def assign(self, tp: TopicPartition) -> None:
        self._partitions[tp] = _Partition(tp)

    def revoke(self, tp: TopicPartition) -> int:
        """Forget ``tp``; returns how many of its records were unfinished."""
        state = self._partitions.pop(tp, None)
        return len(state.pending) if state is not None else 0

    def assigned(self, tp: TopicPartition) -> bool:
        return tp in self._partitions

    def add(self, tp: TopicPartition, offset: int) -> Pending:
        """Start tracking a record; offsets of one partition must be added in increasing order.
        Raises KeyError when ``tp`` is not assigned."""
        state = self._partitions[tp]
        if offset <= state.last_added:
            raise ValueError(f"{tp[0]} [{tp[1]}] offset {offset} added after {state.last_added}")
        state.last_added = offset
        pending = Pending(tp, offset, state)
        state.pending.append(pending)
        return pending

    def finish(self, pending: Pending) -> int | None:
        """Mark ``pending`` finished; returns the offset to store (last released + 1) when the
        partition's finished prefix grew, else None (also for a partition no longer assigned)."""
        pending.done = True
        return self._release(pending._state)

    def finish_all(self, pendings: Iterable[Pending]) -> dict[TopicPartition, int]:
        """Mark each of ``pendings`` finished; returns, per partition whose finished prefix grew,
        the offset to store: :meth:`finish` for a batch, each partition's prefix walked once."""
        states = set()
        for pending in pendings:
            pending.done = True
            states.add(pending._state)
        stores = {}
        for state in states:
            if (offset := self._release(state)) is not None:
                stores[state.tp] = offset
        return stores

    def _release(self, state: _Partition) -> int | None:
        """Drop the finished prefix of ``state`` (if it is still its partition's); the offset after it."""
        if self._partitions.get(state.tp) is not state:
            return None
        queue = state.pending
        released = None
        while queue and queue[0].done:
            released = queue.popleft().offset
            self.finished += 1
        return None if released is None else released + 1

    def unfinished(self, tps: set[TopicPartition] | None = None) -> int:
        """Unfinished records of ``tps`` (default: every assigned partition)."""
        return sum(len(s.pending) for tp, s in self._partitions.items() if tps is None or tp in tps)

"""The replay's checkpoint: where to resume after Ctrl-C, a crash or kill -9, and what may repeat.

Per source partition the file holds

``next``
    the first offset not yet confirmed by the target: every record before it (in the plan's range)
    is in the target. Only ever moved forward after the target confirmed the records in between.
``produced_below``
    an upper bound on what was handed to the producer: the replay never produces an offset at or
    above it without first writing a checkpoint that raises it. After a crash, offsets in
    ``[next, produced_below)`` may already be in the target, and resuming writes them again: that
    is the most a resume can duplicate. Nothing is ever skipped.

The file is JSON, written whole to a temporary file, fsynced and renamed over the old one, so a
crash at any moment leaves either the old or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mqtt_kafka_sync.replay.exceptions import ReplayError
from mqtt_kafka_sync.replay.plan import PartitionRange, RangeSpec, ReplayPlan

VERSION = 1


@dataclass
class Checkpoint:
    spec: RangeSpec
    plan: ReplayPlan
    next: dict[int, int]
    produced_below: dict[int, int]
    complete: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fresh(cls, spec: RangeSpec, plan: ReplayPlan) -> Checkpoint:
        starts = {r.partition: r.start for r in plan.ranges}
        return cls(spec, plan, dict(starts), dict(starts))

    @property
    def done(self) -> int:
        """Offsets confirmed so far, over every range."""
        return sum(self.next[r.partition] - r.start for r in self.plan.ranges)

    @property
    def may_repeat(self) -> int:
        """Offsets that may already be in the target although the checkpoint does not say so."""
        return sum(max(0, self.produced_below[p] - self.next[p]) for p in self.next)

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "version": VERSION,
            "spec": self.spec.as_json(),
            "plan": {
                "source": plan.source,
                "target": plan.target,
                "target_kind": plan.target_kind,
                "target_partitions": plan.target_partitions,
                "same_partitions": plan.same_partitions,
                "ranges": {str(r.partition): [r.start, r.end] for r in plan.ranges},
                "notes": list(plan.notes),
            },
            "next": {str(p): o for p, o in sorted(self.next.items())},
            "produced_below": {str(p): o for p, o in sorted(self.produced_below.items())},
            "complete": self.complete,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Checkpoint:
        if doc.get("version") != VERSION:
            raise ValueError(f"unknown checkpoint version {doc.get('version')!r}")
        p = doc["plan"]
        spec = RangeSpec.from_json(doc["spec"])
        ranges = tuple(
            PartitionRange(int(k), int(v[0]), int(v[1]))
            for k, v in sorted(p["ranges"].items(), key=lambda kv: int(kv[0]))
        )
        plan = ReplayPlan(
            source=p["source"],
            target=p["target"],
            ranges=ranges,
            target_partitions=int(p["target_partitions"]),
            same_partitions=bool(p["same_partitions"]),
            notes=tuple(p.get("notes", ())),
            target_kind=spec.target_kind,
        )
        if p.get("target_kind", "kafka") != spec.target_kind:
            raise ValueError("the plan and the spec name different kinds of target")
        return cls(
            spec=spec,
            plan=plan,
            next={int(k): int(v) for k, v in doc["next"].items()},
            produced_below={int(k): int(v) for k, v in doc["produced_below"].items()},
            complete=bool(doc["complete"]),
        )


def load_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``; None when there is none; raises :class:`ReplayError` when it is
    unreadable (it is never silently replaced: it is what keeps a resume from skipping records)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ReplayError(f"cannot read checkpoint {path}: {exc.strerror}") from exc
    try:
        return Checkpoint.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ReplayError(f"checkpoint {path} is not a replay checkpoint ({exc}); move it away") from exc


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Replace ``path`` atomically and durably."""
    data = json.dumps(checkpoint.to_json(), indent=2).encode()
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        tmp.replace(path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise ReplayError(f"cannot write checkpoint {path}: {exc.strerror}") from exc


class Confirmations:
    """Per source partition: offsets sent, and the longest confirmed prefix of them.

    Deliveries to different target partitions come back in any order; the checkpoint may only
    move past an offset once it and everything before it are confirmed. Thread-safe (delivery
    reports may run on another thread than the one sending).
    """

    def __init__(self, next_offsets: dict[int, int]) -> None:
        self._lock = threading.Lock()
        self._next = dict(next_offsets)
        self._pending: dict[int, deque[list[int]]] = {p: deque() for p in next_offsets}

    def sent(self, partition: int, offset: int) -> list[int]:
        """Record a send; returns the token to pass to :meth:`confirmed`."""
        entry = [offset, 0]
        with self._lock:
            self._pending[partition].append(entry)
        return entry

    def confirmed(self, partition: int, entry: list[int]) -> None:
        with self._lock:
            entry[1] = 1
            queue = self._pending[partition]
            while queue and queue[0][1]:
                self._next[partition] = queue.popleft()[0] + 1

    def skip_to(self, partition: int, offset: int) -> None:
        """Nothing below ``offset`` is left to send (offset gaps at the end of a range)."""
        with self._lock:
            if not self._pending[partition]:
                self._next[partition] = max(self._next[partition], offset)

    def next_offsets(self) -> dict[int, int]:
        with self._lock:
            return dict(self._next)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._pending.values())

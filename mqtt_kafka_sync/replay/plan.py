"""What a replay copies: per source partition, a half-open offset range ``[start, end)``.

Bounds come from offsets (``--from-offset 100`` for every partition, ``--from-offset 2:100`` for
partition 2) or from times (``--from-time 2026-11-20T06:00:00+01:00``: the first record at or
after that time, found with ``offsets_for_times``). Without a start, a range starts at the oldest
record still in the partition; without an end, it ends where the partition ends when the plan is
made, so a replay always finishes. Bounds outside the partition are clamped, and the plan says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaException, TopicPartition

from mqtt_kafka_sync.replay.exceptions import ReplayError

AllPartitions = None
OffsetBounds = Mapping[int | None, int]
"""Partition (None: every partition) -> offset."""
TargetKind = Literal["kafka", "mqtt"]
"""``kafka``: ``target`` is a topic; ``mqtt``: ``target`` is the name of the relay connector whose
routes, broker and dead-letter topic the replay publishes through."""


@dataclass(frozen=True)
class RangeSpec:
    """What the user asked for, as given; a checkpoint is resumed only for the same spec."""

    source: str
    target: str
    partitions: tuple[int, ...] = ()
    """Empty: every partition."""
    from_offsets: tuple[str, ...] = ()
    to_offsets: tuple[str, ...] = ()
    from_time: str | None = None
    to_time: str | None = None
    target_kind: TargetKind = "kafka"

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "target_kind": self.target_kind,
            "partitions": list(self.partitions),
            "from_offsets": list(self.from_offsets),
            "to_offsets": list(self.to_offsets),
            "from_time": self.from_time,
            "to_time": self.to_time,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RangeSpec:
        return cls(
            source=str(doc["source"]),
            target=str(doc["target"]),
            partitions=tuple(int(p) for p in doc["partitions"]),
            from_offsets=tuple(str(o) for o in doc["from_offsets"]),
            to_offsets=tuple(str(o) for o in doc["to_offsets"]),
            from_time=doc["from_time"],
            to_time=doc["to_time"],
            target_kind=_target_kind(doc.get("target_kind", "kafka")),  # older checkpoints: Kafka
        )


@dataclass(frozen=True)
class PartitionRange:
    partition: int
    start: int
    end: int
    """Exclusive."""

    @property
    def span(self) -> int:
        """Offsets in the range: the record count, or an upper bound of it on compacted or
        transactional topics, whose offsets have gaps."""
        return self.end - self.start


@dataclass(frozen=True)
class ReplayPlan:
    source: str
    target: str
    ranges: tuple[PartitionRange, ...]
    target_partitions: int
    same_partitions: bool
    """True: each record goes to the partition number it came from (source and target have the same
    partition count); False: the producer picks by key (murmur2, as Java)."""
    notes: tuple[str, ...] = field(default=())
    """Bounds that were clamped, times resolved: what the user should know about the plan."""
    target_kind: TargetKind = "kafka"

    @property
    def total(self) -> int:
        return sum(r.span for r in self.ranges)

    @property
    def target_label(self) -> str:
        """The target as messages name it: the topic, or ``MQTT (connector <name>)``."""
        return self.target if self.target_kind == "kafka" else f"MQTT (connector {self.target})"


def parse_offsets(items: Sequence[str], option: str) -> dict[int | None, int]:
    """``["100", "2:250"]`` -> ``{None: 100, 2: 250}``; raises :class:`ReplayError`."""
    bounds: dict[int | None, int] = {}
    for item in items:
        partition_text, sep, offset_text = item.rpartition(":")
        try:
            partition = int(partition_text) if sep else None
            offset = int(offset_text)
        except ValueError:
            raise ReplayError(
                f"{option} {item!r}: write OFFSET or PARTITION:OFFSET, e.g. 100 or 2:100"
            ) from None
        if offset < 0 or (partition is not None and partition < 0):
            raise ReplayError(f"{option} {item!r}: offsets and partitions are never negative")
        if partition in bounds:
            raise ReplayError(f"{option} is given twice for {_partition_text(partition)}")
        bounds[partition] = offset
    return bounds


def parse_time(text: str, option: str) -> datetime:
    """An ISO-8601 time; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReplayError(f"{option} {text!r} is not an ISO-8601 time, e.g. 2026-11-20T06:00:00Z") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def make_plan(
    consumer: Consumer,
    spec: RangeSpec,
    *,
    source_partitions: Sequence[int],
    target_partitions: int,
    timeout: float = 10.0,
) -> ReplayPlan:
    """Resolve ``spec`` against the source topic (with these partitions) as it is now; raises
    :class:`ReplayError`."""
    if spec.from_offsets and spec.from_time:
        raise ReplayError("give --from-offset or --from-time, not both")
    if spec.to_offsets and spec.to_time:
        raise ReplayError("give --to-offset or --to-time, not both")
    from_offsets = parse_offsets(spec.from_offsets, "--from-offset")
    to_offsets = parse_offsets(spec.to_offsets, "--to-offset")
    from_time = parse_time(spec.from_time, "--from-time") if spec.from_time else None
    to_time = parse_time(spec.to_time, "--to-time") if spec.to_time else None
    if from_time and to_time and to_time <= from_time:
        raise ReplayError(f"--to-time {spec.to_time} is not after --from-time {spec.from_time}")
    try:
        existing = sorted(source_partitions)
        chosen = sorted(set(spec.partitions)) if spec.partitions else existing
        for partition in [*chosen, *(p for p in (*from_offsets, *to_offsets) if p is not None)]:
            if partition not in existing:
                raise ReplayError(
                    f"topic {spec.source} has no partition {partition} (it has 0 to {len(existing) - 1})"
                )
        notes: list[str] = []
        ranges = []
        for partition in chosen:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(spec.source, partition), timeout=timeout
            )
            start = _bound(consumer, spec.source, partition, from_offsets, from_time, default=low, high=high)
            end = _bound(consumer, spec.source, partition, to_offsets, to_time, default=high, high=high)
            if start < low:
                notes.append(
                    f"partition {partition}: offsets {start} to {low - 1} are gone (retention); from {low}"
                )
                start = low
            if end > high:
                notes.append(f"partition {partition}: ends at {high}, its last offset + 1, not {end}")
                end = high
            ranges.append(PartitionRange(partition, start, max(start, end)))
    except KafkaException as exc:
        raise ReplayError(f"cannot read topic {spec.source}: {exc.args[0]}") from exc
    if from_time is not None:
        notes.append(f"--from-time is {from_time.isoformat()}")
    if to_time is not None:
        notes.append(f"--to-time is {to_time.isoformat()}")
    same = spec.target_kind == "kafka" and target_partitions == len(existing)
    return ReplayPlan(
        spec.source, spec.target, tuple(ranges), target_partitions, same, tuple(notes), spec.target_kind
    )


def _bound(
    consumer: Consumer,
    topic: str,
    partition: int,
    offsets: Mapping[int | None, int],
    moment: datetime | None,
    *,
    default: int,
    high: int,
) -> int:
    if partition in offsets:
        return offsets[partition]
    if AllPartitions in offsets:
        return offsets[AllPartitions]
    if moment is None:
        return default
    wanted = TopicPartition(topic, partition, int(moment.timestamp() * 1000))
    found = consumer.offsets_for_times([wanted], timeout=10.0)[0]
    if found.error is not None:
        raise ReplayError(f"{topic} partition {partition}: cannot find offsets by time: {found.error}")
    return found.offset if found.offset >= 0 else high  # -1: no record at or after that time


def _target_kind(value: object) -> TargetKind:
    if value == "kafka":
        return "kafka"
    if value == "mqtt":
        return "mqtt"
    raise ValueError(f"unknown target kind {value!r}")


def _partition_text(partition: int | None) -> str:
    return "every partition" if partition is None else f"partition {partition}"

"""Consumer lag of named groups, read through the admin API: what the throttle steers by.

Per partition: ``lag = end - committed``, where ``end`` is the log end offset (high watermark,
``list_offsets`` with ``OffsetSpec.latest()``) and ``committed`` the group's committed offset
(``list_consumer_group_offsets``). One read costs two requests per group (offsets, description), one
``describe_topics`` and one ``list_offsets`` for every partition; the throttle reads every
``throttle.lag.interval.seconds``, never per message.

What it can and cannot tell:

- The lag is as fresh as the group's commits. A consumer committing every 5 s (the Java and
  librdkafka default for auto commit) looks up to 5 s of consumption further behind than it is.
  It never looks less behind: the committed offset never runs ahead of what was consumed.
- Partitions are those of every topic the group has committed on or its members are assigned now
  (``describe_consumer_groups``). A partition without a commit has no lag from Kafka's point of
  view (``kafka-consumer-groups.sh`` shows ``-``): where that consumer starts depends on its
  ``auto.offset.reset``, which the admin API cannot see. A reader that reads repeatedly (the
  throttle) counts, for such a partition, the records appended since it first saw it without a
  commit: a lower bound, and exactly what the throttle's own writes add. A one-off read
  (``mqtt-kafka-sync lag``) shows None.
- With transactional producers, ``end`` includes records of open transactions that a
  ``read_committed`` consumer cannot read yet.
- Time lag (the age of the oldest unconsumed record) needs the record's timestamp, and
  ``list_offsets`` only maps timestamps to offsets (or gives the newest timestamp), never an
  offset to its timestamp. So :func:`read_time_lag` fetches the record at the committed offset of
  each lagging partition with a consumer of the reader's own (assign only, no commit). The reader
  keeps that consumer between reads: one opened and closed per read would redo its connections
  (and, with SASL, its authentications) every interval, and a consumer closed while its group
  coordinator connection is still authenticating makes librdkafka log a SASL error. Its age is
  ``now - timestamp``: with CreateTime that is the producer's clock, with LogAppendTime the
  broker's. A committed offset already deleted by retention gives the oldest record still there;
  a timestamp the record does not carry, or a fetch that times out, gives None.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka import (
    OFFSET_INVALID,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec  # confluent_kafka.admin re-exports it untyped

from mqtt_kafka_sync.errors import LagReadError
from mqtt_kafka_sync.kafka.lag_topics import TopicFilter
from mqtt_kafka_sync.kafka.settings import Kafka, admin_client, connection, reader_settings

_LATEST = OffsetSpec.latest()  # type: ignore[no-untyped-call]
_TIMESTAMP_READER = {
    "auto.offset.reset": "earliest",
    "fetch.wait.max.ms": "100",
    "max.partition.fetch.bytes": "65536",
    "queued.min.messages": "1",
}


@dataclass(frozen=True, slots=True)
class LagSample:
    """One partition of one group."""

    group: str
    topic: str
    partition: int
    end: int
    """Log end offset (high watermark)."""
    committed: int | None
    """The group's committed offset; None when it never committed this partition."""
    lag: int | None
    """``end - committed`` (never negative). Without a commit: the records appended since this
    reader first saw the partition (a lower bound), or None for a one-off read."""
    time_lag_s: float | None = None
    """Age of the oldest unconsumed record, seconds: 0.0 without lag, None when not read."""


@dataclass(frozen=True)
class GroupLag:
    """A group's lag over the partitions read."""

    group: str
    partitions: tuple[LagSample, ...]

    @property
    def total(self) -> int:
        """Records behind, summed over the partitions with a lag: what the throttle compares."""
        return sum(s.lag for s in self.partitions if s.lag is not None)

    @property
    def max(self) -> int:
        """The most records any one partition is behind."""
        return max((s.lag for s in self.partitions if s.lag is not None), default=0)

    @property
    def max_time_lag_s(self) -> float | None:
        ages = [s.time_lag_s for s in self.partitions if s.time_lag_s is not None]
        return max(ages) if ages else None

    @property
    def uncommitted(self) -> int:
        """Partitions listed without a committed offset."""
        return sum(1 for s in self.partitions if s.committed is None)

    @property
    def known(self) -> bool:
        """Whether any partition has a lag, so :attr:`total` means something."""
        return any(s.lag is not None for s in self.partitions)

    def on(self, topics: TopicFilter) -> GroupLag:
        """The partitions of the topics ``topics`` accepts (a throttle's share of a wider read)."""
        return GroupLag(self.group, tuple(s for s in self.partitions if topics(s.topic)))


@dataclass(frozen=True)
class LagSnapshot:
    """Every group's lag at one moment (``at``: wall-clock seconds)."""

    at: float
    groups: tuple[GroupLag, ...]

    def lag(self) -> int | None:
        """The largest total lag among the groups; None when no group has committed anything here."""
        totals = [g.total for g in self.groups if g.known]
        return max(totals) if totals else None


def unique_groups(groups: Sequence[str]) -> tuple[str, ...]:
    """``groups`` without repeats, in order; at least one (a lag read of nothing is a mistake)."""
    if not groups:
        raise ValueError("name at least one consumer group")
    return tuple(dict.fromkeys(groups))


class LagReader:
    """Reads :class:`LagSnapshot` s for ``groups``, on topics ``topics`` accepts (default: all).

    Holds one admin client; call :meth:`close` when done. Safe to use from one thread at a time.
    """

    def __init__(
        self,
        kafka: Kafka,
        groups: Sequence[str],
        *,
        topics: TopicFilter | None = None,
        timeout: float = 10.0,
        track_uncommitted: bool = True,
    ) -> None:
        self.kafka = connection(kafka)
        self.bootstrap = self.kafka.bootstrap_servers
        self.groups = unique_groups(groups)
        self._topics = topics
        self._timeout = timeout
        self._track = track_uncommitted
        self._baselines: dict[tuple[str, str, int], int] = {}
        """(group, topic, partition) without a commit -> its end offset when first seen so."""
        self._admin: AdminClient | None = admin_client(self.kafka)
        self._stamps: Consumer | None = None
        """The time-lag reader: opened at the first read that needs it, kept until :meth:`close`."""

    def close(self) -> None:
        self._admin = None  # confluent-kafka's AdminClient has no close; dropping it ends its threads
        stamps, self._stamps = self._stamps, None
        if stamps is not None:
            stamps.close()

    def read(self, *, time_lag: bool = False) -> LagSnapshot:
        """Lag of every group now; raises :class:`LagReadError` when Kafka does not answer."""
        admin = self._admin
        if admin is None:
            raise LagReadError("the lag reader is closed")
        try:
            committed = {g: self._committed(admin, g) for g in self.groups}
            watched = {g: {t for t, _ in committed[g]} | self._assigned(admin, g) for g in self.groups}
            partitions = describe_partitions(admin, set().union(*watched.values()), self._timeout)
            ends = self._ends(admin, [(t, p) for t in partitions for p in partitions[t]])
        except KafkaException as exc:
            raise LagReadError(f"consumer lag of {', '.join(self.groups)}: {exc.args[0]}") from exc
        groups = []
        for group in self.groups:
            samples = []
            for topic in sorted(watched[group]):
                for partition in partitions.get(topic, ()):  # a deleted topic has none
                    end = ends[(topic, partition)]
                    offset = committed[group].get((topic, partition))
                    samples.append(
                        LagSample(
                            group,
                            topic,
                            partition,
                            end,
                            offset,
                            self._lag(group, topic, partition, end, offset),
                        )
                    )
            groups.append(GroupLag(group, tuple(samples)))
        snapshot = LagSnapshot(time.time(), tuple(groups))
        if time_lag:
            if self._stamps is None:
                self._stamps = timestamp_reader(self.kafka)
            snapshot = read_time_lag(self._stamps, snapshot, timeout=min(self._timeout, 5.0))
        return snapshot

    def read_lag(self) -> int | None:
        """The lag the throttle acts on: the largest group total (see :meth:`LagSnapshot.lag`)."""
        return self.read().lag()

    # -- internals --------------------------------------------------------------------------------
    def _lag(self, group: str, topic: str, partition: int, end: int, committed: int | None) -> int | None:
        key = (group, topic, partition)
        if committed is not None:
            self._baselines.pop(key, None)
            return max(0, end - committed)
        if not self._track:
            return None
        return max(0, end - self._baselines.setdefault(key, end))

    def _assigned(self, admin: AdminClient, group: str) -> set[str]:
        """Topics the group's members are assigned now (empty when it cannot be described)."""
        try:
            result = admin.describe_consumer_groups([group], request_timeout=self._timeout)[group].result()
        except KafkaException:
            return set()  # e.g. a group of another protocol: its commits are still read
        return {
            tp.topic
            for member in result.members
            if member.assignment is not None
            for tp in member.assignment.topic_partitions
            if self._topics is None or self._topics(tp.topic)
        }

    def _committed(self, admin: AdminClient, group: str) -> dict[tuple[str, int], int]:
        request = [ConsumerGroupTopicPartitions(group)]
        result = admin.list_consumer_group_offsets(request, request_timeout=self._timeout)[group].result()
        offsets: dict[tuple[str, int], int] = {}
        for tp in result.topic_partitions or ():
            if self._topics is not None and not self._topics(tp.topic):
                continue
            if tp.error is None and tp.offset >= 0:
                offsets[(tp.topic, tp.partition)] = tp.offset
        return offsets

    def _ends(self, admin: AdminClient, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        if not partitions:
            return {}
        request = {TopicPartition(t, p): _LATEST for t, p in partitions}
        futures = admin.list_offsets(request, request_timeout=self._timeout)
        return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}


def describe_partitions(admin: AdminClient, topics: Iterable[str], timeout: float) -> dict[str, list[int]]:
    """The partition ids of each topic that exists; missing topics are left out.

    Uses DescribeTopicPartitions, not a metadata request: asking metadata for one named topic
    creates it on brokers with ``auto.create.topics.enable=true``.
    """
    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return {}
    found: dict[str, list[int]] = {}
    for topic, future in admin.describe_topics(TopicCollection(wanted), request_timeout=timeout).items():
        try:
            found[topic] = sorted(p.id for p in future.result().partitions)
        except KafkaException as exc:
            err = exc.args[0]
            if not (isinstance(err, KafkaError) and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
                raise
    return found


def timestamp_reader(kafka: Kafka) -> Consumer:
    """The consumer :func:`read_time_lag` fetches with (assign only, never commits)."""
    return Consumer(reader_settings(kafka, "lag", _TIMESTAMP_READER), logger=logging.getLogger("librdkafka"))


def read_time_lag(consumer: Consumer, snapshot: LagSnapshot, *, timeout: float = 5.0) -> LagSnapshot:
    """``snapshot`` with ``time_lag_s`` filled in: 0.0 without lag, the age of the record at the
    committed offset with lag, None where it cannot be read (see the module docstring). ``consumer``
    (a :func:`timestamp_reader`) is left with nothing assigned."""
    wanted = {
        (s.topic, s.partition, s.committed)
        for g in snapshot.groups
        for s in g.partitions
        if s.lag and s.committed is not None
    }
    stamps = _timestamps(consumer, wanted, timeout) if wanted else {}
    now_ms = snapshot.at * 1000.0
    groups = []
    for g in snapshot.groups:
        samples = []
        for s in g.partitions:
            if s.lag == 0:
                age: float | None = 0.0
            elif s.committed is None:
                age = None
            else:
                stamp = stamps.get((s.topic, s.partition, s.committed))
                age = None if stamp is None else max(0.0, (now_ms - stamp) / 1000.0)
            samples.append(replace(s, time_lag_s=age))
        groups.append(GroupLag(g.group, tuple(samples)))
    return LagSnapshot(snapshot.at, tuple(groups))


def _timestamps(
    consumer: Consumer, wanted: Iterable[tuple[str, int, int]], timeout: float
) -> dict[tuple[str, int, int], int]:
    """Timestamp (ms) of the first record at or after each (topic, partition, offset)."""
    found: dict[tuple[str, int, int], int] = {}
    try:
        # One fetch position per partition: several groups at different offsets take turns.
        pending: dict[tuple[str, int], list[int]] = {}
        for topic, partition, offset in wanted:
            pending.setdefault((topic, partition), []).append(offset)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            current = {key: offsets.pop() for key, offsets in pending.items()}
            pending = {key: offsets for key, offsets in pending.items() if offsets}
            assignment = [TopicPartition(t, p, o) for (t, p), o in current.items()]
            consumer.assign(assignment)
            consumer.resume(assignment)  # a partition paused in an earlier round or read stays paused
            while current and time.monotonic() < deadline:
                message: Any = consumer.poll(0.2)
                if message is None or message.error() is not None:
                    continue
                key = (message.topic(), message.partition())
                if key not in current:
                    continue
                kind, stamp = message.timestamp()
                if kind != TIMESTAMP_NOT_AVAILABLE:
                    found[(key[0], key[1], current[key])] = stamp
                del current[key]
                consumer.pause([TopicPartition(key[0], key[1], OFFSET_INVALID)])
    finally:
        consumer.unassign()
    return found

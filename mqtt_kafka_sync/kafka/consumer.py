"""The relay's Kafka consumer: a group member with cooperative rebalancing, manual offset stores,
and pauses the relay tracks itself.

Offsets: ``enable.auto.offset.store=false``; the relay stores an offset only once every command up
to it was acknowledged by the MQTT broker or dead-lettered, and librdkafka commits stored offsets
every ``auto.commit.interval.ms``. On revocation the stored offsets of the revoked partitions are
committed synchronously before they are unassigned; on a lost assignment nothing is committed (the
partitions may already belong to someone else).

Pausing: ``pause()`` stops fetching but the relay keeps calling ``consume()``, which keeps it in the
group (``max.poll.interval.ms``) and runs rebalance callbacks. What the relay paused is tracked in
:attr:`CommandConsumer.paused`, not read back from librdkafka. Pausing drops what librdkafka had
prefetched for a partition; it fetches again from the next offset the relay has not been handed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from mqtt_kafka_sync.config.model import RelayConnectorConfig
from mqtt_kafka_sync.config.spec import CONSUMER_GUARANTEE
from mqtt_kafka_sync.kafka.connection_state import STATISTICS_INTERVAL_MS, ConnectionReports, ConnectionState
from mqtt_kafka_sync.kafka.settings import client_settings

logger = logging.getLogger(__name__)

GUARANTEE_SETTINGS = CONSUMER_GUARANTEE
"""The config loader refuses overrides of these (and of ``group.id``, ``group.protocol``)."""
TP = tuple[str, int]
"""A topic and partition."""

PartitionsCallback = Callable[[set[TP]], None]
LOG_EVERY_S = 60.0
MEMBER_CHECK_S = 1.0
_NUMBERS = re.compile(r"\d+")


def consumer_config(config: RelayConnectorConfig, client_id: str) -> dict[str, str]:
    ours = {
        "group.id": config.kafka_group_id,
        "client.id": client_id,
        # A new group reads commands already waiting; expiry keeps old ones from being executed.
        "auto.offset.reset": "earliest",
        # Commands acknowledged since the last commit are published again after a crash: keep it short.
        "auto.commit.interval.ms": "250",
        "enable.partition.eof": "false",
        # Prefetch, per partition: librdkafka's default of 100,000 records held most of a 100,000
        # command backlog in the task (83 MB); 5,000 is still about a second of publishing ahead.
        "queued.min.messages": "5000",
        "queued.max.messages.kbytes": "16384",
        # Once a partition's prefetch is full librdkafka waits this long before fetching it again
        # (default 1,000 ms): draining a backlog, the relay emptied the prefetch within that wait and
        # read nothing for 0.2-0.5 s at a time (docs/benchmarks.md, "Session 8").
        "fetch.queue.backoff.ms": "10",
        "statistics.interval.ms": STATISTICS_INTERVAL_MS,  # the Kafka connection flag of the metrics
    }
    return {**client_settings(config.kafka, "consumer", ours), **GUARANTEE_SETTINGS}


def _label(tps: set[TP]) -> str:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(tps):
        by_topic.setdefault(topic, []).append(partition)
    return ", ".join(f"{t}{parts}" for t, parts in by_topic.items()) or "none"


class CommandConsumer(ConnectionReports):
    """Calls ``on_revoked(tps)`` before committing and unassigning revoked partitions, so the relay
    can finish their in-flight commands first; ``on_assigned`` after assigning, ``on_lost`` before
    unassigning lost ones. All callbacks run inside :meth:`consume`, on the relay thread."""

    def __init__(
        self,
        settings: Mapping[str, str],
        topics: tuple[str, ...],
        *,
        on_assigned: PartitionsCallback,
        on_revoked: PartitionsCallback,
        on_lost: PartitionsCallback,
    ) -> None:
        self._group = settings["group.id"]
        self.connection = ConnectionState(f"kafka consumer (group {self._group})", settings)
        self._consumer = Consumer(
            dict(settings),
            error_cb=self._on_error,
            stats_cb=self.connection.on_stats,
            logger=logging.getLogger("librdkafka"),
        )
        self._topics = topics
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._on_lost = on_lost
        self.assigned: set[TP] = set()
        self.paused: set[TP] = set()
        self.rebalances = 0
        self._to_store: dict[TP, int] = {}
        self._stored: dict[TP, int] = {}
        self._logged: dict[str, float] = {}
        self._member: str | None = None
        self._member_rebalances = -1
        self._member_checked = 0.0

    def subscribe(self) -> None:
        self._consumer.subscribe(
            list(self._topics), on_assign=self._assign, on_revoke=self._revoke, on_lost=self._lose
        )

    def consume(self, limit: int, timeout: float) -> list[Message]:
        """Up to ``limit`` records; errors are logged, fatal ones raised."""
        records = []
        for msg in self._consumer.consume(num_messages=limit, timeout=timeout):
            err = msg.error()
            if err is None:
                records.append(msg)
            elif err.fatal():
                raise KafkaException(err)
            else:
                self.connection.errors += 1
                self._log_error(f"{msg.topic()} [{msg.partition()}]: {err.str()}")
        return records

    def member_id(self) -> str | None:
        """The group member id, None while not in the group; asked of librdkafka after each
        rebalance and at most every :data:`MEMBER_CHECK_S` otherwise (each call costs the caller a
        hand-over of the GIL)."""
        now = time.monotonic()
        if self.rebalances != self._member_rebalances or now >= self._member_checked + MEMBER_CHECK_S:
            self._member = self._consumer.memberid() or None
            self._member_rebalances, self._member_checked = self.rebalances, now
        return self._member

    # -- pausing --------------------------------------------------------------------------------
    def pause(self, tps: set[TP]) -> None:
        todo = tps - self.paused
        if todo:
            self._consumer.pause([TopicPartition(t, p) for t, p in todo])
            self.paused |= todo

    def resume(self, tps: set[TP]) -> None:
        todo = tps & self.paused
        if todo:
            self._consumer.resume([TopicPartition(t, p) for t, p in todo])
            self.paused -= todo

    # -- offsets --------------------------------------------------------------------------------
    def store(self, tp: TP, offset: int) -> None:
        """Remember ``offset`` (the next one to read) for the next :meth:`flush_stores`."""
        self._to_store[tp] = offset

    def flush_stores(self) -> None:
        if not self._to_store:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._to_store.items() if (t, p) in self.assigned]
        self._stored.update(self._to_store)
        self._to_store.clear()
        if not offsets:
            return
        try:
            self._consumer.store_offsets(offsets=offsets)
        except KafkaException as exc:
            logger.warning("storing offsets %s failed: %s", offsets, exc.args[0])

    def commit(self, tps: set[TP] | None = None) -> None:
        """Commit what was stored for ``tps`` (default: every assigned partition), synchronously."""
        self.flush_stores()
        wanted = self.assigned if tps is None else tps
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._stored.items() if (t, p) in wanted]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The next owner starts from the last successful commit: commands published twice, none lost.
            logger.warning("group %s: committing %s failed: %s", self._group, _label(wanted), exc.args[0])

    def close(self) -> None:
        """Commit stored offsets and leave the group."""
        self.commit()
        self._consumer.close()

    # -- rebalance callbacks (inside consume()) -------------------------------------------------
    def _assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        tps = {(tp.topic, tp.partition) for tp in partitions}
        self.rebalances += 1
        self._consumer.incremental_assign(partitions)
        self.assigned |= tps
        if tps:
            logger.info("group %s: assigned %s", self._group, _label(tps))
        self._on_assigned(tps)

    def _revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        tps = {(tp.topic, tp.partition) for tp in partitions}
        self.rebalances += 1
        if tps:
            logger.info("group %s: %s revoked; committing what MQTT acknowledged", self._group, _label(tps))
        self._on_revoked(tps)
        self.commit(tps)
        self._unassign(tps, partitions)

    def _lose(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        tps = {(tp.topic, tp.partition) for tp in partitions}
        self.rebalances += 1
        logger.warning("group %s: lost %s without a rebalance; not committing", self._group, _label(tps))
        self._on_lost(tps)
        self._unassign(tps, partitions)

    def _unassign(self, tps: set[TP], partitions: list[TopicPartition]) -> None:
        self.resume(tps)  # no pause may outlive the assignment
        self._consumer.incremental_unassign(partitions)
        self.assigned -= tps
        for tp in tps:
            self._stored.pop(tp, None)
            self._to_store.pop(tp, None)

    def _on_error(self, err: KafkaError) -> None:
        if self.connection.on_error(err):
            return  # a refusal (authentication, TLS): logged once per episode by the state
        if err.fatal():
            logger.error("kafka consumer fatal error: %s", err)
        else:
            self._log_error(err.str())

    def _log_error(self, text: str) -> None:
        # librdkafka repeats errors while a condition lasts, with other numbers ("after 1ms") and
        # alternating between brokers: one line per kind of error and minute.
        kind = _NUMBERS.sub("#", text)
        now = time.monotonic()
        if now - self._logged.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
            if len(self._logged) > 100:
                self._logged.clear()
            self._logged[kind] = now
            logger.warning("kafka consumer (group %s): %s", self._group, text)

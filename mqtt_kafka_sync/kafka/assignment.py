"""Ownership of numbered pieces of work through a Kafka consumer group: partition ``i`` = piece ``i``.

A :class:`GroupOwnership` joins a consumer group on a *coordination topic* with one partition per
piece and never reads a record from it (nothing is ever written there, and no offset is ever
committed): the group's partition assignment is the only thing it uses. Kafka's group protocol then
decides which live member owns which piece, moves the pieces of a member that stops heartbeating
for ``session.timeout.ms``, and with ``cooperative-sticky`` moves only the pieces that must move.

Threads: one thread of its own polls the consumer (heartbeats run on librdkafka's own thread, so a
long :meth:`Owner.release` does not cost the membership before ``max.poll.interval.ms``). What the
owner is told, all on that thread:

- ``acquire(pieces)`` after the poll that assigned them returned (outside librdkafka's callback);
- ``release(pieces)`` *inside* the revocation callback: the pieces move to another member only once
  it returns, which is the point (the owner hands its work over cleanly first);
- ``release(pieces, lost=True)`` when the assignment was lost without a rebalance (the member was
  cut off from the coordinator for longer than the session timeout): another member may already
  own them;
- ``turn()`` after every poll (about twice a second), for the owner's own upkeep.

:func:`ensure_coordination_topic` creates the topic with one partition per piece, or refuses one
that exists with another partition count (an assignment of the wrong pieces).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.cimpl import NewTopic

from mqtt_kafka_sync.errors import SyncError
from mqtt_kafka_sync.kafka.settings import Kafka, admin_client, client_settings

logger = logging.getLogger(__name__)

POLL_S = 0.5
RETRY_S = 5.0
REFUSED_RETRY_S = 30.0


class CoordinationTopicError(SyncError):
    """The coordination topic exists with a partition count other than the number of pieces."""


def ensure_coordination_topic(kafka: Kafka, topic: str, pieces: int, timeout: float = 15.0) -> bool:
    """Create ``topic`` with ``pieces`` partitions unless it exists; True when created.

    Raises :class:`CoordinationTopicError` for an existing topic of another partition count, and
    ``KafkaException`` when Kafka does not answer within ``timeout``.
    """
    admin = admin_client(kafka)
    # All topics, not list_topics(topic=...): asking for one topic's metadata makes a broker with
    # auto.create.topics.enable create it, with num.partitions partitions.
    found = admin.list_topics(timeout=timeout).topics.get(topic)
    if found is not None and found.error is None:
        if len(found.partitions) != pieces:
            raise CoordinationTopicError(
                f"coordination topic {topic!r} has {len(found.partitions)} partitions but there are "
                f"{pieces} shards; set mqtt.shards.topic to a new topic name (or delete {topic!r} "
                "while no worker of this connector runs): its partition count is the shard count"
            )
        return False
    futures = admin.create_topics(
        [NewTopic(topic, pieces, -1, config={"retention.ms": "3600000"})], operation_timeout=timeout
    )
    try:
        futures[topic].result(timeout)
    except KafkaException as exc:
        err = exc.args[0]
        if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return ensure_coordination_topic(kafka, topic, pieces, timeout)
        raise
    logger.info("created coordination topic %s with %d partitions", topic, pieces)
    return True


def ownership_settings(kafka: Kafka, group: str, client_id: str, session_timeout_ms: int) -> dict[str, str]:
    """The consumer's settings: the connection's (security and all), then what ownership needs."""
    ours = {
        "group.id": group,
        "client.id": client_id,
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": str(session_timeout_ms),
        "heartbeat.interval.ms": str(max(100, session_timeout_ms // 5)),
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        "auto.offset.reset": "latest",
        "enable.partition.eof": "false",
    }
    return {**client_settings(kafka, "admin"), **ours}


class Owner(Protocol):
    """What the member tells about the pieces it owns (on its own thread)."""

    def acquire(self, pieces: set[int]) -> None: ...
    def release(self, pieces: set[int], *, lost: bool = False) -> None: ...
    def turn(self) -> None: ...


class GroupOwnership:
    """A member of one ownership group; :meth:`start` joins it, :meth:`stop` leaves it cleanly."""

    def __init__(
        self,
        kafka: Kafka,
        *,
        topic: str,
        group: str,
        client_id: str,
        session_timeout_ms: int,
        pieces: int,
        owner: Owner,
    ) -> None:
        self._kafka = kafka
        self._settings = ownership_settings(kafka, group, client_id, session_timeout_ms)
        self.group = group
        self.topic = topic
        self._pieces = pieces
        self._owner = owner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ownership-{topic}", daemon=True)
        self._consumer: Consumer | None = None
        self._acquired: set[int] = set()
        self.owned: frozenset[int] = frozenset()
        """Pieces assigned to this member now (read by any thread)."""
        self.joined = threading.Event()
        """Set at the first assignment this member received (possibly of nothing)."""

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Leave the group: every owned piece is released first (inside the consumer's close)."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("group %s: still releasing after %.0fs", self.group, timeout)

    def _run(self) -> None:
        refused = False
        while not self._stop.is_set():
            try:
                ensure_coordination_topic(self._kafka, self.topic, self._pieces)
                break
            except KafkaException as exc:
                logger.warning("coordination topic %s not checked (%s); trying again", self.topic, exc)
                self._stop.wait(RETRY_S)
            except CoordinationTopicError as exc:  # changed under a running worker: wait to be fixed
                if not refused:
                    logger.error("%s; owning no shard until it is fixed", exc)
                    refused = True
                self._stop.wait(REFUSED_RETRY_S)
        if self._stop.is_set():
            return
        settings: dict[str, Any] = dict(self._settings)
        consumer = Consumer(settings, logger=logging.getLogger("librdkafka"))
        self._consumer = consumer
        consumer.subscribe([self.topic], on_assign=self._assign, on_revoke=self._revoke, on_lost=self._lose)
        try:
            while not self._stop.is_set():
                message = consumer.poll(POLL_S)
                err = message.error() if message is not None else None
                if err is not None and err.fatal():
                    raise KafkaException(err)
                if self._acquired:
                    acquired, self._acquired = self._acquired, set()
                    self._owner.acquire(acquired)
                self._owner.turn()
        finally:
            consumer.close()  # revokes (and so releases) whatever is still owned

    # -- rebalance callbacks (inside poll() or close(), on this member's thread) ------------------
    def _assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        consumer.incremental_assign(partitions)
        pieces = {tp.partition for tp in partitions}
        self.owned = self.owned | pieces
        self._acquired |= pieces
        self.joined.set()
        if pieces:
            logger.info("group %s: assigned shards %s", self.group, sorted(pieces))

    def _revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._give_back(consumer, partitions, lost=False)

    def _lose(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self._give_back(consumer, partitions, lost=True)

    def _give_back(self, consumer: Any, partitions: list[TopicPartition], *, lost: bool) -> None:
        pieces = {tp.partition for tp in partitions}
        started = pieces - self._acquired
        self._acquired -= pieces
        if lost:
            logger.warning("group %s: lost shards %s (cut off from the group)", self.group, sorted(pieces))
        elif pieces:
            logger.info("group %s: shards %s revoked; handing them over", self.group, sorted(pieces))
        if started:
            self._owner.release(started, lost=lost)
        self.owned = self.owned - pieces
        consumer.incremental_unassign(partitions)

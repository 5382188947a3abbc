"""Sharded mode: MQTT sessions owned by shards, shards owned by workers through a Kafka consumer group.

``mqtt.subscription=sharded`` cuts the topic tree into shards (``mqtt.shards``, one MQTT filter
each). Shard ``i`` is partition ``i`` of a coordination topic; every task process of the connector,
on any machine, joins one consumer group on it (:class:`~mqtt_kafka_sync.kafka.assignment.GroupOwnership`),
and the group's assignment says which task owns which shard.

Owning shard ``i`` means running its MQTT session: client id :attr:`ShardsConfig.client_ids`\\[i]
(from the filter, so the session belongs to the shard, not to a worker), Clean Start 0 with
``mqtt.session.expiry.seconds``, subscribed to the shard's filter without ``$share``. Giving it up
(rebalance, graceful stop) drains it: stop reading, wait until Kafka confirmed what is in flight,
acknowledge that, disconnect keeping the session; only then does the partition move. A crashed
owner stops heartbeating and the group moves its shards after ``mqtt.shards.session.timeout.ms``;
the new owner resumes the session and the broker re-sends what was not acknowledged.

Design: **one** :class:`~mqtt_kafka_sync.ingest.task.IngestTask` **per owned shard** (its own MQTT
connection and pipeline, exactly what a shared-mode task runs), all producing through **one**
idempotent producer of the task (:class:`~mqtt_kafka_sync.kafka.producer.SharedKafkaSink`): with a
producer per shard, ten shards cost 2.4 to 2.9 times shared mode's CPU per message, with one 1.3 to
2.3 times (docs/operations.md). Each record's delivery report carries its own pipeline, so it
reaches its shard's ack tracker whichever shard's network thread polled the producer (the sink lets
one thread, the poller, poll at a time). A shard's drain waits for its own records only (its
tracker), not for the other shards'. Per device order follows from one session feeding the
producer in order.

A shard *lost* (cut off from the group: another worker may already resume its session) is drained
briefly; once every shard of the task is lost, whatever Kafka did not confirm is *purged* from the
producer (``purge`` is per producer, hence only then): those records would otherwise reach Kafka
after Kafka came back, while the broker re-sends the same messages to the session's next owner (the
duplicates of a Kafka outage). librdkafka reports a lost assignment whole, so a cut-off task loses
all its shards together; a single shard given up while others run (a session taken over, below)
purges nothing, and its unconfirmed records may arrive twice.

A session taken over by another client (two workers briefly both believing they own a shard while
one of them is cut off from the group) stops instead of fighting back (``give_up_on_takeover``):
its unacknowledged messages go to the other one. The cut-off worker learns that it lost the shard
within the session timeout; if instead the group still assigns the shard to this worker one session
timeout later, the other client was the stale one, and this worker starts the session again.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import KafkaException

from mqtt_kafka_sync.config.model import ShardsConfig, SourceConnectorConfig
from mqtt_kafka_sync.ingest.shard_view import ShardsTask
from mqtt_kafka_sync.ingest.task import IngestTask, static_topics, task_sink
from mqtt_kafka_sync.ingest.worker import COUNTERS, counters_snapshot, task_counters
from mqtt_kafka_sync.kafka.assignment import GroupOwnership, ensure_coordination_topic
from mqtt_kafka_sync.kafka.producer import SharedKafkaSink
from mqtt_kafka_sync.telemetry.registry import PipelineRegistry

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT_S = 30.0
"""How long a revoked shard waits for Kafka before it lets go anyway (the broker re-sends the rest)."""
LOST_DRAIN_TIMEOUT_S = 5.0
"""The same for a shard lost without a rebalance: another worker may already be resuming it."""
CLOSE_FLUSH_S = 1.0
"""At a stop, after every shard was handed over: how long QoS 0 records may still take."""


def shared_sink(config: SourceConnectorConfig, index: int) -> SharedKafkaSink:
    """The one producer of a sharded task's shards."""
    return task_sink(config, f"{config.task_client_id(index)}-shards", SharedKafkaSink)


def prepare_shards(config: SourceConnectorConfig, timeout: float = 10.0) -> None:
    """Before any task starts: the coordination topic exists with one partition per shard.

    Raises :class:`~mqtt_kafka_sync.kafka.assignment.CoordinationTopicError` (``run`` exits 1 with
    its words) for a topic with another partition count. Kafka not answering is no reason not to
    start (a task process starts without Kafka, too): each task checks again until it can.
    """
    if config.shards is None:
        return
    try:
        ensure_coordination_topic(config.kafka, config.shards.topic, len(config.shards.filters), timeout)
    except KafkaException as exc:
        logger.warning("%s: coordination topic not checked yet (%s)", config.name, exc.args[0])


class ShardedWorker:
    """The task of a sharded connector: a member of the shards' group, running the shards it owns."""

    throttle = None
    """The lag throttle does not pace sharded mode (the loader refuses ``throttle.*`` with it)."""

    def __init__(
        self, config: SourceConnectorConfig, index: int, *, telemetry: PipelineRegistry | None = None
    ) -> None:
        assert config.shards is not None
        self.config = config
        self.shards: ShardsConfig = config.shards
        self.index = index
        self._telemetry = telemetry
        self._tasks: dict[int, IngestTask] = {}
        self._retired = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()
        self._taken_over: dict[int, float] = {}
        """Shards whose session another client took over, and since when (member thread only)."""
        self._drain_timeout = DRAIN_TIMEOUT_S
        self.sink = shared_sink(config, index)
        self.member = GroupOwnership(
            config.kafka,
            topic=self.shards.topic,
            group=self.shards.group,
            client_id=f"{config.task_client_id(index)}-shards",
            session_timeout_ms=self.shards.session_timeout_ms,
            pieces=len(self.shards.filters),
            owner=self,
        )
        self.task = ShardsTask(self._live, self._settled, self.sink)

    def _live(self) -> list[IngestTask]:
        with self._lock:
            return list(self._tasks.values())

    def _settled(self) -> bool:
        """In the group, and running a session for every shard it was assigned (none pending)."""
        return self.member.joined.is_set() and self.member.owned == frozenset(self.owned)

    @property
    def owned(self) -> tuple[int, ...]:
        """Shards whose sessions this task runs now."""
        with self._lock:
            return tuple(sorted(self._tasks))

    def start(self) -> None:
        self.sink.warm_up(static_topics(self.config))
        self.member.start()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            tasks = list(self._tasks.values())
            base = dict(self._retired)
        snap = counters_snapshot(base, tasks)
        snap["subscribed"] = int(self.task.subscriber.subscribed)
        return snap

    def drain(self, timeout: float) -> bool:
        """Leave the group: every owned shard is drained and handed over (inside the consumer's close)."""
        self._drain_timeout = max(1.0, timeout)
        self.member.stop(timeout + 5.0)
        # Every shard is handed over: what is left is QoS 0 records, or records of a shard whose
        # drain ran out of time, which the broker re-sends to the next owner (purged: not twice).
        self.sink.flush(CLOSE_FLUSH_S)
        self.sink.purge()
        self.sink.poll(0)
        return not self.owned

    # -- Owner: called on the member's thread ----------------------------------------------------
    def acquire(self, pieces: set[int]) -> None:
        for shard in sorted(pieces):
            self._start(shard)

    def turn(self) -> None:
        """Start again, one session timeout later, a shard's session taken over while still assigned here."""
        now = time.monotonic()
        with self._lock:
            taken = [shard for shard, task in self._tasks.items() if task.subscriber.taken_over]
            idle = not self._tasks
        if idle:  # no shard's network thread polls the producer: serve its statistics and reports
            self.sink.poll(0)
        for shard in [s for s in self._taken_over if s not in taken]:
            del self._taken_over[shard]
        for shard in taken:
            since = self._taken_over.setdefault(shard, now)
            if now - since < self.shards.session_timeout_ms / 1000:
                continue
            logger.warning(
                "%s: shard %d (%s) is still assigned here but its session was taken over; starting it again",
                self.config.name,
                shard,
                self.shards.filters[shard],
            )
            del self._taken_over[shard]
            self.release({shard}, lost=True)
            self._start(shard)

    def _start(self, shard: int) -> None:
        task = IngestTask(
            self.config,
            self.index,
            client_id=self.shards.client_ids[shard],
            filters=(self.shards.filters[shard],),
            sink=self.sink,
            telemetry=self._telemetry,
        )
        task.subscriber.give_up_on_takeover = True
        with self._lock:
            self._tasks[shard] = task
        task.start()
        logger.info(
            "%s: running shard %d (%s) as %s",
            self.config.name,
            shard,
            self.shards.filters[shard],
            task.client_id,
        )

    def release(self, pieces: set[int], *, lost: bool = False) -> None:
        """Drain the shards' sessions, all at once (a stop's drain timeout holds for all of them)."""
        timeout = LOST_DRAIN_TIMEOUT_S if lost else self._drain_timeout
        with self._lock:
            tasks = {shard: self._tasks[shard] for shard in sorted(pieces) if shard in self._tasks}
        if len(tasks) == 1:
            self._hand_over(*next(iter(tasks.items())), timeout)
        else:
            threads = [
                threading.Thread(
                    target=self._hand_over, args=(shard, task, timeout), name=f"hand-over-{shard}"
                )
                for shard, task in tasks.items()
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        with self._lock:
            running = bool(self._tasks)
        if lost and not running and len(self.sink):
            self._purge()

    def _purge(self) -> None:
        """Every shard lost and its session closed: take back what Kafka has not confirmed."""
        unconfirmed = len(self.sink)
        self.sink.purge()
        self.sink.poll(0)  # the purged records' reports: nothing to do for them (ingest/delivery.py)
        logger.warning(
            "%s: %d records Kafka had not confirmed taken back from the producer; the broker sends "
            "their messages again to the shards' next owners",
            self.config.name,
            unconfirmed,
        )

    def _hand_over(self, shard: int, task: IngestTask, timeout: float) -> None:
        drained = task.drain(timeout)  # keeps the session for the next owner
        with self._lock:
            del self._tasks[shard]
            self._retire(task)
        logger.info(
            "%s: shard %d (%s) handed over%s",
            self.config.name,
            shard,
            self.shards.filters[shard],
            "" if drained else " with messages unconfirmed (the broker re-sends them)",
        )

    def _retire(self, task: IngestTask) -> None:
        for name, value in task_counters(task).items():
            self._retired[name] += value
        self.task.retired.add(task)

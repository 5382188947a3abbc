"""The replay loop: read the plan's ranges from the source, pace them, write them to the target.

Reads with a consumer that is assigned the partitions (it joins no group and commits nothing),
starting at each partition's checkpointed ``next`` offset. Every record keeps its key, value,
headers and timestamp, goes to the target in source order, and gets one more header,
``replay.source: <topic>/<partition>/<offset>``. A record the source no longer has (deleted by
retention between the plan and the read) stops the replay rather than leave a gap.

Each record takes a permit from the throttle first (when there is one). The checkpoint is written
every ``checkpoint_interval`` seconds, and before producing past the offsets the last one reserved;
see :mod:`~mqtt_kafka_sync.replay.checkpoint` for why that bounds what a resume can repeat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_INVALID, TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, TopicPartition

from mqtt_kafka_sync.kafka.settings import Kafka, reader_settings
from mqtt_kafka_sync.replay.checkpoint import Checkpoint, Confirmations, save_checkpoint
from mqtt_kafka_sync.replay.exceptions import ReplayError
from mqtt_kafka_sync.replay.progress import Progress, RateMeter, ReplayResult
from mqtt_kafka_sync.replay.target import SourceRecord, Target
from mqtt_kafka_sync.throttle.pacing import AckThrottle

logger = logging.getLogger(__name__)

REPLAY_HEADER = "replay.source"
BATCH = 500
RESERVE_MIN = 1_000
"""Offsets per partition a checkpoint reserves at least (see ``produced_below``)."""
MAX_PERMIT_WAIT = 0.1
"""Seconds the loop sleeps at most while waiting for permits (it serves deliveries in between)."""


def replay_consumer(kafka: Kafka, client_id: str) -> Consumer:
    ours = {"group.id": client_id, "client.id": client_id, "isolation.level": "read_committed"}
    # A start offset deleted by retention must stop the replay, not skip records.
    settings = {**reader_settings(kafka, "replay", ours), "auto.offset.reset": "error"}
    return Consumer(settings, logger=logging.getLogger("librdkafka"))


class Copier:
    def __init__(
        self,
        checkpoint: Checkpoint,
        path: Path,
        consumer: Consumer,
        target: Target,
        *,
        throttle: AckThrottle | None = None,
        stop: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        progress_interval: float = 1.0,
        checkpoint_interval: float = 1.0,
        final_wait: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``final_wait``: seconds to wait for the last confirmations once every record was sent."""
        self.checkpoint = checkpoint
        self._path = path
        self._consumer = consumer
        self._target = target
        self._throttle = throttle
        self._stop = stop or threading.Event()
        self._on_progress = on_progress
        self._progress_interval = progress_interval
        self._checkpoint_interval = checkpoint_interval
        self._final_wait = final_wait
        self._clock = clock
        plan = checkpoint.plan
        self._source = plan.source
        self._ends = {r.partition: r.end for r in plan.ranges}
        self._confirmations = Confirmations(checkpoint.next)
        self._failure: str | None = None
        self._sent = 0
        self._meter = RateMeter(checkpoint.done, 0.0)
        self._sent_below = dict(checkpoint.next)  # per partition: one past the highest offset sent

    def run(self) -> ReplayResult:
        started = self._clock()
        plan = self.checkpoint.plan
        open_partitions = {p for p, end in self._ends.items() if self.checkpoint.next[p] < end}
        if open_partitions:
            self._consumer.assign(
                [TopicPartition(self._source, p, self.checkpoint.next[p]) for p in sorted(open_partitions)]
            )
        last_checkpoint = started
        self._meter = RateMeter(self.checkpoint.done, started)
        while open_partitions and not self._stop.is_set() and self._failure is None:
            messages = self._consumer.consume(BATCH, 0.2)
            batch = self._keep_in_range(messages, open_partitions)
            self._send(batch)
            if not batch:
                self._close_finished(open_partitions)
            now = self._clock()
            if now - last_checkpoint >= self._checkpoint_interval:
                self._save()
                last_checkpoint = now
            if now - self._meter.last >= self._progress_interval:
                self._meter.update(self._record_done(), now)
                self._report(now - started, finished=False)
        complete = not open_partitions and self._failure is None
        remaining = self._target.flush(self._final_wait if complete else 10.0)
        self._target.poll(0)
        if complete and remaining == 0 and self._failure is None:
            self.checkpoint.next = {p: self._ends[p] for p in self._ends}
            self.checkpoint.produced_below = dict(self.checkpoint.next)
            self.checkpoint.complete = True
            save_checkpoint(self._path, self.checkpoint)
        else:
            self._save()
            if remaining == 0:  # every send has its answer: only what went beyond `next` may repeat
                for partition, sent_below in self._sent_below.items():
                    nxt = self.checkpoint.next[partition]
                    self.checkpoint.produced_below[partition] = max(nxt, sent_below)
                save_checkpoint(self._path, self.checkpoint)
        self._report(self._clock() - started, finished=True)
        if self._failure is not None:
            raise ReplayError(self._failure)
        if complete and remaining:
            raise ReplayError(
                f"{remaining} records not confirmed by {plan.target_label} in time; run again to resume"
            )
        return ReplayResult(
            self.checkpoint.complete, self.checkpoint.done, plan.total, self._sent, self._clock() - started
        )

    # -- internals --------------------------------------------------------------------------------
    def _keep_in_range(self, messages: list[Any], open_partitions: set[int]) -> list[Any]:
        batch = []
        for message in messages:
            err = message.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                where = f"{message.topic()} partition {message.partition()}"
                if err.code() == KafkaError._AUTO_OFFSET_RESET:
                    raise ReplayError(
                        f"{where}: the next offset to replay is gone (deleted by retention?): {err.str()}"
                    )
                raise ReplayError(f"reading {where}: {err.str()}")
            partition = message.partition()
            if partition not in open_partitions:
                continue
            if message.offset() >= self._ends[partition]:
                self._finish(partition, open_partitions)
                continue
            batch.append(message)
            if message.offset() + 1 >= self._ends[partition]:
                self._finish(partition, open_partitions)
        return batch

    def _finish(self, partition: int, open_partitions: set[int]) -> None:
        open_partitions.discard(partition)
        self._consumer.pause([TopicPartition(self._source, partition, OFFSET_INVALID)])

    def _close_finished(self, open_partitions: set[int]) -> None:
        """Partitions whose position passed the end without a record there (offset gaps)."""
        if not open_partitions:
            return
        positions = self._consumer.position([TopicPartition(self._source, p) for p in open_partitions])
        for tp in positions:
            if tp.offset >= self._ends[tp.partition]:
                self._confirmations.skip_to(tp.partition, self._ends[tp.partition])
                self._finish(tp.partition, open_partitions)

    def _send(self, batch: list[Any]) -> None:
        index = 0
        while index < len(batch):
            if self._stop.is_set() or self._failure is not None:
                return
            granted = self._permits(len(batch) - index)
            for message in batch[index : index + granted]:
                self._produce(message)
            index += granted
            self._target.poll(0)

    def _permits(self, wanted: int) -> int:
        throttle = self._throttle
        if throttle is None:
            return wanted
        while not self._stop.is_set():
            now = self._clock()
            granted = throttle.allow(wanted, now)
            if granted:
                return granted
            wait = throttle.next_allowed_in(now)
            self._target.poll(min(MAX_PERMIT_WAIT, wait if wait is not None else 0.0))
        return 0

    def _produce(self, message: Any) -> None:
        partition, offset = message.partition(), message.offset()
        checkpoint = self.checkpoint
        if offset >= checkpoint.produced_below[partition]:
            self._save(reserve_for=partition, offset=offset)
        headers = list(message.headers() or ())
        headers.append((REPLAY_HEADER, f"{self._source}/{partition}/{offset}"))
        kind, stamp = message.timestamp()
        token = self._confirmations.sent(partition, offset)
        self._sent_below[partition] = offset + 1
        record = SourceRecord(
            self._source,
            partition,
            offset,
            key=message.key(),
            value=message.value(),
            headers=headers,
            timestamp_ms=stamp if kind != TIMESTAMP_NOT_AVAILABLE else None,
        )
        self._target.send(record, _Confirm(self, partition, offset, token))
        self._sent += 1

    def _delivered(self, partition: int, offset: int, token: list[int], error: str | None) -> None:
        if error is None:
            self._confirmations.confirmed(partition, token)
        elif self._failure is None:
            target = self.checkpoint.plan.target_label
            self._failure = (
                f"{target} did not take the record from {self._source} partition {partition} offset "
                f"{offset}: {error}; the checkpoint stays before it, so running again resumes there"
            )
            logger.error("%s", self._failure)

    def _record_done(self) -> int:
        nexts = self._confirmations.next_offsets()
        return sum(nexts[r.partition] - r.start for r in self.checkpoint.plan.ranges)

    def _save(self, *, reserve_for: int | None = None, offset: int = 0) -> None:
        """Write the confirmed offsets; with ``reserve_for``, first allow producing that partition
        from ``offset`` up to the next stretch (see ``produced_below``)."""
        checkpoint = self.checkpoint
        checkpoint.next = self._confirmations.next_offsets()
        if reserve_for is not None:
            stretch = max(RESERVE_MIN, int(2 * self._meter.rate))
            checkpoint.produced_below[reserve_for] = min(self._ends[reserve_for], offset + stretch)
        save_checkpoint(self._path, checkpoint)

    def _report(self, elapsed: float, *, finished: bool) -> None:
        if self._on_progress is None:
            return
        done = self._record_done()
        rate = self._meter.reported(done, elapsed, finished=finished)
        self._on_progress(Progress(done, self.checkpoint.plan.total, rate, elapsed, finished))


class _Confirm:
    __slots__ = ("_copier", "_offset", "_partition", "_token")

    def __init__(self, copier: Copier, partition: int, offset: int, token: list[int]) -> None:
        self._copier = copier
        self._partition = partition
        self._offset = offset
        self._token = token

    def __call__(self, error: str | None) -> None:
        self._copier._delivered(self._partition, self._offset, self._token, error)

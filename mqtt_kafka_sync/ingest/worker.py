"""An ingest worker: one task's MQTT session, its membership record, and adoptions of dead peers."""

from __future__ import annotations

import functools
import logging
import threading
import time

from mqtt_kafka_sync.config.model import SourceConnectorConfig
from mqtt_kafka_sync.ingest.pipeline import IngestPipeline
from mqtt_kafka_sync.ingest.takeover import (
    OFFLINE,
    ONLINE,
    STOPPED,
    Adoption,
    Member,
    Membership,
    membership_filter,
    membership_payload,
    membership_topic,
)
from mqtt_kafka_sync.ingest.task import IngestTask
from mqtt_kafka_sync.mqtt.packets import Publish, Will
from mqtt_kafka_sync.telemetry.registry import PipelineRegistry
from mqtt_kafka_sync.throttle.lag_throttle import LagSource, LagThrottle, ThrottleLoop, ingest_throttle

logger = logging.getLogger(__name__)

ADOPTION_IDLE_SECONDS = 2.0
ADOPTION_MAX_SECONDS = 3600.0


COUNTERS = ("received", "produced", "dead_lettered", "acked")


def task_counters(task: IngestTask) -> dict[str, int]:
    stats = task.pipeline.stats
    return {
        "received": stats.received,
        "produced": stats.produced,
        "dead_lettered": stats.dead_lettered,
        "acked": task.tracker.acked,
    }


def counters_snapshot(base: dict[str, int], tasks: list[IngestTask]) -> dict[str, int]:
    """``base`` (what finished tasks counted) plus the counters of ``tasks``."""
    snap = dict(base)
    for task in tasks:
        for name, value in task_counters(task).items():
            snap[name] += value
    return snap


class _MembershipHandler:
    """Lets membership records bypass the pipeline; everything else goes to Kafka."""

    def __init__(self, worker: IngestWorker, pipeline: IngestPipeline) -> None:
        self._worker = worker
        self._pipeline = pipeline

    def on_connected(self, generation: int, session_present: bool) -> None:
        self._pipeline.on_connected(generation, session_present)
        self._worker.announce(ONLINE)

    def on_message(self, message: Publish, generation: int) -> None:
        membership = self._worker.membership
        if membership is not None and membership.is_membership(message.topic):
            membership.update(message, time.monotonic())
        else:
            self._pipeline.on_message(message, generation)

    def on_disconnected(self, generation: int, reason: str) -> None:
        self._pipeline.on_disconnected(generation, reason)

    def on_tick(self) -> float | None:
        return self._pipeline.on_tick()


class IngestWorker:
    def __init__(
        self,
        config: SourceConnectorConfig,
        index: int,
        *,
        lag: LagSource | None = None,
        telemetry: PipelineRegistry | None = None,
    ) -> None:
        """``lag``: the throttle's lag source (None: a reader process of its own); ``telemetry``:
        where every pipeline of this task, adopted sessions' too, registers its counters."""
        self.config = config
        self.index = index
        self._telemetry = telemetry
        client_id = config.task_client_id(index)
        group = config.mqtt_shared_group
        self.membership: Membership | None = None
        will = None
        control: tuple[str, ...] = ()
        if config.mqtt_takeover_enabled:
            self.membership = Membership(group, client_id)
            will = Will(
                membership_topic(group, client_id),
                membership_payload(OFFLINE, config.mqtt_topics),
                qos=1,
                retain=True,
            )
            control = (membership_filter(group),)
        throttled = ingest_throttle(config, tasks=config.tasks_max, lag=lag)
        self.throttle: LagThrottle | None = None
        self._throttle_loop: ThrottleLoop | None = None
        if throttled is not None:
            self.throttle, self._throttle_loop = throttled
        self.task = IngestTask(
            config,
            index,
            will=will,
            control_filters=control,
            handler_wrapper=lambda pipeline: _MembershipHandler(self, pipeline),
            throttle=self.throttle,
            telemetry=telemetry,
        )
        self._adoptions: dict[str, tuple[Adoption, IngestTask]] = {}
        self._retired = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="takeover-watch", daemon=True)

    def announce(self, state: str) -> None:
        if self.membership is not None:
            topic = membership_topic(self.config.mqtt_shared_group, self.task.client_id)
            self.task.subscriber.publish(
                topic, membership_payload(state, self.config.mqtt_topics), retain=True
            )

    def start(self) -> None:
        self.task.start()
        if self._throttle_loop is not None:
            self._throttle_loop.start()
        if self.membership is not None:
            self._watcher.start()

    def snapshot(self) -> dict[str, int]:
        """Counters of this task plus every adoption it ran, finished or not."""
        with self._lock:
            tasks = [self.task, *(t for _, t in self._adoptions.values())]
            base = dict(self._retired)
        snap = counters_snapshot(base, tasks)
        snap["subscribed"] = int(self.task.subscriber.subscribed)
        return snap

    def drain(self, timeout: float) -> bool:
        self._stop.set()
        if self._throttle_loop is not None:
            self._throttle_loop.stop(timeout=2.0)
        self.announce(STOPPED)
        with self._lock:
            adoptions = list(self._adoptions.values())
        for _, task in adoptions:
            task.drain(timeout / 2)  # keeps the adopted session: someone adopts it again later
        return self.task.drain(timeout)

    # -- adoption ----------------------------------------------------------------------------------
    def _watch(self) -> None:
        assert self.membership is not None
        delay = float(self.config.mqtt_takeover_delay_seconds)
        while not self._stop.wait(1.0):
            if not self.task.subscriber.subscribed:
                continue
            for member in self.membership.orphans_for_me(time.monotonic(), delay):
                with self._lock:
                    if member.client_id in self._adoptions or self._stop.is_set():
                        continue
                    task = self._adoption_task(member)
                    adoption = Adoption(member, functools.partial(self._adopt, task=task), self._adopted)
                    self._adoptions[member.client_id] = (adoption, task)
                adoption.start()

    def _adoption_task(self, member: Member) -> IngestTask:
        """A task on ``member``'s session that produces through this task's producer.

        Its pipeline does not poll that producer: this task's network thread does, on every turn,
        and so serves the adopted session's delivery reports too, whenever the adoption starts.
        """
        return IngestTask(
            self.config,
            self.index,
            client_id=member.client_id,
            sink=self.task.sink,
            subscribe=False,
            telemetry=self._telemetry,
        )

    def _adopt(self, member: Member, *, task: IngestTask) -> bool:
        logger.warning(
            "%s: adopting the session of %s (%s)", self.task.client_id, member.client_id, member.state
        )
        task.subscriber.give_up_on_takeover = True
        task.start()
        if not task.subscriber.wait_connected(self.config.mqtt.connect_timeout_seconds * 3):
            task.drain(5.0)
            return False
        # New messages go to live members only; and the session's membership subscription goes too,
        # or the records of members coming and going would reach this pipeline as data (no route).
        group = self.config.mqtt_shared_group
        task.subscriber.unsubscribe(
            (*(f"$share/{group}/{f}" for f in member.filters), membership_filter(group)), timeout=10.0
        )
        stats = task.pipeline.stats
        last_count, last_change = -1, time.monotonic()
        deadline = time.monotonic() + ADOPTION_MAX_SECONDS
        while not self._stop.is_set() and not task.subscriber.taken_over and time.monotonic() < deadline:
            now = time.monotonic()
            if stats.received != last_count:
                last_count, last_change = stats.received, now
            elif now - last_change >= ADOPTION_IDLE_SECONDS and task.tracker.in_flight == 0:
                break
            time.sleep(0.2)
        if task.subscriber.taken_over:
            logger.warning("%s came back; handing its session back", member.client_id)
            return False
        if self._stop.is_set():
            return False
        drained = task.drain(30.0, session_expiry=0)  # ends the dead member's session at the broker
        if drained:
            self.task.subscriber.publish(
                membership_topic(self.config.mqtt_shared_group, member.client_id), b"", retain=True
            )
            logger.warning(
                "%s: adopted session of %s drained (%d messages)",
                self.task.client_id,
                member.client_id,
                stats.received,
            )
        return drained

    def _adopted(self, member: Member, ok: bool) -> None:
        with self._lock:
            _, task = self._adoptions.pop(member.client_id)
            for name, value in task_counters(task).items():
                self._retired[name] += value
        if ok and self.membership is not None:
            self.membership.forget(member.client_id)

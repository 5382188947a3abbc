"""Records the ingest pipeline holds back per Kafka topic, and tries again in arrival order.

Two reasons to hold a topic's records: librdkafka calls the topic unknown (deleted mid-run, never
created), so they wait with backoff and are dead-lettered as ``kafka-topic-missing`` once
``errors.retry.timeout.ms`` has passed (``-1``: never); or Kafka refused a batch of them for size,
so each is tried again by itself, one at a time. Only that topic's records wait: the others flow.
Retries run on the network thread's ticks (:meth:`HeldTopics.retry_due`).
"""

from __future__ import annotations

import bisect
import logging
import random
import time
from collections.abc import Callable

from mqtt_kafka_sync.ingest.stats import IngestStats

logger = logging.getLogger("mqtt_kafka_sync.ingest.pipeline")
"""The pipeline's logger: these lines kept their name when the pipeline was split."""

HOLD_FIRST_DELAY = 0.1
HOLD_MAX_DELAY = 10.0
"""Seconds between tries of a held topic: doubling from the first to the max, with jitter."""


class Held:
    """Records of one Kafka topic held back, in arrival order: waiting for librdkafka to know the
    topic, or (``alone``) tried one at a time after Kafka refused a batch of them for size."""

    __slots__ = ("alone", "attempts", "busy", "due", "since", "waiting")

    def __init__(self, now: float, *, alone: bool = False) -> None:
        self.alone = alone
        self.busy = False
        """``alone``: one record is in flight; the next waits for its answer."""
        self.since = now
        self.attempts = 0
        self.due = now
        self.waiting: list[tuple[int, Callable[[], None]]] = []
        """``(arrival seq, retry)``, sorted: a record whose delivery failed after later ones were
        held still goes back to its place."""

    def add(self, seq: int, retry: Callable[[], None]) -> None:
        bisect.insort(self.waiting, (seq, retry), key=lambda entry: entry[0])

    def failed(self, now: float) -> None:
        self.attempts += 1
        delay = min(HOLD_MAX_DELAY, HOLD_FIRST_DELAY * 2 ** min(self.attempts, 20))
        self.due = now + delay * random.uniform(0.5, 1.0)


class HeldTopics:
    """Every held topic of one pipeline (network thread only).

    :attr:`topics` is empty nearly always: the per-message path tests it before calling anything
    here. ``busy_wait``: seconds until the next tick while a record tried alone has no answer yet.
    """

    def __init__(self, stats: IngestStats, *, retry_timeout: float | None, busy_wait: float) -> None:
        self.topics: dict[str, Held] = {}
        self._stats = stats
        self._retry_timeout = retry_timeout
        self._busy_wait = busy_wait
        self._retrying: str | None = None

    def forget_waiting(self) -> None:
        """A new MQTT connection: the broker sends the held messages again."""
        for held in self.topics.values():
            self._stats.held -= len(held.waiting)
            held.waiting.clear()

    def held_back(self, topic: str, seq: int, retry: Callable[[], None]) -> bool:
        """Queue ``retry`` among the records already held for ``topic``, in arrival order."""
        held = self.topics.get(topic)
        if held is None or self._retrying == topic:
            return False
        held.add(seq, retry)
        self._stats.held += 1
        return True

    def hold(
        self,
        topic: str,
        seq: int,
        why: str,
        retry: Callable[[], None],
        give_up: Callable[[], None] | None,
        *,
        alone: bool = False,
    ) -> None:
        """Hold a record of ``topic`` (``give_up``: what to do once the retry timeout has passed)."""
        now = time.monotonic()
        held = self.topics.get(topic)
        if held is None and alone:
            held = self.topics[topic] = Held(now, alone=True)
            logger.warning(
                "kafka refused a batch for %s (%s); trying its records again one at a time", topic, why
            )
        elif held is None:
            held = self.topics[topic] = Held(now)
            logger.error(
                "kafka topic %s is unknown to the producer (%s); holding its records, trying again with "
                "backoff%s",
                topic,
                why,
                ""
                if give_up is None or self._retry_timeout is None
                else f", dead-lettering them after {self._retry_timeout:.0f}s",
            )
        if (
            give_up is not None
            and self._retry_timeout is not None
            and now - held.since >= self._retry_timeout
        ):
            give_up()
            return
        if held.alone:
            held.due = now
        elif self._retrying == topic or held.due <= now:
            held.failed(now)
        held.add(seq, retry)
        self._stats.held += 1

    def retry_due(self, now: float) -> float:
        """Try held topics that are due, in arrival order; the seconds until the next is due."""
        wait = HOLD_MAX_DELAY
        for topic, held in list(self.topics.items()):
            if held.due > now:
                wait = min(wait, held.due - now)
                continue
            if held.busy:  # alone: the one in flight has no answer yet
                wait = min(wait, self._busy_wait)
                continue
            self._retrying = topic
            attempts = held.attempts
            try:
                while held.waiting and held.attempts == attempts and not held.busy:
                    self._stats.held -= 1
                    held.busy = held.alone
                    held.waiting.pop(0)[1]()
            finally:
                self._retrying = None
            if not held.waiting and held.attempts == attempts:
                del self.topics[topic]
                if not held.alone:
                    logger.warning("kafka topic %s takes records again", topic)
            else:
                wait = min(wait, max(0.0, held.due - now))
        return wait

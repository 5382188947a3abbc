"""A consumer group member that reads at a fixed rate: the slow downstream consumer the throttle
tests (and loadtests/reconnect_burst.py) measure lag against."""

from __future__ import annotations

import threading
import time

from confluent_kafka import Consumer

from mqtt_kafka_sync.errors import LagReadError
from mqtt_kafka_sync.kafka.lag_process import IsolatedLagReader
from mqtt_kafka_sync.throttle.lag_throttle import TopicTemplates


class PacedConsumer:
    """Joins ``group``, reads ``topic`` at ``rate`` records/s in a thread, auto-commits every
    ``commit_ms``; :attr:`consumed` counts what it read."""

    def __init__(self, bootstrap: str, topic: str, group: str, rate: float, *, commit_ms: int = 500) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "auto.commit.interval.ms": commit_ms,
            }
        )
        self._consumer.subscribe([topic])
        self._rate = rate
        self._stop = threading.Event()
        self.consumed = 0
        self._thread = threading.Thread(target=self._run, name=f"paced-{group}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            # Never more than 0.2 s of credit: a consumer that found nothing to read does not then
            # read faster than its rate to make up for it.
            start = max(start, time.monotonic() - self.consumed / self._rate - 0.2)
            allowed = int((time.monotonic() - start) * self._rate) - self.consumed
            if allowed <= 0:
                time.sleep(0.01)
                continue
            self.consumed += len(self._consumer.consume(min(allowed, 200), 0.05))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()


class LagProbe:
    """The measuring side's lag of ``group`` on ``topic``, read as the worker reads it: in a child
    process (a fresh broker can crash librdkafka's admin client, librdkafka#5040). A failed read
    (e.g. "coordinator load in progress" right after a broker start) repeats the last value and is
    counted in :attr:`failed`."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self._reader = IsolatedLagReader(bootstrap, [group], topics=TopicTemplates([topic]))
        self.reads = self.failed = self.last = 0

    def read(self) -> int:
        self.reads += 1
        try:
            self.last = self._reader.read_lag() or 0
        except LagReadError:
            self.failed += 1
        return self.last

    def close(self) -> None:
        self._reader.close()

"""The producer a sharded task's shards share: one network thread polls it at a time, the others
watch; a poller that stops polling is replaced; and a drain waits until its session stopped reading."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from mqtt_kafka_sync.ingest import task as task_module
from mqtt_kafka_sync.kafka import producer as producer_module
from mqtt_kafka_sync.kafka.producer import SERVE_BUSY_S, SERVE_IDLE_S, SERVE_WATCH_S, SharedKafkaSink


class _Librdkafka:
    def __init__(self) -> None:
        self.polls: list[int] = []
        self.outstanding = 0

    def poll(self, timeout: float) -> int:
        self.polls.append(threading.get_ident())
        return 0

    def __len__(self) -> int:
        return self.outstanding


@pytest.fixture
def sink() -> SharedKafkaSink:
    shared = SharedKafkaSink({"bootstrap.servers": "127.0.0.1:1"})
    shared._producer = _Librdkafka()  # type: ignore[assignment]
    return shared


def _on_thread(call: Any) -> Any:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    thread.join()
    return result[0]


def test_one_thread_polls_the_others_watch(sink: SharedKafkaSink, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [10.0]
    monkeypatch.setattr("mqtt_kafka_sync.kafka.producer.time.monotonic", lambda: now[0])
    librdkafka: Any = sink._producer
    librdkafka.outstanding = 5
    assert sink.serve(2) == SERVE_BUSY_S  # the first caller becomes the poller
    assert _on_thread(lambda: sink.serve(3)) == SERVE_WATCH_S  # another shard's thread: watches
    assert _on_thread(lambda: sink.serve(0)) == SERVE_IDLE_S  # nothing of its own out: sleeps
    assert librdkafka.polls == [threading.get_ident()]
    now[0] += 0.01
    assert sink.serve(2) == SERVE_BUSY_S  # the poller again, however soon
    assert len(librdkafka.polls) == 2


def test_a_poller_that_stopped_polling_is_replaced(
    sink: SharedKafkaSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drained shard's thread ends, a broken connection sleeps in its backoff: the next caller
    polls once the poller is late, so the other shards' acknowledgements keep flowing."""
    now = [10.0]
    monkeypatch.setattr("mqtt_kafka_sync.kafka.producer.time.monotonic", lambda: now[0])
    librdkafka: Any = sink._producer
    sink.serve(1)
    now[0] += producer_module.POLLER_STALE_S + 0.001
    assert _on_thread(lambda: sink.serve(1)) == SERVE_BUSY_S
    assert len(librdkafka.polls) == 2 and librdkafka.polls[1] != threading.get_ident()
    assert sink.serve(1) == SERVE_WATCH_S  # the old poller, back: the new one polls now


def test_reports_are_never_served_on_two_threads_at_once(sink: SharedKafkaSink) -> None:
    librdkafka: Any = sink._producer
    with sink._polling:  # another thread is inside poll()
        assert _on_thread(lambda: sink.poll(0)) == 0
        assert _on_thread(lambda: sink.serve(1)) == SERVE_WATCH_S
    assert librdkafka.polls == []


class _Subscriber:
    """Turns its loop only when told, like a network thread busy dispatching a chunk."""

    def __init__(self) -> None:
        self.loop_turned_at = 0.0
        self.stopped = False
        self.pauses = 0

    def pause(self) -> None:
        self.pauses += 1


def test_a_drain_waits_for_the_network_thread_to_turn_after_the_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Until then the thread may still dispatch what it read before the pause, and a tracker found
    idle meanwhile let the session disconnect with those records' acks unsent (duplicates)."""
    now = [100.0]
    monkeypatch.setattr("mqtt_kafka_sync.ingest.task.time.monotonic", lambda: now[0])
    subscriber = _Subscriber()
    sleeps: list[float] = []
    turns_after = [3]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds
        if len(sleeps) == turns_after[0]:  # the thread starts its next turn
            subscriber.loop_turned_at = now[0]

    monkeypatch.setattr("mqtt_kafka_sync.ingest.task.time.sleep", sleep)
    task: Any = object.__new__(task_module.IngestTask)
    task.subscriber = subscriber
    task._wait_pause_seen(now[0] + 1.0)
    assert len(sleeps) == 3 and subscriber.pauses == 0
    subscriber.loop_turned_at, turns_after[0] = 0.0, 0
    sleeps.clear()
    task._wait_pause_seen(now[0] + 0.01)  # a thread that never turns again costs at most the bound
    assert 0.01 <= sum(sleeps) < 0.02
    assert subscriber.pauses == 0  # woken again every 10 waits: once it turned before ``paused_at``
    subscriber.loop_turned_at, turns_after[0] = 0.0, 25
    sleeps.clear()
    task._wait_pause_seen(now[0] + 1.0)
    assert len(sleeps) == 25 and subscriber.pauses == 2

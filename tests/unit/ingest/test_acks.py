"""Acknowledgements leave in arrival order, and only once Kafka confirmed everything before them."""

from __future__ import annotations

import random
import threading
from collections import deque

from mqtt_kafka_sync.ingest.acks import AckTracker, Pending


def test_releases_longest_confirmed_prefix_in_arrival_order() -> None:
    sent: list[list[tuple[int, int, int]]] = []
    tracker = AckTracker(sent.append)
    a, b, c = (tracker.add(1, pid, 1, 0.0) for pid in (10, 11, 12))
    tracker.done(c)
    tracker.done(b)
    assert sent == [] and tracker.in_flight == 3
    tracker.done(a)
    assert sent == [[(1, 10, 1), (1, 11, 1), (1, 12, 1)]]
    assert tracker.in_flight == 0 and tracker.wait_idle(0) and tracker.acked == 3


def test_reset_forgets_pending_of_a_lost_connection() -> None:
    sent: list[list[tuple[int, int, int]]] = []
    tracker = AckTracker(sent.append)
    old = tracker.add(1, 5, 2, 0.0)
    tracker.reset()
    new = tracker.add(2, 5, 2, 0.0)
    tracker.done(old)  # late confirmation for the old connection: nothing to release
    assert sent == []
    tracker.done(new)
    assert sent == [[(2, 5, 2)]]


def test_acknowledgements_are_queued_before_the_tracker_says_idle() -> None:
    """A drain that sees idle disconnects next: the acks must already be on their way (with a
    producer shared by several sessions the confirmation runs on another session's thread)."""
    idle_when_sent: list[bool] = []
    tracker = AckTracker(lambda acks: idle_when_sent.append(tracker.wait_idle(0)))
    tracker.done(tracker.add(1, 10, 1, 0.0))
    assert idle_when_sent == [False] and tracker.wait_idle(0)


def test_gathered_acknowledgements_leave_as_one_batch_in_order_then_idle() -> None:
    """Around a poll serving many delivery reports: one send, in arrival order, idle only after it."""
    sent: list[tuple[list[tuple[int, int, int]], bool]] = []
    tracker = AckTracker(lambda acks: sent.append((acks, tracker.wait_idle(0))))
    a, b, c = (tracker.add(1, pid, 1, 0.0) for pid in (10, 11, 12))
    tracker.gather()
    tracker.done(b)
    tracker.done(a)
    tracker.done(c)
    assert sent == [] and not tracker.wait_idle(0) and tracker.in_flight == 0
    tracker.send_gathered()
    assert sent == [([(1, 10, 1), (1, 11, 1), (1, 12, 1)], False)]
    assert tracker.wait_idle(0) and tracker.acked == 3
    tracker.done(tracker.add(1, 13, 1, 0.0))  # no longer gathering: sent at once
    assert sent[-1] == ([(1, 13, 1)], False)


def test_a_gather_releasing_nothing_sends_nothing() -> None:
    sent: list[list[tuple[int, int, int]]] = []
    tracker = AckTracker(sent.append)
    first = tracker.add(1, 10, 1, 0.0)
    second = tracker.add(1, 11, 1, 0.0)
    tracker.gather()
    tracker.done(second)
    tracker.send_gathered()
    assert sent == [] and not tracker.wait_idle(0)
    tracker.done(first)
    assert sent == [[(1, 10, 1), (1, 11, 1)]]


def test_idle_follows_the_queue_without_a_lock_in_add() -> None:
    tracker = AckTracker(lambda acks: None)
    assert tracker.wait_idle(0)
    old = tracker.add(1, 1, 1, 0.0)
    assert not tracker.wait_idle(0)
    tracker.reset()
    assert tracker.wait_idle(0)
    tracker.done(old)  # forgotten by reset, nothing pending: idle stays as it is
    new = tracker.add(2, 1, 1, 0.0)
    assert not tracker.wait_idle(0)
    tracker.done(old)  # late again, with a message pending: still not idle
    assert not tracker.wait_idle(0)
    second = tracker.add(2, 2, 1, 0.0)  # busy -> busy: idle stays clear
    tracker.done(new)
    assert not tracker.wait_idle(0)
    tracker.done(second)
    assert tracker.wait_idle(0) and tracker.in_flight == 0


def test_adds_on_one_thread_and_confirmations_on_another_release_all_in_order() -> None:
    """add() takes no lock; done() on another thread (a shared producer's poller) races with it."""
    sent: list[tuple[int, int, int]] = []
    tracker = AckTracker(sent.extend)
    handed: deque[Pending] = deque()
    count = 20_000
    finished = threading.Event()

    def confirm() -> None:
        done = 0
        while done < count:
            if handed:
                tracker.done(handed.popleft())
                done += 1
        finished.set()

    confirmer = threading.Thread(target=confirm)
    confirmer.start()
    for packet_id in range(count):
        handed.append(tracker.add(1, packet_id % 65535 + 1, 1, 0.0))
    assert finished.wait(30)
    confirmer.join()
    assert [a[1] for a in sent] == [i % 65535 + 1 for i in range(count)]
    assert tracker.in_flight == 0 and tracker.wait_idle(0)


def test_confirmations_in_any_order_release_each_only_after_all_before_it() -> None:
    rng = random.Random(16)
    for _ in range(50):
        sent: list[tuple[int, int, int]] = []
        tracker = AckTracker(sent.extend)
        count = rng.randint(1, 60)
        numbers = [tracker.add(1, packet_id, 1, 0.0) for packet_id in range(1, count + 1)]
        confirmed: set[int] = set()
        for index in rng.sample(range(count), count):
            tracker.done(numbers[index])
            confirmed.add(index)
            prefix = next((i for i in range(count) if i not in confirmed), count)
            assert [a[1] for a in sent] == list(range(1, prefix + 1))
        assert tracker.in_flight == 0 and tracker.wait_idle(0) and tracker.acked == count

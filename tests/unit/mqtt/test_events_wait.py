"""take_events waits out its timeout, never longer, however many signals arrive while it waits."""

from __future__ import annotations

import queue
import signal
import threading
import time

from mqtt_kafka_sync.mqtt.events import take_events

SIGNALS = 600


def test_a_signal_during_the_wait_does_not_make_it_wait_for_the_next_event() -> None:
    # CPython 3.11's SimpleQueue.get(timeout=...) interrupted by a signal handler could go on waiting
    # until the next put: here, until the late event 1.5 s after the last signal.
    events: queue.SimpleQueue[object] = queue.SimpleQueue()
    handled: list[int] = []
    previous = signal.signal(signal.SIGUSR2, lambda *_: handled.append(1))
    waiter = threading.get_ident()
    sent = threading.Event()

    def send() -> None:
        for i in range(SIGNALS):
            time.sleep(0.0005 + (i % 17) * 0.0002)
            signal.pthread_kill(waiter, signal.SIGUSR2)
        sent.set()
        time.sleep(1.5)
        events.put("late")

    sender = threading.Thread(target=send, daemon=True)
    longest, waits = 0.0, 0
    try:
        sender.start()
        while not sent.is_set():
            started = time.monotonic()
            taken = take_events(events, 0.002)
            longest = max(longest, time.monotonic() - started)
            waits += 1
            assert taken == [] or sent.is_set(), taken
    finally:
        sender.join(10.0)
        signal.signal(signal.SIGUSR2, previous)
    assert len(handled) > SIGNALS // 2, "the signals reached the waiting thread's handler"
    assert longest < 0.5, f"one wait of {waits} lasted {longest:.2f}s"

"""IsolatedLagReader without a broker: what a shutdown and an unreachable Kafka do to it (the crash
of its child against a real Kafka is in tests/integration/test_lag_process.py)."""

from __future__ import annotations

import threading
import time

import pytest

from mqtt_kafka_sync.errors import LagReadError
from mqtt_kafka_sync.kafka.lag_process import IsolatedLagReader
from mqtt_kafka_sync.throttle.lag_throttle import TopicTemplates

UNREACHABLE = "127.0.0.1:1"


def test_close_does_not_wait_for_a_read_in_progress() -> None:
    reader = IsolatedLagReader(UNREACHABLE, ["g"], topics=TopicTemplates(["t"]), timeout=30.0)
    failures: list[Exception] = []

    def read() -> None:
        try:
            reader.read_lag()
        except LagReadError as exc:
            failures.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    deadline = time.monotonic() + 10
    while reader.pid is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)  # the read is waiting for an answer Kafka will not give for 30 s
    start = time.monotonic()
    reader.close()
    assert time.monotonic() - start < 1.0
    thread.join(10)
    assert not thread.is_alive()
    assert len(failures) == 1 and "died" in str(failures[0])
    with pytest.raises(LagReadError, match="closed"):
        reader.read_lag()


def test_kafka_that_does_not_answer_is_a_read_error_not_a_crash() -> None:
    reader = IsolatedLagReader(UNREACHABLE, ["g"], topics=TopicTemplates(["t"]), timeout=1.0)
    try:
        with pytest.raises(LagReadError) as caught:
            reader.read_lag()
        assert "died" not in str(caught.value)  # the child answered with the error
        assert reader.started == 1 and reader.pid is not None
    finally:
        reader.close()
    assert reader.pid is None

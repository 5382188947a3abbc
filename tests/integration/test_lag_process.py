"""The throttle's lag reads run in a child process, so a librdkafka crash in them (librdkafka#5040)
costs one lag sample, not the ingest task or the replay. Proven here by crashing the child with
SIGSEGV, against the real Kafka and Mosquitto."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from loadtests.publisher import LoadSpec, generate
from mqtt_kafka_sync.errors import LagReadError
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.kafka.lag_process import IsolatedLagReader
from mqtt_kafka_sync.throttle.lag_throttle import TopicTemplates
from tests.integration.worker_process import WorkerProcess, write_source_config

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still running")


def test_a_crashed_lag_reader_is_reported_and_replaced(brokers: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    topic, group = f"lagproc-{tag}", f"lagproc-{tag}"
    bootstrap = brokers.kafka_bootstrap
    ensure_topics(bootstrap, [topic], partitions=3)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(300):
        producer.produce(topic, value=b"x", partition=i % 3)
    assert producer.flush(30) == 0
    committer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    committer.commit(offsets=[TopicPartition(topic, p, 10 * (p + 1)) for p in range(3)], asynchronous=False)
    committer.close()
    expected = 300 - (10 + 20 + 30)

    reader = IsolatedLagReader(bootstrap, [group], topics=TopicTemplates([topic]), timeout=5.0)
    try:
        assert reader.read_lag() == expected
        first = reader.pid
        assert first is not None and first != os.getpid()
        os.kill(first, signal.SIGSEGV)
        _wait_gone(first)
        with pytest.raises(LagReadError, match="SIGSEGV"):
            reader.read_lag()
        assert reader.read_lag() == expected  # a new child answers
        assert reader.started == 2
        assert reader.pid not in (None, first)
        second = reader.pid
    finally:
        reader.close()
    assert second is not None
    _wait_gone(second)


def test_the_ingest_task_outlives_a_crash_of_its_lag_reader(brokers: Any, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    root, topic = f"lagcrash{tag}", f"lagcrash-{tag}"
    ensure_topics(brokers.kafka_bootstrap, [topic, f"{topic}-dlq"], partitions=3)
    config = write_source_config(
        tmp_path / "throttled.json",
        brokers,
        name=f"lagcrash-{tag}",
        root=root,
        topic=topic,
        **{
            "mqtt.takeover.enabled": "false",
            "throttle.lag.groups": f"nobody-{tag}",
            "throttle.lag.high": 100_000,
            "throttle.rate.min": 5_000,
            "throttle.lag.interval.seconds": 1,
        },
    )
    worker = WorkerProcess(config, tmp_path, "throttled").start()
    try:
        worker.wait_subscribed()
        (task,) = worker.task_pids()
        deadline = time.monotonic() + 30
        while not (readers := _children(task)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(readers) == 1, f"expected one lag reader process under task {task}: {readers}"
        os.kill(readers[0], signal.SIGSEGV)
        _wait_gone(readers[0])

        spec = LoadSpec(
            brokers.mqtt_host,
            brokers.mqtt_port,
            f"{root}/plants/{{plant}}/devices/{{device}}/telemetry",
            devices=20,
            messages_per_device=100,
            rate=2_000,
            payload_size=100,
        )
        assert generate(spec).acked == 2_000
        assert worker.wait_acked(2_000, timeout=60), worker.totals()
        assert worker.task_pids() == [task], "the task process was replaced"
        deadline = time.monotonic() + 30
        while "lag reader process died (signal SIGSEGV)" not in worker.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "lag reader process died (signal SIGSEGV)" in worker.log(), worker.log()
        deadline = time.monotonic() + 30
        while not (again := _children(task)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert again and again != readers, "no new lag reader was started"
        assert worker.stop() == 0, worker.log()
    finally:
        if worker.alive():
            worker.stop()

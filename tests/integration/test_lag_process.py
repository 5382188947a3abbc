"""Lag reads run in a child process, so a librdkafka crash in them (librdkafka#5040) costs lag
samples, not the ingest task, the supervisor or the replay. Proven here by crashing the child with
SIGSEGV, against the real Kafka and Mosquitto. Under ``mqtt-kafka-sync run`` that child is one
process of the supervisor, serving the metrics and every throttled task."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from loadtests.publisher import LoadSpec, generate
from mqtt_kafka_sync.devstack import free_ports
from mqtt_kafka_sync.errors import LagReadError
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.kafka.lag_process import IsolatedLagReader
from mqtt_kafka_sync.kafka.lag_topics import TopicTemplates
from tests.integration.relay_scenario import RelayScenario
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


def _lag_readers(worker: WorkerProcess) -> list[int]:
    """The supervisor's children named ``lag-reader`` (``child_process.start_child`` puts the name last
    on the command line), besides its tasks."""
    assert worker.proc is not None
    tasks = set(worker.task_pids())
    found = []
    for pid in _children(worker.proc.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.endswith(b"\0lag-reader\0") and pid not in tasks:
            found.append(pid)
    return found


def _until(found: Callable[[], list[int]], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while not (pids := found()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return pids


def _lagging_group(bootstrap: str, topic: str, group: str) -> int:
    """300 records on 3 partitions of ``topic``, ``group`` committed at 10, 20, 30: its lag."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(300):
        producer.produce(topic, value=b"x", partition=i % 3)
    assert producer.flush(30) == 0
    _commit(bootstrap, group, [TopicPartition(topic, p, 10 * (p + 1)) for p in range(3)])
    return 300 - (10 + 20 + 30)


def _commit(bootstrap: str, group: str, offsets: list[TopicPartition]) -> None:
    committer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    committer.commit(offsets=offsets, asynchronous=False)
    committer.close()


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
    expected = _lagging_group(bootstrap, topic, group)

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
        readers = _until(lambda: _lag_readers(worker))
        assert len(readers) == 1, f"expected one lag reader process under the supervisor: {readers}"
        assert _children(task) == [], "the task reads no lag itself"
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
        again = _until(lambda: _lag_readers(worker))
        assert again and again != readers, "no new lag reader was started"
        assert worker.stop() == 0, worker.log()
    finally:
        if worker.alive():
            worker.stop()


def _metrics(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value, from ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _series(port: int, name: str, **labels: str) -> list[float]:
    wanted = set(labels.items())
    return [value for (sample, found), value in _metrics(port).items() if sample == name and wanted <= found]


def _wait_series(port: int, name: str, want: Callable[[list[float]], bool], **labels: str) -> list[float]:
    deadline = time.monotonic() + 60
    while not want(found := _series(port, name, **labels)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def test_one_lag_reader_serves_the_metrics_and_every_throttle(brokers: Any, tmp_path: Path) -> None:
    """Two throttled ingest tasks and a relay under one supervisor, metrics on: one lag reader process
    reads the throttle group and the relay's group; both tasks' throttles act on the lag it reads."""
    tag = uuid.uuid4().hex[:8]
    root, topic, group = f"onelag{tag}", f"onelag-{tag}", f"onelag-down-{tag}"
    bootstrap = brokers.kafka_bootstrap
    ensure_topics(bootstrap, [topic, f"{topic}-dlq"], partitions=3)
    expected = _lagging_group(bootstrap, topic, group)
    name = f"onelag-{tag}"
    source = write_source_config(
        tmp_path / "throttled.json",
        brokers,
        name=name,
        root=root,
        topic=topic,
        **{
            "tasks.max": 2,
            "mqtt.takeover.enabled": "false",
            "throttle.lag.groups": group,
            "throttle.lag.high": expected - 40,
            "throttle.lag.low": 20,
            "throttle.rate.min": 100,
            "throttle.lag.interval.seconds": 1,
        },
    )
    relay = RelayScenario(brokers, tmp_path)
    port = free_ports(1)[0]
    worker = WorkerProcess([source, relay.config], tmp_path, "one-reader", metrics_port=port).start()
    try:
        worker.wait_subscribed()
        tasks = worker.task_pids()
        assert len(tasks) == 3
        readers = _until(lambda: _lag_readers(worker))
        time.sleep(2)  # time for a second reader to appear, if there were one
        assert _lag_readers(worker) == readers and len(readers) == 1, readers
        assert [t for t in tasks if _children(t)] == [], "a task reads lag itself"

        # The metrics: the throttle group's lag and the relay group's, from that reader.
        lags = _wait_series(port, "mqtt_kafka_sync_consumer_lag", lambda v: sum(v) == expected, group=group)
        assert sum(lags) == expected, lags
        assert _wait_series(port, "mqtt_kafka_sync_consumer_lag", bool, group=relay.name), (
            "no relay group lag"
        )
        # Every task's throttle acts on the lag it reads: above lag.high, then (all read) below lag.low.
        above = _wait_series(
            port, "mqtt_kafka_sync_throttle_lag", lambda v: v == [expected] * 2, connector=name
        )
        assert above == [expected] * 2, above
        decisions = _series(port, "mqtt_kafka_sync_throttle_decision", connector=name, action="decrease")
        assert decisions == [1.0, 1.0], decisions
        _commit(bootstrap, group, [TopicPartition(topic, p, 100) for p in range(3)])
        below = _wait_series(port, "mqtt_kafka_sync_throttle_lag", lambda v: v == [0.0, 0.0], connector=name)
        assert below == [0.0, 0.0], below
        decisions = _series(port, "mqtt_kafka_sync_throttle_decision", connector=name, action="increase")
        assert decisions == [1.0, 1.0], decisions
        assert _lag_readers(worker) == readers
        assert worker.stop() == 0, worker.log()
    finally:
        if worker.alive():
            worker.stop()

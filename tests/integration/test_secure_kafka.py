"""The bridge and its tools given only Kafka's SASL_SSL listener (SCRAM-SHA-512, the fixture's CA).

Every Kafka client a connector opens must authenticate: the producer (10,000 QoS 1 messages, none
lost, duplicated or out of order), the dead-letter producer, the supervisor's lag reader child
(``throttle.lag.groups``), the relay's consumer; and every tool: ``replay``, ``tail`` and ``lag``
with ``--command-config``, and without it a calm error instead of a traceback. MQTT is the plain
Mosquitto of ``brokers``. The test's own clients read and write through the same listener.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from mqtt_kafka_sync.devstack import free_ports
from mqtt_kafka_sync.devstack.secure import SecureEndpoints
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.kafka.settings import Kafka, reader_settings
from mqtt_kafka_sync.sim.command_devices import produce_commands
from mqtt_kafka_sync.sim.payload import device_ids
from mqtt_kafka_sync.sim.raw import publish_raw
from mqtt_kafka_sync.sim.verify import read_topic
from tests.integration.relay_scenario import RelayScenario
from tests.integration.secure_kafka import command_config, kafka_keys, sasl_connection
from tests.integration.test_ingest import PARTITIONS, Scenario
from tests.integration.topic_reads import wait_records
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


def throttle_keys(group: str) -> dict[str, str]:
    """An observing lag throttle on ``group``: the supervisor's lag reader child reads it."""
    return {
        "throttle.lag.groups": group,
        "throttle.lag.high": "10000000",
        "throttle.rate.min": "100",
        "throttle.mode": "observe",
        "throttle.lag.interval.seconds": "1",
    }


def commit_offsets(kafka: Kafka, group: str, topic: str, offset: int = 0) -> None:
    """``group`` commits ``offset`` on every partition of ``topic``: it has a lag from then on."""
    consumer = Consumer(reader_settings(kafka, "commit", {"group.id": group}))
    try:
        commits = [TopicPartition(topic, p, offset) for p in range(PARTITIONS)]
        consumer.commit(offsets=commits, asynchronous=False)
    finally:
        consumer.close()


def http_get(url: str) -> tuple[int, str]:
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own http URL
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def wait_metric(base: str, name: str, label: str, at_least: float = 0.0, timeout: float = 60.0) -> list[str]:
    """The lines of metric ``name`` that mention ``label``, once there are some and their values add
    up to ``at_least``; whatever there is at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        _, body = http_get(f"{base}/metrics")
        lines = [line for line in body.splitlines() if line.startswith(name + "{") and label in line]
        total = sum(float(line.rsplit(" ", 1)[1]) for line in lines)
        if (lines and total >= at_least) or time.monotonic() > deadline:
            return lines
        time.sleep(0.5)


def test_ingest_10000_messages_with_lag_reader_and_dead_letters_through_sasl(
    brokers: Any, secure: SecureEndpoints, tmp_path: Path
) -> None:
    kafka = sasl_connection(secure)
    group = f"downstream-{uuid.uuid4().hex[:8]}"
    keys = kafka_keys(secure, password_file=tmp_path / "kafka.password")
    assert keys["kafka.sasl.password"].startswith("${file:")
    assert keys["kafka.bootstrap.servers"] == secure.kafka_bootstrap != brokers.kafka_bootstrap
    scenario = Scenario(brokers, tmp_path, kafka, **keys, **throttle_keys(group))
    commit_offsets(kafka, group, scenario.topic)
    port = free_ports(1)[0]
    worker = WorkerProcess(scenario.config, tmp_path, metrics_port=port).start()
    try:
        _, report = scenario.publish_and_verify(worker, 100, 100, "sasl 10k")
        assert report.delivered == 10_000, report.summary()
        assert report.lost == 0 and report.duplicated == 0 and report.out_of_order == 0, report.summary()

        good_topic = f"{scenario.root}/plants/p01/devices/d0001/telemetry"
        publish_raw(brokers.mqtt_host, brokers.mqtt_port, good_topic, b"not json {", qos=1)
        (dead,) = wait_records(kafka, scenario.dlq, 1)
        assert dead.headers["dlq.reason"] == b"bad-payload" and dead.value == b"not json {"

        lag = wait_metric(f"http://127.0.0.1:{port}", "mqtt_kafka_sync_consumer_lag", f'"{group}"', 10_000)
        assert lag, f"no consumer lag of {group} on /metrics:\n{worker.log()}"
        assert sum(float(line.rsplit(" ", 1)[1]) for line in lag) >= 10_000, lag  # committed 0, read nothing
        assert worker.stop() == 0, worker.log()
        log = worker.log_file.read_text()
        assert "unreadable" not in log and "Traceback" not in log, log
    finally:
        if worker.alive():
            worker.stop()


def test_relay_consumes_500_commands_through_sasl(
    brokers: Any, secure: SecureEndpoints, tmp_path: Path
) -> None:
    scenario = RelayScenario(brokers, tmp_path, sasl_connection(secure), **kafka_keys(secure))
    devices = device_ids(50)
    fleet = scenario.fleet(devices)
    expected = scenario.produce(devices, 10)
    worker = scenario.worker().start()
    try:
        worker.wait_subscribed()
        report = fleet.wait_complete(expected, timeout=60)
        print(f"\n[sasl relay] {report.summary()}")
        assert report.lost == 0 and report.out_of_order == 0 and report.foreign == 0, report.summary()
        assert report.delivered >= 500
        assert worker.stop() == 0, worker.log()
        assert scenario.committed() == 500
    finally:
        if worker.alive():
            worker.stop()
        fleet.stop()


def tool(*args: str, cwd: Path, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mqtt_kafka_sync", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_replay_tail_and_lag_take_command_config(secure: SecureEndpoints, tmp_path: Path) -> None:
    kafka = sasl_connection(secure)
    tag = uuid.uuid4().hex[:8]
    source, target, group = f"sasl-src-{tag}", f"sasl-dst-{tag}", f"sasl-reader-{tag}"
    ensure_topics(kafka, [source], partitions=PARTITIONS)
    produce_commands(kafka, source, device_ids(30), 10)
    commit_offsets(kafka, group, source, offset=0)
    properties = command_config(secure, tmp_path / "client.properties")
    bootstrap = ["--bootstrap", secure.kafka_bootstrap]
    secured = [*bootstrap, "--command-config", str(properties)]

    replay = ["replay", "--source", source, "--target", target, "--create-target"]
    done = tool(*replay, *secured, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"replayed 300 offsets of {source} into {target}" in done.stdout, done.stdout
    copies = read_topic(kafka, target, timeout_s=30)
    assert len(copies) == 300 and all(r.headers["replay.source"].startswith(source.encode()) for r in copies)

    tail = tool("tail", target, "--from-beginning", "--max", "5", *secured, cwd=tmp_path)
    assert tail.returncode == 0, tail.stderr
    assert sum(line.startswith(f"{target}  partition ") for line in tail.stdout.splitlines()) == 5, (
        tail.stdout
    )

    lag = tool("lag", "--group", group, "--topic", source, *secured, cwd=tmp_path)
    assert lag.returncode == 0, lag.stderr
    total = next(line.split() for line in lag.stdout.splitlines() if "(total)" in line)
    assert total[:2] == [group, "(total)"] and total[2] == "300", lag.stdout

    for args in (
        ["tail", target, "--max", "1", "--idle", "5"],
        [*replay, "--checkpoint", "x.json"],
        ["lag", "--group", group],
    ):
        failed = tool(*args, *bootstrap, cwd=tmp_path)
        output = failed.stdout + failed.stderr
        print(f"\n[{args[0]} without --command-config] exit {failed.returncode}\n{output}")
        assert failed.returncode != 0, output
        assert "Traceback" not in output and len(output.splitlines()) <= 10, output
        assert any(line.startswith("error:") for line in output.splitlines()), output

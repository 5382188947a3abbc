"""Hostile input against real Kafka and Mosquitto: nothing a device or a command sends, and no topic
Kafka does not have, stops a worker. Every test counts lost messages by per-device sequence numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # imported there, not re-exported
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
)

from mqtt_kafka_sync.kafka.admin import ensure_topics, topic_message_limits
from mqtt_kafka_sync.sim.devices import DeviceSimulator
from mqtt_kafka_sync.sim.payload import device_topic
from mqtt_kafka_sync.sim.raw import publish_raw
from mqtt_kafka_sync.sim.result import SimResult
from mqtt_kafka_sync.sim.verify import read_topic, verify_topic
from tests.integration.relay_scenario import RelayScenario
from tests.integration.test_ingest import Scenario, _report
from tests.integration.test_relay import TopicSpy, _wait_totals
from tests.integration.topic_reads import wait_records

pytestmark = pytest.mark.integration


def _devices(brokers: Any, devices: int, per_device: int, **kwargs: Any) -> DeviceSimulator:
    return DeviceSimulator(brokers.mqtt_host, brokers.mqtt_port, devices, per_device, **kwargs)


def _in_background(job: Any) -> tuple[threading.Thread, list[SimResult]]:
    out: list[SimResult] = []
    thread = threading.Thread(target=lambda: out.append(job()), daemon=True)
    thread.start()
    return thread, out


def test_a_2_mb_payload_and_spoofed_headers_cost_nothing_and_the_next_messages_flow(
    brokers: Any, tmp_path: Path
) -> None:
    """The critical reproduction of issue 11: a payload above the producer's message.max.bytes killed
    the MQTT thread while every signal stayed green. Now it is dead-lettered (a truncated copy with
    its size and digest), the devices' messages around it all arrive, and the task never restarts."""
    scenario = Scenario(brokers, tmp_path)
    worker = scenario.worker().start()
    try:
        worker.wait_subscribed()
        pids = worker.task_pids()
        sim, results = _in_background(lambda: scenario.simulator(20, 100, rate=400).run())
        time.sleep(1.0)
        big = json.dumps({"pad": "x" * 2_000_000}).encode()
        topic = f"{scenario.root}/plants/p99/devices/big/telemetry"
        publish_raw(brokers.mqtt_host, brokers.mqtt_port, topic, big, qos=1, timeout_s=30)
        spoofed = f"{scenario.root}/plants/p99/devices/spoof/telemetry"
        properties = {"mqtt.topic": "elsewhere", "dlq.reason": "fake", "kafka.offset": "1", "site": "a"}
        publish_raw(
            brokers.mqtt_host, brokers.mqtt_port, spoofed, b'{"v": 1}', qos=1, user_properties=properties
        )
        sim.join(120)
        assert results and results[0].ok, results
        report = scenario.verify(results[0].per_device_last_seq)
        _report("2 MB payload", report)
        assert report.lost == 0 and report.out_of_order == 0, report.summary()

        [dead] = wait_records(brokers.kafka_bootstrap, scenario.dlq, 1)
        assert dead.headers["dlq.reason"] == b"kafka-rejected"
        assert b"too large" in dead.headers["dlq.detail"].lower()
        assert dead.headers["dlq.truncated"] == b"true"
        assert dead.headers["dlq.original.bytes"] == str(len(big)).encode()
        assert dead.headers["dlq.original.sha256"] == hashlib.sha256(big).hexdigest().encode()
        assert big.startswith(dead.value or b"") and len(dead.value or b"") < 1_000_000
        assert dead.headers["mqtt.topic"] == topic.encode()

        records = read_topic(brokers.kafka_bootstrap, scenario.topic, timeout_s=30)
        [record] = [r for r in records if r.key == b"p99.spoof"]
        assert record.headers["mqtt.topic"] == spoofed.encode()  # ours, and only ours
        assert record.headers["mqtt.user.mqtt.topic"] == b"elsewhere"
        assert record.headers["mqtt.user.dlq.reason"] == b"fake"
        assert record.headers["mqtt.user.kafka.offset"] == b"1"
        assert record.headers["site"] == b"a"
        assert "dlq.reason" not in record.headers

        assert worker.task_pids() == pids, "the task restarted"
        totals = worker.totals()
        assert totals["dead_lettered"] == 1, totals
        assert worker.stop() == 0, worker.log()
        assert "Traceback" not in worker.log()
    finally:
        if worker.alive():
            worker.stop()


def _missing_topic_scenario(
    brokers: Any, tmp_path: Path, name: str, *, retry_timeout_ms: int
) -> tuple[Scenario, str, str]:
    """A scenario with a second route, ``name``, into a Kafka topic that does not exist (and that the
    producer may not create): the scenario, the route's MQTT topic template, the missing topic."""
    tag = uuid.uuid4().hex[:8]
    template = f"t{tag}-{name}/{{plant}}/{{device}}"
    missing = f"{name}-{tag}"
    scenario = Scenario(
        brokers,
        tmp_path,
        **{
            "routes": f"telemetry,{name}",
            f"routes.{name}.mqtt.topic": template,
            f"routes.{name}.kafka.topic": missing,
            f"routes.{name}.kafka.key": "{plant}.{device}",
            f"routes.{name}.value.format": "json",
            "mqtt.topics": "",
            "kafka.producer.allow.auto.create.topics": "false",
            "kafka.producer.topic.metadata.propagation.max.ms": "1000",
            "errors.retry.timeout.ms": str(retry_timeout_ms),
        },
    )
    return scenario, template, missing


def test_records_for_a_topic_kafka_does_not_have_yet_are_held_and_delivered_in_order_once_it_exists(
    brokers: Any, tmp_path: Path
) -> None:
    scenario, template, missing = _missing_topic_scenario(brokers, tmp_path, "late", retry_timeout_ms=120_000)
    worker = scenario.worker().start()
    try:
        worker.wait_subscribed()
        held = _devices(brokers, 10, 50, rate=500, topic_template=template)
        held_thread, held_results = _in_background(held.run)
        flowing = scenario.simulator(10, 50, rate=500).run()  # the other route is not held up
        assert flowing.ok, flowing.summary()
        time.sleep(4.0)  # librdkafka has called the topic unknown: the records are held
        assert read_topic(brokers.kafka_bootstrap, scenario.dlq, timeout_s=5) == []
        ensure_topics(brokers.kafka_bootstrap, [missing], partitions=6)
        held_thread.join(120)
        assert held_results and held_results[0].ok, held_results
        report = verify_topic(
            brokers.kafka_bootstrap,
            missing,
            held_results[0].per_device_last_seq,
            timeout_s=120,
            idle_s=15,
            topic_template=template,
        )
        _report("topic created late", report)
        assert report.lost == 0 and report.out_of_order == 0, report.summary()
        other = scenario.verify(flowing.per_device_last_seq)
        assert other.lost == 0, other.summary()
        assert read_topic(brokers.kafka_bootstrap, scenario.dlq, timeout_s=5) == []
        assert "unknown to the producer" in worker.log()
        assert worker.stop() == 0, worker.log()
    finally:
        if worker.alive():
            worker.stop()


def test_records_for_a_topic_that_never_appears_are_dead_lettered_after_the_retry_timeout(
    brokers: Any, tmp_path: Path
) -> None:
    scenario, template, _ = _missing_topic_scenario(brokers, tmp_path, "never", retry_timeout_ms=3_000)
    worker = scenario.worker().start()
    try:
        worker.wait_subscribed()
        result = _devices(brokers, 10, 30, rate=300, topic_template=template).run()
        assert result.ok, result.summary()
        report = verify_topic(
            brokers.kafka_bootstrap,
            scenario.dlq,
            result.per_device_last_seq,
            timeout_s=120,
            idle_s=15,
            topic_template=template,
        )
        _report("topic never created", report)
        assert report.lost == 0, report.summary()
        reasons = {
            r.headers["dlq.reason"] for r in read_topic(brokers.kafka_bootstrap, scenario.dlq, timeout_s=10)
        }
        assert reasons == {b"kafka-topic-missing"}
        assert worker.stop() == 0, worker.log()
    finally:
        if worker.alive():
            worker.stop()


def test_a_600_kb_key_and_a_byte_order_mark_are_dead_lettered_and_later_commands_go_out(
    brokers: Any, tmp_path: Path
) -> None:
    """The relay crash loop of issue 11: the dead-letter copy of a 600 KB key repeated the key in
    dlq.detail and exceeded 1 MB; the relay exited, restarted and read the same record every ~45 s."""
    scenario = RelayScenario(brokers, tmp_path)
    spy = TopicSpy(brokers, f"{scenario.root}/#")
    worker = scenario.worker().start()
    try:
        worker.wait_subscribed()
        pids = worker.task_pids()
        producer = Producer({"bootstrap.servers": brokers.kafka_bootstrap, "message.max.bytes": "2000000"})
        producer.produce(scenario.topic, b'{"cmd": "x"}', b"p01." + b"k" * 600_000, partition=0)
        producer.produce(scenario.topic, b'{"cmd": "x"}', "p01.d\ufeff1".encode(), partition=0)
        producer.produce(scenario.topic, b'{"cmd": "ok"}', b"p01.d0001", partition=0)
        assert producer.flush(30) == 0
        dead = wait_records(brokers.kafka_bootstrap, scenario.dlq, 2)
        by_size = sorted(dead, key=lambda r: len(r.key or b""))
        assert [r.headers["dlq.reason"] for r in by_size] == [b"unsafe-placeholder", b"unsafe-placeholder"]
        assert b"U+FEFF" in by_size[0].headers["dlq.detail"]
        assert len(by_size[1].headers["dlq.detail"]) < 400 and by_size[1].key == b"p01." + b"k" * 600_000
        _wait_totals(worker, lambda t: t.get("acked") == 3, "3 offsets stored")
        deadline = time.monotonic() + 30
        while not spy.topics and time.monotonic() < deadline:
            time.sleep(0.2)
        assert spy.topics == [device_topic("p01.d0001", scenario.template)]
        assert worker.task_pids() == pids, "the relay restarted"
        assert worker.stop() == 0, worker.log()
    finally:
        if worker.alive():
            worker.stop()
        spy.close()


def _topic_limit(bootstrap: str, topic: str, max_bytes: int) -> None:
    """Set the topic's own ``max.message.bytes`` (the broker refuses larger record batches)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("max.message.bytes", str(max_bytes), incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)
    deadline = time.monotonic() + 30
    while topic_message_limits({"bootstrap.servers": bootstrap}, [topic]).get(topic) != max_bytes:
        assert time.monotonic() < deadline, f"max.message.bytes of {topic} not {max_bytes} after 30 s"
        time.sleep(0.2)


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_payload_sizes_around_the_topic_and_dead_letter_topic_limits(
    brokers: Any, tmp_path: Path, compression: str
) -> None:
    """The topics' own limits, below the producer's: the topic takes 50,000 bytes, its dead-letter
    topic 20,000. The task reads both at start, so a record above the first is dead-lettered before
    it is produced (batched with others, Kafka would refuse the whole batch: a first version of this
    test lost 8 of the devices' 500 messages that way, then duplicated 4,399 through reconnects), as
    a copy cut to fit the second. Every device message arrives once, in order."""
    scenario = Scenario(brokers, tmp_path, **{"kafka.producer.compression.type": compression})
    _topic_limit(brokers.kafka_bootstrap, scenario.topic, 50_000)
    _topic_limit(brokers.kafka_bootstrap, scenario.dlq, 20_000)
    worker = scenario.worker().start()
    sizes = [1_000, 19_000, 45_000, 52_000, 200_000, 900_000]
    try:
        worker.wait_subscribed()
        sim, results = _in_background(lambda: scenario.simulator(10, 50, rate=250).run())
        payloads = {size: os.urandom(size // 2).hex().encode()[:size] for size in sizes}  # incompressible
        for size, payload in payloads.items():
            topic = f"{scenario.root}/plants/p99/devices/s{size}/telemetry"
            publish_raw(
                brokers.mqtt_host, brokers.mqtt_port, topic, json.dumps({"p": payload.decode()}).encode()
            )
        sim.join(120)
        assert results and results[0].ok, results
        report = scenario.verify(results[0].per_device_last_seq)
        _report(f"topic limits, {compression}", report)
        assert report.lost == 0 and report.duplicated == 0 and report.out_of_order == 0, report.summary()
        delivered = {r.key for r in read_topic(brokers.kafka_bootstrap, scenario.topic, timeout_s=30)}
        dead = {r.key: r for r in wait_records(brokers.kafka_bootstrap, scenario.dlq, 3)}
        for size in sizes:
            key = f"p99.s{size}".encode()
            if size <= 45_000:
                assert key in delivered, f"{size} bytes not delivered"
                continue
            mqtt_topic = f"{scenario.root}/plants/p99/devices/s{size}/telemetry".encode()
            record = dead[mqtt_topic]  # a dead letter's key is its MQTT topic
            assert record.headers["dlq.reason"] == b"kafka-rejected"
            assert b"max.message.bytes 50000" in record.headers["dlq.detail"]
            assert int(record.headers["dlq.original.bytes"]) >= size
            assert record.headers["dlq.truncated"] == b"true"
            assert 10_000 < len(record.value or b"") < 20_000  # cut to what the dead-letter topic takes
        assert worker.totals()["dead_lettered"] == 3
        assert worker.stop() == 0, worker.log()
    finally:
        if worker.alive():
            worker.stop()

"""MQTT -> Kafka ingest, end to end against real Kafka and real Mosquitto.

Every test runs the real ``mqtt-kafka-sync run`` command, publishes with simulated devices that
number their messages per device, reads the Kafka topic back, and counts lost, duplicated and
out-of-order messages per device. Duplicates are allowed (at-least-once) and reported; losses never.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.kafka.settings import Kafka
from mqtt_kafka_sync.sim.devices import DeviceSimulator
from mqtt_kafka_sync.sim.raw import publish_raw
from mqtt_kafka_sync.sim.result import SimResult
from mqtt_kafka_sync.sim.verify import VerifyReport, read_topic, verify_topic
from tests.integration.topic_reads import wait_records
from tests.integration.worker_process import WorkerProcess, write_source_config
from tests.murmur2 import java_partition

pytestmark = pytest.mark.integration

PARTITIONS = 6


class Scenario:
    """One isolated pipeline: its own MQTT topic root, Kafka topics, shared group and client ids."""

    def __init__(self, brokers: Any, tmp_path: Path, kafka: Kafka | None = None, /, **config: Any) -> None:
        """``config``: connector keys over :func:`write_source_config`'s; ``kafka``: how the test itself
        reaches Kafka (topic set-up, reading back) when the bridge is given another listener."""
        tag = uuid.uuid4().hex[:8]
        self.brokers = brokers
        self.kafka: Kafka = kafka or brokers.kafka_bootstrap
        self.tmp_path = tmp_path
        self.root = f"t{tag}"
        self.topic = f"telemetry-{tag}"
        self.dlq = f"{self.topic}-dlq"
        self.name = f"ingest-{tag}"
        self.template = f"{self.root}/plants/{{plant}}/devices/{{device}}/telemetry"
        ensure_topics(self.kafka, [self.topic, self.dlq], partitions=PARTITIONS)
        self.config = write_source_config(
            tmp_path / f"{self.name}.json",
            brokers,
            name=self.name,
            root=self.root,
            topic=self.topic,
            **config,
        )

    def worker(self, label: str = "worker", **config: Any) -> WorkerProcess:
        path = self.config
        if config:
            path = write_source_config(
                self.tmp_path / f"{label}.json",
                self.brokers,
                name=self.name,
                root=self.root,
                topic=self.topic,
                **config,
            )
        return WorkerProcess(path, self.tmp_path, label)

    def simulator(self, devices: int, per_device: int, **kwargs: Any) -> DeviceSimulator:
        return DeviceSimulator(
            self.brokers.mqtt_host,
            self.brokers.mqtt_port,
            devices,
            per_device,
            topic_template=self.template,
            **kwargs,
        )

    def publish_and_verify(
        self, worker: WorkerProcess, devices: int, per_device: int, label: str, **kwargs: Any
    ) -> tuple[SimResult, VerifyReport]:
        """Once ``worker`` subscribed, ``devices`` publish ``per_device`` each; then what reached Kafka."""
        worker.wait_subscribed()
        result = self.simulator(devices, per_device, **kwargs).run()
        assert result.ok, result.summary()
        report = self.verify(result.per_device_last_seq)
        print(f"\n[{label}] {report.summary()}")
        return result, report

    def verify(self, expected: dict[str, int], timeout_s: float = 120.0) -> VerifyReport:
        return verify_topic(
            self.kafka,
            self.topic,
            expected,
            timeout_s=timeout_s,
            idle_s=15.0,
            topic_template=self.template,
        )


def _report(label: str, report: VerifyReport) -> None:
    print(f"\n[{label}] {report.summary()}")


def test_20000_messages_from_200_devices_arrive_in_order_with_keys_headers_and_java_partitions(
    brokers: Any, tmp_path: Path
) -> None:
    scenario = Scenario(brokers, tmp_path)
    worker = scenario.worker().start()
    try:
        result, report = scenario.publish_and_verify(
            worker, 200, 100, "20k", user_properties={"site": "plant-a"}
        )
        assert result.acked == 20_000
        assert report.lost == 0 and report.out_of_order == 0, report.summary()
        assert report.key_errors == 0 and report.header_errors == 0 and report.partition_splits == 0
        assert report.delivered >= 20_000
        records = read_topic(brokers.kafka_bootstrap, scenario.topic, timeout_s=60)
        wrong = [r for r in records if r.partition != java_partition(r.key or b"", PARTITIONS)]
        assert not wrong, f"{len(wrong)} records not in the partition Java's murmur2 picks, e.g. {wrong[0]}"
        first = records[0]
        assert first.headers["mqtt.qos"] == b"1" and first.headers["mqtt.retain"] == b"false"
        assert first.headers["site"] == b"plant-a"  # MQTT 5 user property -> Kafka header
        assert first.value is not None and first.key is not None
        assert json.loads(first.value)["device"] == first.key.decode()
        assert worker.stop() == 0, worker.log()
        assert read_topic(brokers.kafka_bootstrap, scenario.dlq, timeout_s=10) == []
    finally:
        if worker.alive():
            worker.stop()


def test_qos2_messages_arrive_exactly_where_mapped(brokers: Any, tmp_path: Path) -> None:
    scenario = Scenario(brokers, tmp_path, **{"mqtt.qos": 2})
    worker = scenario.worker().start()
    try:
        _, report = scenario.publish_and_verify(worker, 20, 100, "qos2", qos=2)
        assert report.ok, report.summary()
    finally:
        worker.stop()


def kill_9_then_restart(scenario: Scenario, devices: int, per_device: int, kill_after: int) -> VerifyReport:
    """Devices publish at 4,000/s; the worker is killed with kill -9 once ``kill_after`` messages
    are acknowledged and started again a second later; the topic read back, per device."""
    worker = scenario.worker().start()
    worker.wait_subscribed()
    simulator = scenario.simulator(devices, per_device, rate=4000)
    simulator.start()
    try:
        assert worker.wait_acked(kill_after, timeout=60), worker.log()
        worker.kill9()
        time.sleep(1.0)  # messages keep arriving at the broker meanwhile
        worker = scenario.worker("restarted").start()
        result = simulator.wait(120)
        assert result is not None and result.ok, result
        return scenario.verify(result.per_device_last_seq)
    finally:
        if simulator.running:
            simulator.stop()
        worker.stop()


def test_kill_9_mid_run_then_restart_loses_nothing(brokers: Any, tmp_path: Path) -> None:
    report = kill_9_then_restart(Scenario(brokers, tmp_path), 200, 100, kill_after=4000)
    _report("kill -9", report)
    assert report.lost == 0, report.summary()
    assert report.key_errors == 0 and report.header_errors == 0 and report.partition_splits == 0
    assert report.out_of_order == 0, report.summary()


def test_a_backlog_queued_for_a_stopped_worker_survives_a_mosquitto_restart(
    brokers: Any, tmp_path: Path
) -> None:
    """Mosquitto saves sessions on SIGTERM, but 2.0.11 only writes those whose CONNECT had Clean
    Start 0 (docs/delivery-guarantees.md): the worker always connects so, and what its session
    held comes back with it. (What devices publish after the restart, before the worker has
    subscribed again, is not kept: Mosquitto does not restore shared subscriptions; see the same
    page.)"""
    if not brokers.controllable:
        pytest.skip("brokers given by environment variables cannot be restarted by the test")
    scenario = Scenario(brokers, tmp_path)
    worker = scenario.worker().start()
    worker.wait_subscribed()
    assert worker.stop() == 0, worker.log()  # the session stays, and queues what is published now
    result = scenario.simulator(100, 50, rate=2000).run()
    assert result.ok, result
    brokers.stop_mqtt()
    brokers.start_mqtt()
    worker = scenario.worker("after-restart").start()
    try:
        report = scenario.verify(result.per_device_last_seq)
        _report("mosquitto restart", report)
        assert report.lost == 0, report.summary()
        assert report.out_of_order == 0, report.summary()
    finally:
        worker.stop()


def test_kafka_down_for_20_seconds_loses_nothing_and_worker_memory_stays_bounded(
    brokers: Any, tmp_path: Path
) -> None:
    if not brokers.controllable:
        pytest.skip("brokers given by environment variables cannot be stopped by the test")
    # A keepalive far shorter than the outage: the worker stops reading once its window is full,
    # and must not take the missing PINGRESP for a dead broker (a reconnect would make Mosquitto
    # send the whole window again: duplicates).
    scenario = Scenario(brokers, tmp_path, **{"mqtt.keepalive.interval.seconds": 5})
    worker = scenario.worker().start()
    worker.wait_subscribed()
    simulator = scenario.simulator(200, 100, rate=1000)
    simulator.start()
    try:
        assert worker.wait_acked(2000, timeout=60), worker.log()
        brokers.stop_kafka()
        rss: list[int] = []
        outage_start = time.monotonic()
        while time.monotonic() - outage_start < 20:
            rss.append(worker.rss_bytes())
            assert worker.alive(), worker.log()
            time.sleep(1.0)
        acked_during_outage = worker.totals()["acked"]
        brokers.start_kafka()
        result = simulator.wait(180)
        assert result is not None and result.ok, result
        report = scenario.verify(result.per_device_last_seq, timeout_s=180)
        _report("kafka outage", report)
        print(
            f"[kafka outage] worker RSS during outage: min {min(rss) >> 20} MiB, max {max(rss) >> 20} MiB; "
            f"acked before restart {acked_during_outage}"
        )
        assert report.lost == 0, report.summary()
        assert report.out_of_order == 0, report.summary()
        assert report.duplicated == 0, report.summary()
        assert "no PINGRESP" not in worker.log(), worker.log()
        assert worker.alive(), "the worker exited during the Kafka outage"
        assert max(rss) < 400 * 2**20, f"worker RSS grew to {max(rss) >> 20} MiB during the outage"
        assert max(rss) - min(rss) < 64 * 2**20, f"worker RSS grew by {(max(rss) - min(rss)) >> 20} MiB"
    finally:
        if simulator.running:
            simulator.stop()
        worker.stop()


def test_two_workers_share_the_load_and_the_survivor_takes_over_a_killed_one(
    brokers: Any, tmp_path: Path
) -> None:
    scenario = Scenario(brokers, tmp_path)
    worker_a = scenario.worker("a", **{"mqtt.client.id": f"{scenario.name}-a"}).start()
    worker_b = scenario.worker("b", **{"mqtt.client.id": f"{scenario.name}-b"}).start()
    worker_a.wait_subscribed()
    worker_b.wait_subscribed()
    simulator = scenario.simulator(200, 100, rate=2000)
    simulator.start()
    try:
        assert worker_a.wait_acked(2000, timeout=60), worker_a.log()
        assert worker_b.wait_acked(2000, timeout=60), worker_b.log()
        a_before = worker_a.totals()["received"]
        worker_a.kill9()
        result = simulator.wait(180)
        assert result is not None and result.ok, result
        report = scenario.verify(result.per_device_last_seq, timeout_s=180)
        _report("two workers", report)
        b_total = worker_b.totals()["received"]
        print(f"[two workers] a received {a_before} before kill -9; b received {b_total}")
        assert report.lost == 0, report.summary()
        assert report.key_errors == 0 and report.partition_splits == 0
        assert a_before > 0 and b_total > 0
        assert "adopted session" in worker_b.log(), worker_b.log()
    finally:
        if simulator.running:
            simulator.stop()
        worker_b.stop()


def test_unroutable_topics_and_bad_payloads_go_to_the_dead_letter_topic(brokers: Any, tmp_path: Path) -> None:
    scenario = Scenario(brokers, tmp_path)
    worker = scenario.worker().start()
    try:
        worker.wait_subscribed()
        host, port = brokers.mqtt_host, brokers.mqtt_port
        good_topic = f"{scenario.root}/plants/p01/devices/d0001/telemetry"
        publish_raw(host, port, f"{scenario.root}/plants/p01/other", b'{"x": 1}', qos=1)
        publish_raw(host, port, good_topic, b"not json {", qos=1)
        publish_raw(
            host, port, good_topic, b'{"device": "p01.d0001", "seq": 1, "ts": 0, "value": 1.5}', qos=1
        )
        dead = wait_records(brokers.kafka_bootstrap, scenario.dlq, 2)
        reasons = Counter(r.headers["dlq.reason"].decode() for r in dead)
        assert reasons == {"no-route": 1, "bad-payload": 1}
        by_reason = {r.headers["dlq.reason"].decode(): r for r in dead}
        assert by_reason["no-route"].headers["mqtt.topic"] == f"{scenario.root}/plants/p01/other".encode()
        assert by_reason["no-route"].value == b'{"x": 1}'
        bad = by_reason["bad-payload"]
        assert bad.value == b"not json {" and bad.headers["mqtt.topic"] == good_topic.encode()
        assert b"JSON" in bad.headers["dlq.detail"] and bad.headers["dlq.connector"] == scenario.name.encode()
        good = wait_records(brokers.kafka_bootstrap, scenario.topic, 1)
        assert good[0].value is not None
        assert json.loads(good[0].value) == {"device": "p01.d0001", "seq": 1, "ts": 0, "value": 1.5}
        assert worker.alive()
    finally:
        worker.stop()

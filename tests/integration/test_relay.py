"""Kafka -> MQTT command relay, end to end against real Kafka and real Mosquitto.

Every test runs the real ``mqtt-kafka-sync run`` command with a relay connector, writes numbered
commands to Kafka (key = device id, payload with a per-device seq), and has one MQTT client per
device subscribed to exactly its own command topic. Per device it counts lost, duplicated,
out-of-order and foreign (another device's) commands. Duplicates are allowed (at least once) and
reported; losses, reordering and misdelivery never.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.kafka.producer import Headers
from mqtt_kafka_sync.sim.command_devices import CommandDevice, CommandReport
from mqtt_kafka_sync.sim.payload import device_ids, device_topic
from mqtt_kafka_sync.sim.verify import read_topic
from tests.integration.relay_scenario import PARTITIONS, RelayScenario
from tests.integration.topic_reads import wait_records
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


class TopicSpy:
    """Subscribed to ``filter``: every non-retained message that arrives, by topic."""

    def __init__(self, brokers: Any, topic_filter: str = "#") -> None:
        self.topics: list[str] = []
        self._ready = threading.Event()
        self._client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"spy-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message
        self._client.connect(brokers.mqtt_host, brokers.mqtt_port)
        self._client.loop_start()
        assert self._ready.wait(10), "spy did not subscribe"

    def _on_message(self, client: Client, userdata: object, message: MQTTMessage) -> None:
        if not message.retain:
            self.topics.append(message.topic)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._client.reinitialise()


def _report(label: str, report: CommandReport) -> None:
    print(f"\n[{label}] {report.summary()}")


def _wait_totals(worker: WorkerProcess, condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition(worker.totals()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {worker.totals()}\n{worker.log()}"
        time.sleep(0.2)


def test_10000_commands_for_100_devices_arrive_in_order_each_at_its_own_device(
    brokers: Any, tmp_path: Path
) -> None:
    scenario = RelayScenario(brokers, tmp_path)
    devices = device_ids(100)
    fleet = scenario.fleet(devices)
    expected = scenario.produce(devices, 100, headers={"site": "plant-a", "issued-by": "test"})
    worker = scenario.worker().start()
    try:
        worker.wait_subscribed()
        report = fleet.wait_complete(expected, timeout=90)
        _report("10k", report)
        assert report.lost == 0 and report.out_of_order == 0 and report.foreign == 0, report.summary()
        assert report.delivered == 10_000
        sample = fleet.devices["p01.d0042"].snapshot()[0]
        assert sample.topic == device_topic("p01.d0042", scenario.template)
        assert sample.user_properties == {"site": "plant-a", "issued-by": "test"}  # Kafka headers
        assert sample.response_topic == sample.topic + "/response"
        assert sample.correlation_data is not None
        assert re.fullmatch(rf"{scenario.topic}/[0-5]/\d+", sample.correlation_data.decode())
        assert sample.qos == 1 and sample.expiry is None
        assert worker.stop() == 0, worker.log()
        totals = worker.totals()
        assert totals["received"] == totals["produced"] == totals["acked"] == 10_000, totals
        assert scenario.committed() == 10_000  # every offset committed at the clean stop
        assert read_topic(brokers.kafka_bootstrap, scenario.dlq, timeout_s=5) == []
    finally:
        if worker.alive():
            worker.stop()
        fleet.stop()


def test_qos2_commands_arrive_once_each_in_order(brokers: Any, tmp_path: Path) -> None:
    scenario = RelayScenario(brokers, tmp_path, **{"routes.cmd.mqtt.qos": 2})
    devices = device_ids(20)
    fleet = scenario.fleet(devices)
    expected = scenario.produce(devices, 100)
    worker = scenario.worker().start()
    try:
        report = fleet.wait_complete(expected, timeout=60)
        _report("qos2", report)
        assert report.ok and report.duplicated == 0, report.summary()
        assert {r.qos for d in fleet.devices.values() for r in d.snapshot()} == {2}
    finally:
        worker.stop()
        fleet.stop()


def relay_kill_9_then_restart(
    scenario: RelayScenario, devices: int, per_device: int, kill_after: int
) -> tuple[CommandReport, dict[str, int]]:
    """Commands produced at 2,000/s; the relay is killed with kill -9 once ``kill_after`` offsets
    are stored and started again a second later. The fleet's report, and the relay's totals before
    the kill."""
    ids = device_ids(devices)
    fleet = scenario.fleet(ids)
    producer = scenario.produce_in_background(ids, per_device, rate=2000)
    worker = scenario.worker().start()
    try:
        assert worker.wait_acked(kill_after, timeout=60), worker.log()
        before = worker.totals()
        worker.kill9()
        time.sleep(1.0)  # commands keep arriving in Kafka meanwhile
        worker = scenario.worker("relay-restarted").start()
        expected = producer.wait(60)
        return fleet.wait_complete(expected, timeout=90), before
    finally:
        worker.stop()
        fleet.stop()


def test_kill_9_mid_stream_then_restart_loses_no_command(brokers: Any, tmp_path: Path) -> None:
    report, before = relay_kill_9_then_restart(RelayScenario(brokers, tmp_path), 100, 100, kill_after=3000)
    _report("kill -9", report)
    print(f"[kill -9] before the kill: {before}")
    assert report.lost == 0 and report.out_of_order == 0 and report.foreign == 0, report.summary()


def test_mqtt_broker_down_for_20_seconds_pauses_without_leaving_the_group_and_loses_nothing(
    brokers: Any, tmp_path: Path
) -> None:
    if not brokers.controllable:
        pytest.skip("brokers given by environment variables cannot be stopped by the test")
    scenario = RelayScenario(brokers, tmp_path)
    devices = device_ids(100)
    fleet = scenario.fleet(devices)
    producer = scenario.produce_in_background(devices, 100, rate=400)
    worker = scenario.worker().start()
    try:
        assert worker.wait_acked(800, timeout=60), worker.log()
        members_before = scenario.members()
        assert len(members_before) == 1, members_before
        brokers.stop_mqtt()
        try:
            outage_start = time.monotonic()
            time.sleep(15)
            members_during = scenario.members()
            acked_during = worker.totals()["acked"]
            time.sleep(max(0.0, 20 - (time.monotonic() - outage_start)))
            acked_after = worker.totals()["acked"]
        finally:
            brokers.start_mqtt()
        assert acked_after == acked_during, "offsets stored while the broker was down"
        expected = producer.wait(60)
        report = fleet.wait_complete(expected, timeout=120)
        members_after = scenario.members()
        _report("mqtt outage", report)
        print(
            f"[mqtt outage] group members before {members_before}, "
            f"during {members_during}, after {members_after}"
        )
        assert report.lost == 0 and report.out_of_order == 0 and report.foreign == 0, report.summary()
        assert members_before == members_during == members_after, "the relay left or rejoined its group"
        log = worker.log()
        assert "MQTT broker unavailable" in log and "reachable again" in log, log
        assert "revoked" not in log and "without a rebalance" not in log, log
        assert worker.alive()
    finally:
        worker.stop()
        fleet.stop()


def test_two_relays_share_the_partitions_and_the_survivor_takes_over_a_killed_one(
    brokers: Any, tmp_path: Path
) -> None:
    scenario = RelayScenario(brokers, tmp_path)
    devices = device_ids(100)
    fleet = scenario.fleet(devices)
    # Both from the same file: each task's MQTT client id gets a random suffix.
    worker_a = scenario.worker("a").start()
    worker_b = scenario.worker("b").start()
    producer = scenario.produce_in_background(devices, 100, rate=1500)
    try:
        deadline = time.monotonic() + 60
        while [n for _, n in scenario.members()] != [3, 3]:
            assert time.monotonic() < deadline, f"partitions not shared: {scenario.members()}"
            time.sleep(0.5)
        assert worker_a.wait_acked(500, timeout=60), worker_a.log()
        assert worker_b.wait_acked(500, timeout=60), worker_b.log()
        a_before = worker_a.totals()
        worker_a.kill9()
        deadline = time.monotonic() + 60
        while [n for _, n in scenario.members()] != [PARTITIONS]:
            assert time.monotonic() < deadline, f"survivor did not take over: {scenario.members()}"
            time.sleep(0.5)
        expected = producer.wait(60)
        report = fleet.wait_complete(expected, timeout=90)
        _report("two relays", report)
        print(f"[two relays] a before kill -9: {a_before}; b: {worker_b.totals()}")
        assert report.lost == 0 and report.out_of_order == 0 and report.foreign == 0, report.summary()
        assert a_before["produced"] > 0 and worker_b.totals()["produced"] > 0
    finally:
        for worker in (worker_a, worker_b):
            if worker.alive():
                worker.stop()
        fleet.stop()


def test_injection_attempts_go_to_the_dead_letter_topic_and_nothing_is_published_for_them(
    brokers: Any, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    targeted = f"targeted-{tag}-a"
    ensure_topics(brokers.kafka_bootstrap, [targeted], partitions=1)
    scenario = RelayScenario(
        brokers,
        tmp_path,
        **{
            "routes": "cmd,targeted",
            "routes.targeted.kafka.topic": f"^targeted-{tag}-.*",
            "routes.targeted.kafka.key": "{plant}",
            "routes.targeted.mqtt.topic": "targets/{plant}/{header.device}/commands",
        },
    )
    spy = TopicSpy(brokers)
    worker = scenario.worker().start()
    try:
        worker.wait_subscribed()
        producer = Producer({"bootstrap.servers": brokers.kafka_bootstrap})
        bad_keys: list[bytes | None] = [
            b"p01.#",
            b"p01.+",
            b"p01.d1/../x",
            b"#.d0001",
            b"p01.",
            b"",
            None,
            b"p01.d1\x00x",
            b"p01.\xff",
        ]
        for key in bad_keys:
            producer.produce(scenario.topic, b'{"cmd": "stop"}', key)
        bad_headers: list[Headers] = [[("device", b"+")], [("device", b"a/b")], [("device", b"")], []]
        for header in bad_headers:
            producer.produce(targeted, b'{"cmd": "stop"}', b"p01", headers=header)
        producer.produce(targeted, b'{"cmd": "ok"}', b"p+", headers=[("device", b"d1")])
        good: list[tuple[bytes, str, Headers]] = [
            (b"p01.d0001", scenario.topic, []),
            (b"p02", targeted, [("device", b"d0002")]),
        ]
        for good_key, topic, headers in good:
            producer.produce(topic, b'{"cmd": "ok"}', good_key, headers=headers)
        assert producer.flush(30) == 0
        expected_bad = len(bad_keys) + 5
        dead = wait_records(brokers.kafka_bootstrap, scenario.dlq, expected_bad)
        deadline = time.monotonic() + 30
        while len(spy.topics) < len(good) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # anything published late would show up now
        reasons = Counter(r.headers["dlq.reason"].decode() for r in dead)
        print(f"\n[injection] dead-lettered {dict(reasons)}; published to {spy.topics}")
        assert reasons == {"unsafe-placeholder": 10, "bad-key": 3, "missing-header": 1}, reasons
        assert sorted(spy.topics) == sorted(
            [device_topic("p01.d0001", scenario.template), "targets/p02/d0002/commands"]
        ), spy.topics
        sample = next(r for r in dead if r.key == b"p01.#")
        assert sample.value == b'{"cmd": "stop"}' and b"'#'" in sample.headers["dlq.detail"]
        assert sample.headers["kafka.topic"] == scenario.topic.encode()
        assert sample.headers["dlq.connector"] == scenario.name.encode()
        done = expected_bad + len(good)
        _wait_totals(worker, lambda t: t.get("acked") == done, f"{done} offsets stored")  # past the bad ones
        assert worker.totals()["dead_lettered"] == expected_bad and worker.totals()["produced"] == len(good)
    finally:
        worker.stop()
        spy.close()


def test_expired_commands_are_not_delivered_to_a_device_that_reconnects_later(
    brokers: Any, tmp_path: Path
) -> None:
    scenario = RelayScenario(brokers, tmp_path, **{"routes.cmd.mqtt.message.expiry.seconds": 3})
    device_id = "p01.d0001"
    device = CommandDevice(brokers.mqtt_host, brokers.mqtt_port, device_topic(device_id, scenario.template))
    device.start()
    assert device.wait_subscribed(10)
    device.stop(keep_session=True)  # offline: the broker queues its commands, with their expiry
    worker = scenario.worker().start()
    try:
        worker.wait_subscribed()
        scenario.produce([device_id], 5)  # seq 1-5, published while the device is away
        assert worker.wait_acked(5, timeout=30), worker.log()
        time.sleep(4)  # longer than their expiry
        stale_ms = int(time.time() * 1000) - 10_000
        scenario.produce([device_id], 5, first_seq=6, timestamp_ms=stale_ms)  # already expired in Kafka
        device.start(clean=False)
        assert device.wait_subscribed(10)
        scenario.produce([device_id], 5, first_seq=11)  # fresh, device online
        dead = wait_records(brokers.kafka_bootstrap, scenario.dlq, 5)
        deadline = time.monotonic() + 30
        while len(device.snapshot()) < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        received = device.snapshot()
        print(f"\n[expiry] device received seqs {[r.seq for r in received]}; dead-lettered {len(dead)}")
        assert [r.seq for r in received] == [11, 12, 13, 14, 15]
        assert all(r.expiry is not None and 1 <= r.expiry <= 3 for r in received)
        assert {r.headers["dlq.reason"] for r in dead} == {b"expired"}
        _wait_totals(worker, lambda t: t.get("acked") == 15, "15 offsets stored")
        assert worker.totals()["produced"] == 10 and worker.totals()["dead_lettered"] == 5
    finally:
        worker.stop()
        device.stop(keep_session=False)

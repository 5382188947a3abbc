"""The device simulator against a real Mosquitto: every (device, seq) reaches a subscriber, each
device in order, through broker acks, paced rates, stops mid-run, takeovers and broker restarts."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from paho.mqtt.client import Client, MQTTMessage, MQTTMessageInfo
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from mqtt_kafka_sync.errors import MqttConnectError
from mqtt_kafka_sync.sim.device_client import DeviceClient
from mqtt_kafka_sync.sim.devices import DeviceSimulator
from mqtt_kafka_sync.sim.payload import device_topic, parse_payload
from mqtt_kafka_sync.sim.raw import publish_raw
from mqtt_kafka_sync.sim.result import SimResult
from tests.integration.mqtt_subscriber import RecordingSubscriber, properties

pytestmark = pytest.mark.integration


class Subscriber(RecordingSubscriber[MQTTMessage]):
    """Every message on ``<root>/#`` (see :class:`RecordingSubscriber`), read back per device."""

    def __init__(self, brokers: Any, root: str) -> None:
        super().__init__(brokers, f"{root}/#", convert=lambda message: message)
        self.root = root

    def wait_for(self, count: int, timeout: float = 60.0) -> list[MQTTMessage]:
        return self.wait(count, timeout, idle=0.2)  # a few more would be duplicates: let them show

    def seqs_by_device(self, count: int, timeout: float = 60.0) -> dict[str, list[int]]:
        seqs: dict[str, list[int]] = {}
        for msg in self.wait_for(count, timeout):
            device, seq, _ = parse_payload(msg.payload)
            assert msg.topic == device_topic(
                device, f"{self.root}/plants/{{plant}}/devices/{{device}}/telemetry"
            )
            seqs.setdefault(device, []).append(seq)
        return seqs


@pytest.fixture
def root() -> str:
    return f"sim{uuid.uuid4().hex[:8]}"


@pytest.fixture
def subscriber(brokers: Any, root: str) -> Iterator[Subscriber]:
    sub = Subscriber(brokers, root)
    yield sub
    sub.close()


def simulator(brokers: Any, root: str, devices_: int, messages: int, **kwargs: Any) -> DeviceSimulator:
    return DeviceSimulator(
        brokers.mqtt_host,
        brokers.mqtt_port,
        devices_,
        messages,
        topic_template=f"{root}/plants/{{plant}}/devices/{{device}}/telemetry",
        **kwargs,
    )


def first_occurrences(seqs: list[int]) -> list[int]:
    """``seqs`` without repeats: the order a consumer that drops duplicates would see."""
    return list(dict.fromkeys(seqs))


def assert_complete(result: SimResult, devices_: int, messages: int) -> None:
    assert result.ok, (result.summary(), result.errors)
    assert result.sent == result.acked == devices_ * messages
    assert result.per_device_last_seq == result.per_device_acked_seq
    assert set(result.per_device_last_seq.values()) == {messages}
    assert len(result.per_device_last_seq) == devices_


def test_every_message_arrives_once_per_device_in_order(
    brokers: Any, root: str, subscriber: Subscriber, record_property: Any
) -> None:
    sim = simulator(brokers, root, 50, 100, user_properties={"site": "plant-a"})
    result = sim.run()
    assert_complete(result, 50, 100)
    seqs = subscriber.seqs_by_device(5000)
    assert seqs == {device: list(range(1, 101)) for device in sim.device_ids}
    msg = subscriber.messages[0]
    assert len(msg.payload) == 200 and msg.qos == 1
    assert ("site", "plant-a") in getattr(msg.properties, "UserProperty", [])
    record_property("sim_rate_with_subscriber", round(result.rate))


@pytest.mark.parametrize("qos", [0, 2])
def test_qos_0_and_2(brokers: Any, root: str, subscriber: Subscriber, qos: int) -> None:
    sim = simulator(brokers, root, 20, 50, qos=qos, clients=2)
    assert_complete(sim.run(), 20, 50)
    assert subscriber.seqs_by_device(1000) == {device: list(range(1, 51)) for device in sim.device_ids}


def test_throughput_at_qos_1_with_4_clients(brokers: Any, root: str, record_property: Any) -> None:
    result = simulator(brokers, root, 200, 100, clients=4).run()
    assert_complete(result, 200, 100)
    record_property("sim_qos1_4_clients_msgs_per_s", round(result.rate))
    print(f"\n[simulator] QoS 1, 4 clients, 200 B: {result.summary()}")
    assert result.rate > 1000, result.summary()


def test_rate_is_paced(brokers: Any, root: str) -> None:
    result = simulator(brokers, root, 10, 40, rate=400).run()  # 400 messages at 400/s
    assert_complete(result, 10, 40)
    assert 0.9 <= result.elapsed_s <= 2.0, result.summary()


def test_stop_mid_run_reports_exactly_what_was_sent(brokers: Any, root: str, subscriber: Subscriber) -> None:
    sim = simulator(brokers, root, 20, 1000, rate=1000)
    sim.start()
    time.sleep(1.0)
    assert 0 < sim.acked <= sim.sent
    assert sim.running
    result = sim.stop()
    assert not sim.running
    assert result.ok, (result.summary(), result.errors)
    assert 500 <= result.sent <= 2000, result.summary()
    assert result.per_device_acked_seq == result.per_device_last_seq
    seqs = subscriber.seqs_by_device(result.sent)
    assert seqs == {d: list(range(1, last + 1)) for d, last in result.per_device_last_seq.items() if last}


def _take_over(brokers: Any, client_id: str) -> None:
    """Connect with another client's id: the broker disconnects that client (0x8E)."""
    thief = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    thief.connect(
        brokers.mqtt_host,
        brokers.mqtt_port,
        clean_start=False,
        properties=properties(PacketTypes.CONNECT, SessionExpiryInterval=300),
    )
    thief.loop_start()
    time.sleep(0.2)
    thief.disconnect()
    thief.loop_stop()


def test_clients_kicked_off_mid_run_reconnect_and_resend(
    brokers: Any, root: str, subscriber: Subscriber
) -> None:
    sim = simulator(brokers, root, 40, 100, rate=2000, client_id_prefix=f"{root}-dev")
    sim.start()
    time.sleep(0.7)
    for i in range(4):
        _take_over(brokers, f"{root}-dev-{i}")
    result = sim.wait(60)
    assert result is not None
    assert_complete(result, 40, 100)
    seqs = subscriber.seqs_by_device(4000)
    for device in sim.device_ids:
        assert first_occurrences(seqs[device]) == list(range(1, 101)), device


def test_publishing_survives_a_broker_restart(brokers: Any, root: str, subscriber: Subscriber) -> None:
    if not brokers.controllable:
        pytest.skip("brokers given by environment variables cannot be restarted by the test")
    sim = simulator(brokers, root, 40, 150, rate=1000)
    sim.start()
    time.sleep(1.5)
    brokers.stop_mqtt()
    time.sleep(1.0)
    brokers.start_mqtt()
    result = sim.wait(90)
    assert result is not None
    assert_complete(result, 40, 150)
    # Mosquitto saved the subscriber's session with what it had queued; paho re-sent the rest.
    seqs = subscriber.seqs_by_device(6000, timeout=90)
    for device in sim.device_ids:
        assert first_occurrences(seqs.get(device, [])) == list(range(1, 151)), device


def test_failures_are_counted_never_dropped(brokers: Any, root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real_publish, real_on_publish = Client.publish, DeviceClient._on_publish
    calls = {"n": 0}

    def publish(self: Client, *args: Any, **kwargs: Any) -> MQTTMessageInfo:
        calls["n"] += 1
        if calls["n"] == 7:  # as if paho's queue were full
            info = MQTTMessageInfo(0)
            info.rc = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
            return info
        return real_publish(self, *args, **kwargs)

    def on_publish(self: Any, client: Client, userdata: object, mid: int, *rest: Any) -> None:
        reason, properties = rest
        if mid == 50:  # as if the broker answered 0x87 Not authorized
            reason = ReasonCode(PacketTypes.PUBACK, identifier=0x87)
        real_on_publish(self, client, userdata, mid, reason, properties)

    monkeypatch.setattr(Client, "publish", publish)
    monkeypatch.setattr(DeviceClient, "_on_publish", on_publish)
    result = simulator(brokers, root, 10, 100, clients=2).run()
    assert not result.ok
    assert result.failed == 3  # one refused publish(), mid 50 on each of the two clients
    assert result.sent == 999 and result.acked == 997
    assert any("MQTT_ERR_QUEUE_SIZE" in e for e in result.errors), result.errors
    assert sum("Not authorized" in e for e in result.errors) == 2, result.errors
    assert sum(result.per_device_acked_seq.values()) < 997


def test_publish_raw_sends_odd_messages_as_they_are(brokers: Any, root: str, subscriber: Subscriber) -> None:
    publish_raw(brokers.mqtt_host, brokers.mqtt_port, f"{root}/plants/p01/other", b"not json {", qos=1)
    sim = simulator(brokers, root, 1, 1, user_properties={"k": "v"})
    sim.publish_raw(f"{root}/x", "text", qos=2)
    got = subscriber.wait_for(2, timeout=10)
    assert [(m.topic, m.payload) for m in got] == [
        (f"{root}/plants/p01/other", b"not json {"),
        (f"{root}/x", b"text"),
    ]
    assert getattr(got[1].properties, "UserProperty", None) == [("k", "v")]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_broker_is_an_error_not_a_hang() -> None:
    port = _closed_port()
    sim = DeviceSimulator("127.0.0.1", port, 4, 1, connect_timeout_s=1.5)
    began = time.monotonic()
    with pytest.raises(MqttConnectError, match=f"127.0.0.1:{port}"):
        sim.run()
    with pytest.raises(MqttConnectError):
        publish_raw("127.0.0.1", port, "x", b"y", timeout_s=1.0)
    assert time.monotonic() - began < 10

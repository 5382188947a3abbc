"""The test brokers themselves: Kafka takes and serves records, Mosquitto delivers MQTT 5 QoS 1,
and (where the tests own the brokers) both survive a stop and start with their data."""

from __future__ import annotations

import contextlib
import queue
import socket
import subprocess
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from mqtt_kafka_sync.config.model import RELAY_MQTT_MAX_INFLIGHT
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.mqtt import packets as p
from tests.conftest import Brokers

pytestmark = pytest.mark.integration


def produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    producer.produce(topic, value, key, on_delivery=on_delivery)
    assert producer.flush(30) == 0, "record not delivered within 30s"
    assert not errors, errors


def consume(bootstrap: str, topic: str, group: str, count: int, timeout: float = 30.0) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    got: list[Message] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None:
                assert msg.error() is None, msg.error()
                got.append(msg)
    finally:
        consumer.close()
    return got


class MqttClient:
    """A paho MQTT 5 client that records what it receives; subscribes in on_connect."""

    def __init__(self, brokers: Brokers, client_id: str, topic: str = "", *, session_expiry: int = 0) -> None:
        self.received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected: queue.Queue[ReasonCode] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.received.put(msg)
        self.topic = topic
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: __init__ unannotated
        props.SessionExpiryInterval = session_expiry
        self.client.connect(
            brokers.mqtt_host, brokers.mqtt_port, clean_start=session_expiry == 0, properties=props
        )
        self.client.loop_start()
        assert not self.connected.get(timeout=10).is_failure

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        if self.topic:
            client.subscribe(self.topic, qos=1)
        self.connected.put(rc)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_kafka_produces_and_consumes(brokers: Brokers, unique: str) -> None:
    ensure_topics(brokers.kafka_bootstrap, [unique])
    produce(brokers.kafka_bootstrap, unique, b"device-1", b"hello")
    [msg] = consume(brokers.kafka_bootstrap, unique, f"{unique}-group", 1)
    assert (msg.key(), msg.value()) == (b"device-1", b"hello")


def test_mqtt5_qos1_roundtrip(brokers: Brokers, unique: str) -> None:
    subscriber = MqttClient(brokers, f"{unique}-sub", f"{unique}/+/telemetry")
    publisher = MqttClient(brokers, f"{unique}-pub")
    try:
        time.sleep(0.2)  # the SUBACK races the publish otherwise
        publisher.publish(f"{unique}/dev1/telemetry", b"21.5")
        msg = subscriber.received.get(timeout=10)
        assert (msg.topic, msg.payload, msg.qos) == (f"{unique}/dev1/telemetry", b"21.5", 1)
    finally:
        publisher.close()
        subscriber.close()


def test_kafka_restart_keeps_data(brokers: Brokers, unique: str) -> None:
    ensure_topics(brokers.kafka_bootstrap, [unique])
    produce(brokers.kafka_bootstrap, unique, b"k", b"before")
    brokers.stop_kafka()
    brokers.start_kafka()
    produce(brokers.kafka_bootstrap, unique, b"k", b"after")
    values = [m.value() for m in consume(brokers.kafka_bootstrap, unique, f"{unique}-group", 2)]
    assert values == [b"before", b"after"]


def test_mosquitto_restart_keeps_queued_qos1(brokers: Brokers, unique: str) -> None:
    """A persistent MQTT 5 session's queued QoS 1 message survives a broker restart (persistence on)."""
    topic = f"{unique}/cmd"
    subscriber = MqttClient(brokers, f"{unique}-sub", topic, session_expiry=300)
    time.sleep(0.2)
    subscriber.close()  # offline now; the broker queues for the session
    publisher = MqttClient(brokers, f"{unique}-pub")
    publisher.publish(topic, b"queued")
    publisher.close()
    brokers.stop_mqtt()
    brokers.start_mqtt()
    subscriber = MqttClient(brokers, f"{unique}-sub", topic, session_expiry=300)
    try:
        msg = subscriber.received.get(timeout=10)
        assert (msg.topic, msg.payload) == (topic, b"queued")
    finally:
        subscriber.close()


def _packets(
    sock: socket.socket, reader: p.PacketReader, until: Callable[[list[p.Packet]], bool]
) -> list[p.Packet]:
    """Read packets until ``until(all read so far)`` or the socket's timeout."""
    got: list[p.Packet] = []
    with contextlib.suppress(TimeoutError):
        while not until(got):
            got += reader.feed_all(sock.recv(1 << 16))
    return got


def test_mosquitto_window_bounds_publishers_not_mqtt5_subscribers(brokers: Brokers, unique: str) -> None:
    """The stack's Mosquitto announces Receive Maximum 1000 (``max_inflight_messages``), the relay's own
    default window, so a relay task may have that many commands unacknowledged (docs/relay.md). It
    does not bound what the broker sends an MQTT 5 subscriber: 1,200 publishes reach one that asked
    for 1,500 and acknowledges none (the ingest tasks' window is their own ``mqtt.receive.maximum``)."""
    if not brokers.controllable:
        pytest.skip(
            "the window is the stack's Mosquitto config; brokers given by the environment have their own"
        )
    topic, reader = f"{unique}/window", p.PacketReader()
    with socket.create_connection((brokers.mqtt_host, brokers.mqtt_port), timeout=10) as sock:
        sock.sendall(
            p.encode_connect(
                f"{unique}-sub", keepalive=30, clean_start=True, session_expiry=0, receive_maximum=1500
            )
        )
        (connack,) = _packets(sock, reader, bool)
        assert isinstance(connack, p.Ack) and connack.kind == p.CONNACK, connack
        assert connack.properties.get(p.PROP_RECEIVE_MAXIMUM) == RELAY_MQTT_MAX_INFLIGHT
        sock.sendall(p.encode_subscribe(1, [(topic, 1)]))
        assert _packets(sock, reader, bool), "no SUBACK"
        # mosquitto_pub -M 1000 keeps to the broker's window itself, reading PUBACKs as it goes
        pub = ["mosquitto_pub", "-V", "mqttv5", "-h", brokers.mqtt_host, "-p", str(brokers.mqtt_port)]
        subprocess.run(
            [*pub, "-q", "1", "-t", topic, "-l", "-M", "1000"], input=b"x\n" * 1200, check=True, timeout=60
        )
        sock.settimeout(5)
        got = _packets(sock, reader, lambda got: len(got) >= 1200)
    assert sum(isinstance(packet, p.Publish) for packet in got) == 1200

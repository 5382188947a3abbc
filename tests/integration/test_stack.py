"""The test brokers themselves: Kafka takes and serves records, Mosquitto delivers MQTT 5 QoS 1,
and (where the tests own the brokers) both survive a stop and start with their data."""

from __future__ import annotations

import queue
import time

import paho.mqtt.client as mqtt
import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from mqtt_kafka_sync.kafka.admin import ensure_topics
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

"""The subscriber never holds more than its Receive Maximum unacknowledged, whatever the broker does.

Mosquitto 2.0.11 re-opens a whole Receive Maximum window on every PUBACK (with paho too), so this
is the subscriber's own flow control being tested, against the real broker that needs it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from mqtt_kafka_sync.mqtt.packets import Publish
from mqtt_kafka_sync.mqtt.subscriber import MqttSubscriber, SubscriberSettings
from mqtt_kafka_sync.sim.raw import publish_raw

pytestmark = pytest.mark.integration


class Collect:
    def __init__(self) -> None:
        self.messages: list[tuple[int, Publish]] = []

    def on_connected(self, generation: int, session_present: bool) -> None:
        return None

    def on_message(self, message: Publish, generation: int) -> None:
        self.messages.append((generation, message))

    def on_disconnected(self, generation: int, reason: str) -> None:
        return None

    def on_tick(self) -> float | None:
        return None


def _wait_count(handler: Collect, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(handler.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def _subscriber(
    brokers: Any, root: str, handler: Collect, *, receive_maximum: int, receive_maximum_bytes: int = 0
) -> MqttSubscriber:
    """A started QoS 1 subscriber of ``root/#`` (shared) with the given window settings."""
    settings = SubscriberSettings(
        brokers.mqtt_host,
        brokers.mqtt_port,
        f"{root}-sub",
        (f"$share/{root}/{root}/#",),
        qos=1,
        keepalive=10,
        receive_maximum=receive_maximum,
        receive_maximum_bytes=receive_maximum_bytes,
    )
    subscriber = MqttSubscriber(settings, handler)
    subscriber.start()
    return subscriber


def test_window_holds_while_acknowledgements_trickle(brokers: Any) -> None:
    root = f"fc{uuid.uuid4().hex[:6]}"
    handler = Collect()
    subscriber = _subscriber(brokers, root, handler, receive_maximum=50)
    try:
        assert subscriber.wait_subscribed(10)
        publish_raw(brokers.mqtt_host, brokers.mqtt_port, f"{root}/d", b"m0", qos=1)
        _publish_many(brokers, f"{root}/d", 300)
        _wait_count(handler, 50)
        time.sleep(1.0)
        assert len(handler.messages) == 50, "more than Receive Maximum arrived unacknowledged"
        first_ten = [(g, m.packet_id, m.qos) for g, m in handler.messages[:10]]
        subscriber.ack(first_ten)
        _wait_count(handler, 60)
        time.sleep(1.0)
        assert len(handler.messages) == 60, f"{len(handler.messages)} arrived after 10 acks (window 50)"
        acked = 10
        deadline = time.monotonic() + 20
        while acked < 301 and time.monotonic() < deadline:  # acknowledge as they come: all arrive
            batch = handler.messages[acked:]
            subscriber.ack([(g, m.packet_id, m.qos) for g, m in batch])
            acked += len(batch)
            time.sleep(0.05)
        assert len(handler.messages) == 301
        assert [m.payload for _, m in handler.messages[1:]] == [f"n{i}".encode() for i in range(300)]
    finally:
        subscriber.stop(session_expiry=0)


def test_the_byte_limit_holds_large_payloads_back(brokers: Any) -> None:
    """``receive_maximum_bytes``: 10 payloads of 10 KB fill a 100 KB window long before the Receive
    Maximum of 1,000 messages would; acknowledging 5 lets 5 more in."""
    root = f"fcb{uuid.uuid4().hex[:6]}"
    handler = Collect()
    subscriber = _subscriber(brokers, root, handler, receive_maximum=1000, receive_maximum_bytes=100_000)
    try:
        assert subscriber.wait_subscribed(10)
        _publish_many(brokers, f"{root}/d", 40, size=10_000)
        _wait_count(handler, 10)
        time.sleep(1.0)
        assert len(handler.messages) == 10, f"{len(handler.messages)} x 10 KB arrived in a 100 KB window"
        subscriber.ack([(g, m.packet_id, m.qos) for g, m in handler.messages[:5]])
        _wait_count(handler, 15)
        time.sleep(1.0)
        assert len(handler.messages) == 15, f"{len(handler.messages)} arrived after 5 acks"
        acked = 5
        deadline = time.monotonic() + 20
        while acked < 40 and time.monotonic() < deadline:
            batch = handler.messages[acked:]
            subscriber.ack([(g, m.packet_id, m.qos) for g, m in batch])
            acked += len(batch)
            time.sleep(0.05)
        assert [int(m.payload[:4]) for _, m in handler.messages] == list(range(40))
    finally:
        subscriber.stop(session_expiry=0)


def _publish_many(brokers: Any, topic: str, count: int, size: int = 0) -> None:
    import paho.mqtt.client as mqtt  # noqa: PLC0415
    from paho.mqtt.enums import CallbackAPIVersion  # noqa: PLC0415

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect(brokers.mqtt_host, brokers.mqtt_port)
    client.loop_start()
    try:
        payloads = [f"{i:04d}".encode().ljust(size, b"x") if size else f"n{i}".encode() for i in range(count)]
        infos = [client.publish(topic, payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()

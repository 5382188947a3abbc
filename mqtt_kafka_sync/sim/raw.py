"""One arbitrary message (bad JSON, an unroutable topic, ...) published with a short-lived client."""

from __future__ import annotations

import threading
import uuid

from paho.mqtt.client import Client, ConnectFlags
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from mqtt_kafka_sync.errors import MqttConnectError, MqttError
from mqtt_kafka_sync.mqtt.paho_client import MqttAccess, authenticate, new_client, publish_properties, release


def publish_raw(
    host: str,
    port: int,
    topic: str,
    payload: bytes | str,
    qos: int = 1,
    *,
    retain: bool = False,
    user_properties: dict[str, str] | None = None,
    timeout_s: float = 10.0,
    access: MqttAccess | None = None,
) -> None:
    """Publish one message and wait for its PUBACK/PUBCOMP; raises :class:`MqttError` on any failure.
    ``access``: login and TLS, for a broker that requires them."""
    client_id = f"sim-raw-{uuid.uuid4().hex[:8]}"
    client = new_client(client_id)
    if access is not None:
        authenticate(client, client_id, access)
    connected = threading.Event()
    reasons: dict[int, ReasonCode | None] = {}

    def on_connect(c: Client, u: object, f: ConnectFlags, reason: ReasonCode, p: Properties | None) -> None:
        if not reason.is_failure:
            connected.set()

    def on_publish(c: Client, u: object, mid: int, reason: ReasonCode | None, p: Properties | None) -> None:
        reasons[mid] = reason

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect_async(host, port)
    client.loop_start()
    try:
        if not connected.wait(timeout_s):
            raise MqttConnectError(f"could not connect to {host}:{port} within {timeout_s:.0f}s")
        info = client.publish(topic, payload, qos, retain, properties=publish_properties(user_properties))
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish() to {topic!r} returned {info.rc.name}")
        try:
            info.wait_for_publish(timeout_s)
            published = info.is_published()
        except (RuntimeError, ValueError) as exc:  # paho's way to say the message was lost
            raise MqttError(f"publish to {topic!r} failed: {exc}") from None
        if not published:
            raise MqttError(f"publish to {topic!r} not acknowledged within {timeout_s:.0f}s")
        reason = reasons.get(info.mid)
        if reason is not None and reason.is_failure:
            raise MqttError(f"broker rejected the publish to {topic!r}: {reason}")
    finally:
        release(client)

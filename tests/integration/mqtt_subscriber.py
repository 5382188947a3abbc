"""An MQTT 5 client that records every message on a topic filter: what the integration tests read
the bridge's (or the simulator's, or a replay's) output with.

QoS 1 and a session that survives broker restarts (expiry 1 h, never a clean start: each
subscriber has a fresh client id; paho's ``MQTT_CLEAN_START_FIRST_ONLY`` started clean again after a
Mosquitto restart and lost what it had queued), reconnecting within 1-2 s, so it also receives what
the broker queued for it while it was away. Each message is turned into ``T`` by ``convert`` on
arrival (paho's network thread).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

T = TypeVar("T")


def properties(packet_type: int, **values: Any) -> Properties:
    props = Properties(packet_type)  # type: ignore[no-untyped-call]  # paho: __init__ unannotated
    for name, value in values.items():
        setattr(props, name, value)
    return props


class RecordingSubscriber(Generic[T]):
    """Every message on ``topic_filter``, in arrival order, as ``convert`` made it."""

    def __init__(self, brokers: Any, topic_filter: str, convert: Callable[[MQTTMessage], T]) -> None:
        self.messages: list[T] = []
        self._convert = convert
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sub-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.on_connect = lambda c, *_: c.subscribe(topic_filter, options=SubscribeOptions(qos=1))
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 2)
        self._client.connect_async(
            brokers.mqtt_host,
            brokers.mqtt_port,
            clean_start=False,
            properties=properties(PacketTypes.CONNECT, SessionExpiryInterval=3600),
        )
        self._client.loop_start()
        assert self._ready.wait(10), f"subscriber on {topic_filter} got no SUBACK within 10 s"

    def _on_message(self, _client: Client, _userdata: object, message: MQTTMessage) -> None:
        item = self._convert(message)
        with self._lock:
            self.messages.append(item)

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def wait(self, count: int, timeout: float = 60.0, idle: float = 2.0) -> list[T]:
        """Every message once ``count`` arrived and nothing more for ``idle`` s (or at the timeout),
        so that duplicates beyond ``count`` show."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now, seen = time.monotonic(), self.count()
            if seen != last:
                last, since = seen, now
            elif seen >= count and now - since >= idle:
                break
            time.sleep(0.05)
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self._client.disconnect(properties=properties(PacketTypes.DISCONNECT, SessionExpiryInterval=0))
        self._client.loop_stop()
        self._client.reinitialise()

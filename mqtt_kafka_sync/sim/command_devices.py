"""The other end of the command relay: numbered commands into Kafka, devices receiving them over MQTT.

:func:`produce_commands` writes ``per_device`` commands for each device to a Kafka topic, keyed by
the device id (``p01.d0001``), with the simulator payload (``device``, ``seq``, ``ts``), seq 1..n
in order. Each :class:`CommandDevice` is one MQTT client subscribed to exactly its own command
topic, as a real device would be, recording every command it receives. :func:`count_commands`
compares what arrived with what was sent, per device, the way :mod:`mqtt_kafka_sync.sim.verify`
does for telemetry:

lost            seqs never received
duplicated      copies beyond the first of a seq
out_of_order    first occurrences of a seq received after the first occurrence of a larger seq
foreign         commands whose payload names another device (must never happen: it would be a
                command executed by the wrong machine)
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Producer
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY, Client, ConnectFlags, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from mqtt_kafka_sync.errors import MqttConnectError, SyncError
from mqtt_kafka_sync.kafka.settings import Kafka, client_settings
from mqtt_kafka_sync.mqtt.paho_client import (
    MqttAccess,
    authenticate,
    connect_later,
    release,
    session_properties,
)
from mqtt_kafka_sync.sim.payload import PayloadError, device_topic, make_payload, parse_payload

_log = logging.getLogger(__name__)

COMMAND_TOPIC_TEMPLATE = "plants/{plant}/devices/{device}/commands"


def produce_commands(
    kafka: Kafka,
    topic: str,
    devices: Iterable[str],
    per_device: int,
    *,
    first_seq: int = 1,
    payload_size: int = 120,
    headers: Mapping[str, str] | None = None,
    timestamp_ms: int | None = None,
    rate: float | None = None,
) -> dict[str, int]:
    """Write the commands (seq ``first_seq`` .. ``first_seq + per_device - 1`` for every device,
    seq-major, paced to ``rate`` commands/s when given) and wait until Kafka has all of them;
    returns device -> last seq. ``kafka``: a bare ``host:port`` or a connection with its security."""
    devices = list(devices)
    producer = Producer(
        client_settings(kafka, "producer", {"linger.ms": "5", "enable.idempotence": "true"}),
        logger=logging.getLogger(f"{__name__}.producer"),
    )
    failures: list[str] = []

    def report(err: KafkaError | None, msg: object) -> None:
        if err is not None:
            failures.append(err.str())

    extra: dict[str, object] = {}
    if headers:
        extra["headers"] = list(headers.items())
    if timestamp_ms is not None:
        extra["timestamp"] = timestamp_ms
    last = first_seq + per_device - 1
    started, sent = time.monotonic(), 0
    for seq in range(first_seq, last + 1):
        for device in devices:
            if rate is not None and (ahead := started + sent / rate - time.monotonic()) > 0:
                producer.poll(ahead)
            sent += 1
            value = make_payload(device, seq, payload_size)
            while True:
                try:
                    producer.produce(topic, value, device.encode(), on_delivery=report, **extra)  # type: ignore[arg-type]
                    break
                except BufferError:
                    producer.poll(0.1)
    left = producer.flush(60)
    if left or failures:
        raise SyncError(f"producing commands to {topic}: {left} unconfirmed, failures {failures[:3]}")
    return dict.fromkeys(devices, last)


@dataclass(frozen=True)
class Received:
    seq: int
    device: str
    topic: str
    qos: int
    dup: bool
    user_properties: dict[str, str]
    correlation_data: bytes | None
    response_topic: str | None
    expiry: int | None


class CommandDevice:
    """One MQTT client subscribed to ``topic`` with a persistent session."""

    def __init__(
        self,
        host: str,
        port: int,
        topic: str,
        *,
        client_id: str | None = None,
        qos: int = 2,
        access: MqttAccess | None = None,
    ) -> None:
        self.host, self.port, self.topic, self.qos = host, port, topic, qos
        self.access = access or MqttAccess()
        self.client_id = client_id or f"dev-{uuid.uuid4().hex[:10]}"
        self.received: list[Received] = []
        self.unparseable = 0
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client: Client | None = None

    def start(self, *, clean: bool = True) -> None:
        """Connect (``clean``: a new session; else resume the one kept by :meth:`stop`) and subscribe."""
        client = Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        authenticate(client, self.client_id, self.access)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 2)
        self._subscribed.clear()
        clean_start = MQTT_CLEAN_START_FIRST_ONLY if clean else False
        connect_later(client, self.host, self.port, session_expiry=3600, clean_start=clean_start)
        client.loop_start()
        self._client = client

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def stop(self, *, keep_session: bool = True) -> None:
        """Disconnect; with ``keep_session`` the broker queues commands for this device meanwhile."""
        client = self._client
        if client is None:
            return
        release(client, None if keep_session else session_properties(PacketTypes.DISCONNECT, 0))
        self._client = None

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def _on_connect(
        self,
        client: Client,
        userdata: object,
        flags: ConnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        if reason.is_failure:
            _log.warning("device %s: connection refused: %s", self.client_id, reason)
            return
        result, _ = client.subscribe(self.topic, options=SubscribeOptions(qos=self.qos))
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            _log.error("device %s: subscribe returned %s", self.client_id, result.name)

    def _on_subscribe(
        self, client: Client, userdata: object, mid: int, reasons: list[ReasonCode], props: Properties | None
    ) -> None:
        if any(r.is_failure for r in reasons):
            _log.error("device %s: subscription to %s refused: %s", self.client_id, self.topic, reasons)
        else:
            self._subscribed.set()

    def _on_message(self, client: Client, userdata: object, message: MQTTMessage) -> None:
        try:
            device, seq, _ = parse_payload(message.payload)
        except PayloadError:
            with self._lock:
                self.unparseable += 1
            return
        props = message.properties
        users = dict(getattr(props, "UserProperty", []) or [])
        entry = Received(
            seq=seq,
            device=device,
            topic=message.topic,
            qos=message.qos,
            dup=bool(message.dup),
            user_properties=users,
            correlation_data=getattr(props, "CorrelationData", None),
            response_topic=getattr(props, "ResponseTopic", None),
            expiry=getattr(props, "MessageExpiryInterval", None),
        )
        with self._lock:
            self.received.append(entry)


class CommandFleet:
    """One :class:`CommandDevice` per device id, each on its own command topic."""

    def __init__(
        self,
        host: str,
        port: int,
        devices: Iterable[str],
        *,
        template: str = COMMAND_TOPIC_TEMPLATE,
        qos: int = 2,
        access: MqttAccess | None = None,
    ) -> None:
        prefix = uuid.uuid4().hex[:6]
        self.devices = {
            d: CommandDevice(
                host, port, device_topic(d, template), client_id=f"dev-{prefix}-{d}", qos=qos, access=access
            )
            for d in devices
        }

    def start(self, timeout: float = 30.0) -> None:
        for device in self.devices.values():
            device.start()
        deadline = time.monotonic() + timeout
        for name, device in self.devices.items():
            if not device.wait_subscribed(max(0.0, deadline - time.monotonic())):
                self.stop()
                raise MqttConnectError(f"device {name} did not subscribe within {timeout:.0f}s")

    def stop(self) -> None:
        for device in self.devices.values():
            device.stop(keep_session=False)

    def received(self) -> int:
        return sum(len(d.received) for d in self.devices.values())

    def wait_complete(self, expected: Mapping[str, int], timeout: float, idle: float = 10.0) -> CommandReport:
        """Wait until every expected seq arrived, ``timeout`` passed, or nothing arrived for ``idle``."""
        deadline = time.monotonic() + timeout
        last_count, last_change = -1, time.monotonic()
        while True:
            report = self.report(expected)
            now = time.monotonic()
            count = self.received()
            if count != last_count:
                last_count, last_change = count, now
            if report.lost == 0 or now >= deadline or now - last_change >= idle:
                return report
            time.sleep(0.2)

    def report(self, expected: Mapping[str, int]) -> CommandReport:
        return count_commands({d: dev.snapshot() for d, dev in self.devices.items()}, expected)


@dataclass(frozen=True)
class DeviceCount:
    expected: int
    delivered: int
    duplicated: int
    out_of_order: int
    foreign: int
    lost_seqs: tuple[int, ...]


@dataclass(frozen=True)
class CommandReport:
    expected: int
    delivered: int
    lost: int
    duplicated: int
    out_of_order: int
    foreign: int
    devices: dict[str, DeviceCount] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Nothing lost, reordered or misdelivered; duplicates are allowed (at least once)."""
        return self.lost == 0 and self.out_of_order == 0 and self.foreign == 0

    def summary(self) -> str:
        return (
            f"expected={self.expected} delivered={self.delivered} lost={self.lost} "
            f"duplicated={self.duplicated} out_of_order={self.out_of_order} foreign={self.foreign}"
        )

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in self.__dict__.items() if k != "devices"})


def count_commands(received: Mapping[str, list[Received]], expected: Mapping[str, int]) -> CommandReport:
    """Per device: lost, duplicated, out-of-order and foreign commands (see the module docstring)."""
    counts: dict[str, DeviceCount] = {}
    for device, last in expected.items():
        seen: set[int] = set()
        duplicated = out_of_order = foreign = 0
        highest = 0
        for entry in received.get(device, []):
            if entry.device != device:
                foreign += 1
                continue
            if entry.seq in seen:
                duplicated += 1
                continue
            seen.add(entry.seq)
            if entry.seq < highest:
                out_of_order += 1
            highest = max(highest, entry.seq)
        lost = tuple(s for s in range(1, last + 1) if s not in seen)
        delivered = last - len(lost)
        counts[device] = DeviceCount(last, delivered, duplicated, out_of_order, foreign, lost)
    values = counts.values()
    return CommandReport(
        expected=sum(expected.values()),
        delivered=sum(c.delivered for c in values),
        lost=sum(len(c.lost_seqs) for c in values),
        duplicated=sum(c.duplicated for c in values),
        out_of_order=sum(c.out_of_order for c in values),
        foreign=sum(c.foreign for c in values),
        devices=counts,
    )

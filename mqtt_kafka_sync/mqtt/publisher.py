"""The relay's MQTT 5 connection: paho-mqtt 2.x publishing commands, callbacks turned into events.

paho runs its network loop on its own thread. Every callback only puts an event on the relay's
queue (:class:`Connected`, :class:`Refused`, :class:`Disconnected`, :class:`Acked`) and returns: the
relay thread does the work, so paho's loop never blocks and keepalives keep flowing.

paho says why it ended a connection only in its log callback ("Received malformed packet: ..."
when the broker's answer breaks the protocol), so that text is kept and carried by the
:class:`Disconnected` event that follows; refusals are worded by :mod:`mqtt_kafka_sync.mqtt.reasons`.

Session: ``clean_start`` only on the first connection of the process, then resumed with
``mqtt.session.expiry.interval.seconds``. paho keeps every QoS 1/2 publish the broker has not
acknowledged and sends it again (DUP) after a reconnect, so a broker restart or network drop loses
nothing. A new process starts a clean session under a new client id: the offsets it had not stored
are read and published again, and stale QoS 2 state of an earlier process could otherwise swallow
a new message that reuses a packet id.
"""

from __future__ import annotations

import logging
import queue
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from paho.mqtt.client import (
    MQTT_CLEAN_START_FIRST_ONLY,
    MQTT_LOG_ERR,
    MQTT_LOG_WARNING,
    Client,
    ConnectFlags,
    DisconnectFlags,
    mqtt_ms_publish,
    mqtt_ms_queued,
)
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from mqtt_kafka_sync.errors import CommandError
from mqtt_kafka_sync.mqtt import reasons

if TYPE_CHECKING:
    from mqtt_kafka_sync.config.model import RelayConnectorConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Command:
    """One MQTT 5 PUBLISH to make (the relay routes a Kafka record into one)."""

    route: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    user_properties: tuple[tuple[str, str], ...]
    correlation_data: bytes
    response_topic: str | None
    expiry_seconds: int | None
    """Message Expiry Interval, already reduced by the record's age; None: never expires."""


RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 4
_ACCEPTED = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)
"""NO_CONN with QoS 1/2: paho keeps the message and sends it once connected again."""


@dataclass(frozen=True, slots=True)
class Connected:
    session_present: bool
    receive_maximum: int
    """The broker's Receive Maximum: how many QoS 1/2 publishes it takes in flight (65535 if unset)."""
    maximum_qos: int
    retain_available: bool
    maximum_packet_size: int | None


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str
    reason_code: int
    detail: str = ""
    """paho's own words for why it ended the connection, when it gave any."""
    from_broker: bool = False
    """The broker sent DISCONNECT (else paho or the network ended the connection)."""

    def __str__(self) -> str:
        if self.from_broker:
            text = f"the broker sent DISCONNECT: {reasons.describe(self.reason_code, reasons.DISCONNECT)}"
        else:  # paho's own verdict (on the broker's answer, or the network): the name, not the broker's view
            name = reasons.lookup(self.reason_code).name
            text = f"paho ended the connection: {name} (0x{self.reason_code:02X})"
        return f"{text}; paho: {self.detail}" if self.detail else text


@dataclass(frozen=True, slots=True)
class Acked:
    """PUBACK (QoS 1) or PUBCOMP (QoS 2) for packet ``mid``; ``reason_code`` >= 0x80 is a refusal."""

    mid: int
    reason_code: int
    reason: str


MqttEvent = Connected | Refused | Disconnected | Acked


def take_events(events: queue.SimpleQueue[object], timeout: float) -> list[object]:
    """Every event queued now, waiting up to ``timeout`` seconds for the first; [] when none came."""
    try:
        taken = [events.get(timeout=timeout) if timeout > 0 else events.get_nowait()]
    except queue.Empty:
        return []
    while True:
        try:
            taken.append(events.get_nowait())
        except queue.Empty:
            return taken


@dataclass(frozen=True)
class PublisherSettings:
    host: str
    port: int
    client_id: str
    keepalive: int = 30
    session_expiry: int = 3600
    max_inflight: int = 1000
    username: str | None = None
    password: str | None = None

    @classmethod
    def of(cls, config: RelayConnectorConfig, client_id: str) -> PublisherSettings:
        """The connection a relay connector's ``mqtt.*`` keys describe, as ``client_id``."""
        password = config.mqtt.password.reveal() if config.mqtt.password is not None else None
        return cls(
            host=config.mqtt.server.host,
            port=config.mqtt.server.port,
            client_id=client_id,
            keepalive=config.mqtt.keepalive_seconds,
            session_expiry=config.mqtt.session_expiry_seconds,
            max_inflight=config.mqtt_max_inflight,
            username=config.mqtt.username,
            password=password,
        )


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]  # paho leaves __init__ unannotated


class PackedProperties:
    """A PUBLISH's MQTT 5 properties, encoded once.

    paho only ever calls ``pack()`` on the properties of a PUBLISH (when sending it, and again when
    re-sending it after a reconnect). Its own :class:`Properties` validates every attribute by name
    and costs about 30 µs per message, a fifth of the relay thread's time, so commands carry this
    instead. ``tests/unit/mqtt/test_relay_publisher.py`` checks the bytes against paho's encoding.
    """

    __slots__ = ("_packed",)

    def __init__(self, command: Command) -> None:
        body = bytearray()
        if command.expiry_seconds is not None:
            body += struct.pack("!BI", 0x02, command.expiry_seconds)
        if command.response_topic is not None:
            body += _binary(0x08, command.response_topic.encode())
        body += _binary(0x09, command.correlation_data)
        for name, value in command.user_properties:
            body += _binary(0x26, name.encode()) + _string(value.encode())
        self._packed = _varint(len(body)) + bytes(body)

    def pack(self) -> bytes:
        return self._packed


def _binary(identifier: int, data: bytes) -> bytes:
    return bytes((identifier,)) + _string(data)


def _string(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError(f"a property of {len(data)} bytes does not fit MQTT's 65,535")
    return struct.pack("!H", len(data)) + data


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        number, digit = divmod(number, 128)
        out.append(digit | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _no_delay(client: Client, userdata: object, sock: object) -> None:
    """paho leaves Nagle on: a lone PUBLISH would wait for the TCP ACK of the previous one."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class MqttPublisher:
    """Publishes :class:`Command`s; events go to ``events``, read by the relay thread."""

    def __init__(self, settings: PublisherSettings, events: queue.SimpleQueue[object]) -> None:
        self.settings = settings
        self._events = events
        client = Client(
            CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        client.max_inflight_messages_set(settings.max_inflight)
        client.max_queued_messages_set(0)  # unbounded: the relay bounds what it hands over
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        client.on_socket_open = _no_delay
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        # paho's own words for a protocol error exist only in its log. Its on_log callback would cost
        # a string format of every debug line (two per command, ~4 µs each on paho's thread), so
        # this instance's log function is replaced by one that formats only what it keeps.
        setattr(client, "_easy_log", self._paho_log)  # noqa: B010
        self._client = client
        self._paho_said = ""
        """paho's latest error text (its network thread writes, its next on_disconnect reads)."""

    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers."""
        props = _properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive,
            clean_start=MQTT_CLEAN_START_FIRST_ONLY,
            properties=props,
        )
        rc = self._client.loop_start()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"paho loop_start() returned {rc.name}")

    def connected(self) -> bool:
        return self._client.is_connected()

    def publish(self, command: Command) -> int:
        """Hand ``command`` to paho; returns its packet id. Raises :class:`CommandError` when paho
        refuses it (it is then never sent)."""
        try:
            props = cast(Properties, PackedProperties(command))
            info = self._client.publish(
                command.topic, command.payload, command.qos, command.retain, properties=props
            )
        except ValueError as exc:  # illegal topic, payload or property too large
            raise CommandError(
                "mqtt-rejected", f"paho refused the publish: {exc}", mqtt_topic=command.topic
            ) from None
        if info.rc not in _ACCEPTED:
            raise CommandError(
                "mqtt-rejected", f"paho publish() returned {info.rc.name}", mqtt_topic=command.topic
            )
        return info.mid

    def forget(self, mids: Iterable[int]) -> None:
        """Drop these publishes from paho's session, so it never sends them again after a reconnect
        (the relay gave up on them). paho has no public call for one message: this takes its
        outgoing-message lock and removes them as its own acknowledgement handling does."""
        client = self._client
        with client._out_message_mutex:
            for mid in mids:
                message = client._out_messages.pop(mid, None)
                if message is None or message.qos == 0:
                    continue
                # Counted in flight once sent (paho recounts from zero on reconnect).
                if message.state not in (mqtt_ms_publish, mqtt_ms_queued) and client._inflight_messages > 0:
                    client._inflight_messages -= 1

    def stop(self, *, end_session: bool) -> None:
        """Disconnect (ending the session at the broker when ``end_session``) and stop paho's thread."""
        props = None
        if end_session:
            props = _properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
        rc = self._client.disconnect(properties=props)
        if rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            logger.warning("MQTT client %s: disconnect() returned %s", self.settings.client_id, rc.name)
        self._client.loop_stop()
        self._client.reinitialise()  # closes paho's wake-up socket pair now rather than in __del__

    # -- paho callbacks: network thread, never block ----------------------------------------------
    def _on_connect(
        self,
        client: Client,
        userdata: object,
        flags: ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._events.put(Refused(reasons.describe(reason.value, reasons.CONNACK, needs="the relay")))
            return
        self._events.put(
            Connected(
                session_present=flags.session_present,
                receive_maximum=_int_property(properties, "ReceiveMaximum", 65535),
                maximum_qos=_int_property(properties, "MaximumQoS", 2),
                retain_available=bool(_int_property(properties, "RetainAvailable", 1)),
                maximum_packet_size=_int_property(properties, "MaximumPacketSize", 0) or None,
            )
        )

    def _on_connect_fail(self, client: Client, userdata: object) -> None:
        self._events.put(Refused("no answer (broker unreachable)"))

    def _on_disconnect(
        self,
        client: Client,
        userdata: object,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        said, self._paho_said = self._paho_said, ""
        self._events.put(
            Disconnected(str(reason), reason.value, said, flags.is_disconnect_packet_from_server)
        )

    def _paho_log(self, level: int, fmt: str, *args: object) -> None:
        if level in (MQTT_LOG_ERR, MQTT_LOG_WARNING) or fmt.startswith("Received malformed packet"):
            self._paho_said = fmt % args if args else fmt

    def _on_publish(
        self,
        client: Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: Properties,
    ) -> None:
        self._events.put(Acked(mid, reason.value, "" if not reason.is_failure else str(reason)))


def _int_property(properties: Properties | None, name: str, default: int) -> int:
    value = getattr(properties, name, None)
    return value if isinstance(value, int) else default

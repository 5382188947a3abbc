"""The relay's MQTT 5 connection: paho-mqtt 2.x publishing commands, callbacks turned into events.

paho runs its network loop on its own thread. Every callback only puts an event on the relay's
queue (:class:`Connected`, :class:`Refused`, :class:`Disconnected`, :class:`Acked`) and returns: the
relay thread does the work, so paho's loop never blocks and keepalives keep flowing.

paho says why it ended a connection only in its log ("Received malformed packet: ..." when the
broker's answer breaks the protocol), so that text is kept and carried by the :class:`Disconnected`
event that follows; refusals are worded by :mod:`mqtt_kafka_sync.mqtt.reasons`. A refused CONNACK
(bad credentials, not authorized) is not retried at paho's usual 1 to 4 s: each refusal sets paho's
next reconnect wait from capped exponential backoff with jitter
(:data:`~mqtt_kafka_sync.mqtt.backoff.REFUSED_MIN_S` to :data:`~mqtt_kafka_sync.mqtt.backoff.REFUSED_MAX_S`,
the cap from the start when the code is not ``retriable``), and the first good CONNACK restores the
usual waits; the relay thread logs the refusal once (:mod:`~mqtt_kafka_sync.mqtt.failures`).
The MQTT bytes this module makes itself (a PUBLISH's properties) come from
:mod:`mqtt_kafka_sync.mqtt.packets`; the one use of paho's internals left is
:meth:`MqttPublisher.forget`, for which paho has no public call.

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
import ssl
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from paho.mqtt.client import (
    MQTT_CLEAN_START_FIRST_ONLY,
    Client,
    ConnectFlags,
    DisconnectFlags,
    mqtt_ms_publish,
    mqtt_ms_queued,
)
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from mqtt_kafka_sync.config.model import (
    MQTT_KEEPALIVE_S,
    RELAY_MQTT_MAX_INFLIGHT,
    RELAY_MQTT_SESSION_EXPIRY_S,
    MqttTls,
    RelayConnectorConfig,
)
from mqtt_kafka_sync.errors import CommandError
from mqtt_kafka_sync.mqtt import packets, reasons, tls
from mqtt_kafka_sync.mqtt.backoff import REFUSED_MAX_S, REFUSED_MIN_S, Backoff
from mqtt_kafka_sync.mqtt.events import Acked, Connected, Disconnected, Refused
from mqtt_kafka_sync.mqtt.failures import Failure, connack_reason
from mqtt_kafka_sync.mqtt.paho_client import (
    RECONNECT_MAX_S,
    RECONNECT_MIN_S,
    MqttAccess,
    authenticate,
    connect_later,
    new_client,
    session_properties,
)

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


_ACCEPTED = (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)
"""NO_CONN with QoS 1/2: paho keeps the message and sends it once connected again."""


@dataclass(frozen=True)
class PublisherSettings:
    host: str
    port: int
    client_id: str
    keepalive: int = MQTT_KEEPALIVE_S
    session_expiry: int = RELAY_MQTT_SESSION_EXPIRY_S
    max_inflight: int = RELAY_MQTT_MAX_INFLIGHT
    username: str | None = None
    password: str | None = None
    tls: MqttTls | None = None
    """``mqtt.ssl.*`` over TLS; the files are read again before every reconnect."""

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
            tls=config.mqtt.tls,
        )


def command_properties(command: Command) -> bytes:
    """The MQTT 5 properties of ``command``'s PUBLISH, encoded (length prefix included). Raises
    ValueError when one is longer than MQTT allows."""
    props: list[tuple[int, object]] = []
    if command.expiry_seconds is not None:
        props.append((packets.PROP_MESSAGE_EXPIRY, command.expiry_seconds))
    if command.response_topic is not None:
        props.append((packets.PROP_RESPONSE_TOPIC, command.response_topic))
    props.append((packets.PROP_CORRELATION_DATA, command.correlation_data))
    props.extend((packets.PROP_USER_PROPERTY, pair) for pair in command.user_properties)
    return packets.encode_properties(props)


class PackedProperties(Properties):
    """A PUBLISH's MQTT 5 properties, encoded once by :func:`~mqtt_kafka_sync.mqtt.packets.encode_properties`.

    paho's ``publish()`` takes a :class:`Properties` and only ever calls its public ``pack()`` (when
    sending the PUBLISH, and again when re-sending it after a reconnect). paho's own class validates
    every attribute by name and costs about 30 µs per message, a fifth of the relay thread's time,
    so this subclass skips its set-up and hands over the bytes encoded here (its attribute API is
    not there: nothing reads it). ``tests/unit/mqtt/test_relay_publisher.py`` decodes the bytes
    with paho's decoder.
    """

    __slots__ = ("_packed",)
    _packed: bytes

    def __init__(self, command: Command) -> None:  # no super().__init__(): see the class docstring
        # paho's Properties.__setattr__ accepts property names only: set the slot directly
        object.__setattr__(self, "_packed", command_properties(command))

    def pack(self) -> bytes:
        return self._packed

    def __repr__(self) -> str:
        return f"PackedProperties({len(self._packed)} bytes)"

    __str__ = __repr__


class _PahoSaid(logging.Logger):
    """paho's own words for why it ended a connection, kept; every other line of paho's log dropped.

    paho says "Received malformed packet: ..." only in its log, at DEBUG. Given to paho's public
    ``enable_logger``, this logger is called for each line paho logs (two per command) and formats
    only what it keeps, where ``on_log`` would format every line (~4 µs each on paho's thread).
    """

    def __init__(self) -> None:
        super().__init__("paho.said")
        self.said = ""
        """paho's latest error text (its network thread writes, the next on_disconnect reads)."""

    def log(self, level: int, msg: object, *args: object, **kwargs: object) -> None:
        text = str(msg)
        if level >= logging.WARNING or text.startswith("Received malformed packet"):
            self.said = text % args if args else text

    def take(self) -> str:
        said, self.said = self.said, ""
        return said


class MqttPublisher:
    """Publishes :class:`Command`s; events go to ``events``, read by the relay thread."""

    def __init__(self, settings: PublisherSettings, events: queue.SimpleQueue[object]) -> None:
        self.settings = settings
        self._events = events
        client = new_client(settings.client_id)
        client.max_inflight_messages_set(settings.max_inflight)
        client.max_queued_messages_set(0)  # unbounded: the relay bounds what it hands over
        authenticate(
            client, settings.client_id, MqttAccess(settings.username, settings.password, settings.tls)
        )
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._paho_said = _PahoSaid()
        client.enable_logger(self._paho_said)
        self._client = client
        self._refusals = Backoff()
        """Waits after refused CONNACKs; reset by an accepted one (paho's network thread only)."""
        self._session_up = False
        """A CONNACK accepted this connection (paho's network thread only)."""

    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers."""
        settings = self.settings
        connect_later(
            self._client,
            settings.host,
            settings.port,
            session_expiry=settings.session_expiry,
            clean_start=MQTT_CLEAN_START_FIRST_ONLY,
            keepalive=settings.keepalive,
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
            info = self._client.publish(
                command.topic,
                command.payload,
                command.qos,
                command.retain,
                properties=PackedProperties(command),
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
            props = session_properties(PacketTypes.DISCONNECT, 0)
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
            code = reason.value
            words = reasons.describe(code, reasons.CONNACK, needs="the relay")
            self._refused(client, words, code, retriable=reasons.lookup(code, reasons.CONNACK).retriable)
            return
        self._session_up = True
        if self._refusals.attempts:
            self._refusals.reset()
            client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
        self._events.put(
            Connected(
                session_present=flags.session_present,
                receive_maximum=_int_property(properties, "ReceiveMaximum", 65535),
                maximum_qos=_int_property(properties, "MaximumQoS", 2),
                retain_available=bool(_int_property(properties, "RetainAvailable", 1)),
                maximum_packet_size=_int_property(properties, "MaximumPacketSize", 0) or None,
            )
        )

    def _refused(self, client: Client, words: str, code: int | None, *, retriable: bool) -> None:
        """The broker refused this connection (a CONNACK ``code``, or the TLS session when None):
        paho waits the refusals' backoff before the next attempt."""
        first = REFUSED_MIN_S if retriable else REFUSED_MAX_S
        wait = max(1, round(self._refusals.next(first, REFUSED_MAX_S)))
        client.reconnect_delay_set(min_delay=wait, max_delay=wait)  # paho's next wait, no more
        s = self.settings
        broker = f"{s.host}:{s.port}"
        if code is None:
            failure = Failure("tls", 0, f"broker {broker}: TLS: {words}", retriable)
        else:
            logged = f"broker {broker} refused the connection: {words}"
            failure = Failure(connack_reason(code), code, logged, retriable)
        self._events.put(Refused(words, code, broker, s.client_id, wait, failure))

    def _on_connect_fail(self, client: Client, userdata: object) -> None:
        # paho calls this inside its ``except OSError`` around the attempt, without the exception.
        failure = sys.exc_info()[1]
        settings = self.settings
        if settings.tls is not None and isinstance(failure, ssl.SSLError | ConnectionError):
            refused = tls.refusal(failure, settings.tls, settings.host)
            self._refused(client, refused.words, None, retriable=refused.retriable)
        else:
            self._events.put(Refused("no answer (broker unreachable)"))

    def _on_disconnect(
        self,
        client: Client,
        userdata: object,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        said = self._paho_said.take()
        session_up, self._session_up = self._session_up, False
        settings = self.settings
        if not session_up and settings.tls is not None:
            # TLS 1.3: the broker checks our certificate after the handshake, and its alert ends the
            # session before CONNACK; paho reports "Unspecified error" and names the alert only in its log.
            refused = tls.refusal_said(said, settings.tls, settings.host)
            if refused is not None:
                self._refused(client, refused.words, None, retriable=refused.retriable)
                return
        self._events.put(
            Disconnected(str(reason), reason.value, said, flags.is_disconnect_packet_from_server)
        )

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

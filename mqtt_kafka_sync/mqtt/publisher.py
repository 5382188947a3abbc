"""The relay's MQTT 5 publisher: commands encoded here, written in batches, acknowledgements as events.

Used by the command relay (``relay/task.py``) and ``replay --to-mqtt`` (``replay/mqtt_target.py``)
through a :class:`~mqtt_kafka_sync.mqtt.window.PublishWindow`. Its events go on the caller's queue:
:class:`~mqtt_kafka_sync.mqtt.events.Connected` (with the broker's Receive Maximum and Maximum
Packet Size), ``Refused`` (with the refusal's ``failure``), ``Disconnected``, ``Acks`` (the
successes of a read, or with ``hold_acks`` of a quarter window) and ``Acked`` (a refusal); the
caller's thread does the work.

Why not paho (which this replaced in issue 16): paho builds a Properties object and takes its
locks per publish, writes each PUBLISH with its own ``send`` and reads each PUBACK with several
``recv`` calls; the relay moved about 10,000 commands/s through it. :meth:`MqttPublisher.publish`
encodes the PUBLISH itself and keeps it in the session (:class:`~mqtt_kafka_sync.mqtt.outflight.Outflight`)
under a packet id, and the network thread (:mod:`~mqtt_kafka_sync.mqtt.outgoing`) writes it with
everything else that waits, in one ``send``: the caller never waits for the socket. (Writing each
PUBLISH at once on the caller's thread was tried: the broker then read and answered one packet at
a time, and a loop publishing to Mosquitto through it was slower.)

- Connecting is the ingest subscriber's (:func:`~mqtt_kafka_sync.mqtt.connection.connect`: TCP or
  TLS with the ``mqtt.ssl.*`` files read at each connect, CONNECT, the CONNACK read in full).
- Session: Clean Start only until the first session of the process, then resumed with
  ``mqtt.session.expiry.interval.seconds``. Every QoS 1/2 publish the broker has not acknowledged
  is sent again after a reconnect (DUP; QoS 2 continued with PUBREL), before anything newer, so a
  broker restart or network drop loses nothing. A new process starts a clean session under a new
  client id: stale QoS 2 state of an earlier process could otherwise swallow a new message that
  reuses a packet id.
- A refused CONNACK or TLS session waits capped exponential backoff with jitter
  (:data:`~mqtt_kafka_sync.mqtt.backoff.REFUSED_MIN_S` to :data:`~mqtt_kafka_sync.mqtt.backoff.REFUSED_MAX_S`,
  the cap from the start when it is not ``retriable``, so a refused certificate waits 30 to 60 s)
  and the relay logs it once (:mod:`~mqtt_kafka_sync.mqtt.failures`); an unreachable broker or a
  lost connection waits :data:`RECONNECT_MIN_S` doubling to :data:`RECONNECT_MAX_S`, as paho did.
  A good CONNACK resets both.
- An answer that breaks the protocol ends the connection with protocol error (0x82), in words
  (:mod:`~mqtt_kafka_sync.mqtt.outflight`).
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from mqtt_kafka_sync.config.model import (
    MQTT_KEEPALIVE_S,
    RELAY_MQTT_MAX_INFLIGHT,
    RELAY_MQTT_SESSION_EXPIRY_S,
    MqttTls,
    RelayConnectorConfig,
)
from mqtt_kafka_sync.errors import CommandError, MqttConnectError
from mqtt_kafka_sync.mqtt import packets
from mqtt_kafka_sync.mqtt.backoff import REFUSED_MAX_S, REFUSED_MIN_S, Backoff
from mqtt_kafka_sync.mqtt.connection import BrokerRefused, connect, refusal
from mqtt_kafka_sync.mqtt.events import Refused
from mqtt_kafka_sync.mqtt.outflight import Outflight
from mqtt_kafka_sync.mqtt.outgoing import Link, serve
from mqtt_kafka_sync.mqtt.subscriber_settings import SubscriberSettings
from mqtt_kafka_sync.mqtt.tls import TlsFilesUnusable, TlsRefused
from mqtt_kafka_sync.mqtt.wakeup import Wakeup

logger = logging.getLogger(__name__)

RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 4.0
"""Waits before reconnecting after a connection ended or the broker did not answer (doubling from
the first to the cap), as paho waited."""


@dataclass(slots=True)
class Command:
    """One MQTT 5 PUBLISH to make (the relay routes a Kafka record into one). Nothing changes a
    command once made; it is not a frozen dataclass only because that ``__init__`` sets each field
    through ``object.__setattr__``, about 2 us more per command on the relay's path."""

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


TOPIC_CACHE_SIZE = 10_000
"""Topic names (and response topics) kept encoded per :class:`PublishEncoder`, one per device
typically; cleared when full."""
_U16 = struct.Struct("!H").pack
_EXPIRY = struct.Struct("!BI").pack
_MAX_STRING = 0xFFFF


def command_properties(command: Command, response: bytes | None = None) -> bytes:
    """The MQTT 5 properties of ``command``'s PUBLISH, encoded (length prefix included): expiry,
    response topic, correlation data, user properties, in this order. ``response``: the Response
    Topic property already encoded (b"" for none), else encoded here. Raises ValueError when one is
    longer than MQTT allows."""
    if response is None:
        response = _response_property(command.response_topic)
    expiry = command.expiry_seconds
    body = b"%s%s\x09%s" % (
        b"" if expiry is None else _EXPIRY(packets.PROP_MESSAGE_EXPIRY, expiry),
        response,
        packets.encode_binary(command.correlation_data),
    )
    if command.user_properties:
        binary = packets.encode_binary
        body += b"".join(
            [
                b"\x26%s%s" % (binary(name.encode()), binary(value.encode()))
                for name, value in command.user_properties
            ]
        )
    size = len(body)
    return b"%c%s" % (size, body) if size < 0x80 else packets.encode_varint(size) + body


def _response_property(topic: str | None) -> bytes:
    return b"" if topic is None else b"\x08" + packets.encode_binary(topic.encode())


class PublishEncoder:
    """Encodes commands' PUBLISH packets, keeping what repeats per device (the topic name, checked
    and encoded, and the Response Topic property) for the next command to it, bounded by
    :data:`TOPIC_CACHE_SIZE` each."""

    def __init__(self) -> None:
        self._topics: dict[str, bytes] = {}
        self._responses: dict[str, bytes] = {}

    def encode(self, command: Command) -> tuple[bytes, bytes]:
        """``command``'s PUBLISH in two parts: up to the packet id, and after it. Raises
        :class:`CommandError` (``mqtt-rejected``) when MQTT cannot carry it."""
        topic, qos = command.topic, command.qos
        name = self._topics.get(topic)
        if name is None or qos not in (0, 1, 2):
            name = self._topic(topic, qos)
        try:
            response = command.response_topic
            tail = (
                command_properties(command, self._response(response) if response is not None else b"")
                + command.payload
            )
        except ValueError as exc:
            raise CommandError(
                "mqtt-rejected", f"cannot encode the PUBLISH: {exc}", mqtt_topic=topic
            ) from None
        remaining = len(name) + (2 if qos else 0) + len(tail)
        first = 0x30 | qos << 1 | command.retain
        if remaining < 0x80:
            return b"%c%c%s" % (first, remaining, name), tail
        return b"%c%s%s" % (first, packets.encode_varint(remaining), name), tail

    def _topic(self, topic: str, qos: int) -> bytes:
        """``topic`` checked and encoded (kept for the next command to it); raises :class:`CommandError`."""
        if not topic or "+" in topic or "#" in topic or qos not in (0, 1, 2):
            detail = f"not a PUBLISH MQTT allows: topic {topic!r} (empty, or with + or #), QoS {qos}"
            raise CommandError("mqtt-rejected", detail, mqtt_topic=topic)
        raw = topic.encode("utf-8")
        if len(raw) > _MAX_STRING:
            detail = f"cannot encode the PUBLISH: a topic of {len(raw)} bytes does not fit MQTT's 65,535"
            raise CommandError("mqtt-rejected", detail, mqtt_topic=topic)
        return _kept(self._topics, topic, _U16(len(raw)) + raw)

    def _response(self, topic: str) -> bytes:
        encoded = self._responses.get(topic)
        return _kept(self._responses, topic, _response_property(topic)) if encoded is None else encoded


def _kept(cache: dict[str, bytes], topic: str, encoded: bytes) -> bytes:
    """``encoded``, kept in ``cache`` under ``topic``; a full cache (:data:`TOPIC_CACHE_SIZE`) is
    emptied first."""
    if len(cache) >= TOPIC_CACHE_SIZE:
        cache.clear()
    cache[topic] = encoded
    return encoded


class MqttPublisher:
    """Publishes :class:`Command`s; events go to ``events``, read by the caller's thread."""

    def __init__(
        self, settings: PublisherSettings, events: queue.SimpleQueue[object], *, hold_acks: bool = False
    ) -> None:
        """``hold_acks``: successful acknowledgements are told a quarter of the window at a time
        (:attr:`~mqtt_kafka_sync.mqtt.outgoing.Link.hold_acks`), for a caller publishing such bursts."""
        self.settings = settings
        self._link = Link(
            Outflight(settings.max_inflight), events, Wakeup(), threading.Event(), settings.keepalive
        )
        self._link.hold_acks = hold_acks
        self._thread = threading.Thread(
            target=self._run, name=f"mqtt-publisher-{settings.client_id}", daemon=True
        )
        self._encoder = PublishEncoder()
        self._connect_settings = SubscriberSettings(
            host=settings.host,
            port=settings.port,
            client_id=settings.client_id,
            filters=(),
            qos=1,
            keepalive=settings.keepalive,
            session_expiry=settings.session_expiry,
            username=settings.username,
            password=settings.password,
            tls=settings.tls,
        )

    # -- the caller's thread ----------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; tried again until the broker answers."""
        self._thread.start()

    def connected(self) -> bool:
        return self._link.online

    def publish(self, command: Command, *, wake: bool = True) -> int:
        """Queue ``command``'s PUBLISH for the network thread; returns its packet id. Raises
        :class:`CommandError` (``mqtt-rejected``) when it cannot be sent: it is then never sent.
        ``wake`` False: handed to the network thread at the next :meth:`wake`, so a burst of
        publishes takes the session's lock once and goes out in one write (woken at the first, the
        network thread took the GIL and wrote about three commands a time, and Mosquitto answered as
        many per read)."""
        head, tail = self._encoder.encode(command)
        limit = self._link.maximum_packet_size
        if limit is not None and (size := len(head) + (2 if command.qos else 0) + len(tail)) > limit:
            detail = f"the PUBLISH would be {size} bytes; the broker takes at most {limit}"
            raise CommandError("mqtt-rejected", detail, mqtt_topic=command.topic)
        mid = self._link.flight.stage(head, tail, command.qos)
        if wake:
            self.wake()
        return mid

    def wake(self) -> None:
        """Hand the publishes made with ``wake=False`` to the network thread, and wake it if it
        had nothing queued (one wake-up per burst: each costs the caller a hand-over of the GIL)."""
        if self._link.flight.commit():
            self._link.wakeup.wake()

    def forget(self, mids: Iterable[int]) -> None:
        """Drop these publishes from the session: never sent again (the relay gave up on them)."""
        self.wake()  # none is staged when the relay gives up; if one were, it is handed over first
        self._link.flight.forget(mids)

    def stop(self, *, end_session: bool) -> None:
        """Disconnect (ending the session at the broker when ``end_session``) and stop the thread."""
        link = self._link
        link.end_session = end_session
        link.stopping.set()
        link.wakeup.wake()
        if self._thread.is_alive():
            self._thread.join(self._connect_settings.connect_timeout + 10.0)
            if self._thread.is_alive():
                logger.warning("MQTT client %s: the network thread did not stop", self.settings.client_id)
                return
        link.wakeup.close()

    # -- the network thread -----------------------------------------------------------------------
    def _run(self) -> None:
        link, refusals, losses, clean = self._link, Backoff(), 0, True
        while not link.stopping.is_set():
            try:
                sock, connack, _, pending = connect(
                    self._connect_settings, _nothing, clean_start=clean, needs="the relay"
                )
            except (BrokerRefused, TlsRefused, TlsFilesUnusable) as exc:
                self._refused(refusals, exc)
                continue
            except MqttConnectError as exc:  # no CONNACK: the broker did not answer, as unreachable
                lost: object = Refused(str(exc))
            except OSError:
                lost = Refused("no answer (broker unreachable)")
            else:
                clean, losses = False, 0
                refusals.reset()
                try:
                    lost = serve(sock, connack, pending, link)
                finally:
                    sock.close()
                if lost is None:
                    return
            link.events.put(lost)
            link.stopping.wait(min(RECONNECT_MAX_S, RECONNECT_MIN_S * 2.0**losses))
            losses = min(losses + 1, 8)

    def _refused(self, refusals: Backoff, exc: BrokerRefused | TlsRefused | TlsFilesUnusable) -> None:
        """The broker refused the CONNECT or the TLS session: an event, then the refusals' backoff."""
        s = self.settings
        failure = refusal(exc, f"{s.host}:{s.port}")
        if failure is None:  # cannot be: each of these is a refusal
            raise exc
        wait = refusals.next(REFUSED_MIN_S if failure.retriable else REFUSED_MAX_S, REFUSED_MAX_S)
        self._link.events.put(Refused(exc.words, s.client_id, wait, failure))
        self._link.stopping.wait(wait)


def _nothing() -> None:
    """The connect step's loop-turn callback: this thread has no watchdog to tell."""

"""The relay's MQTT 5 publisher: commands encoded here, written in batches by its own network thread.

Why not paho: paho builds a Properties object and takes its locks per publish, writes each PUBLISH
with its own ``send`` and reads each PUBACK with several ``recv`` calls; the relay moved about
10,000 commands/s through it. Here :meth:`MqttPublisher.publish` encodes the PUBLISH
(:mod:`~mqtt_kafka_sync.mqtt.packets`), keeps it in the session
(:class:`~mqtt_kafka_sync.mqtt.outflight.Outflight`) under a packet id and wakes the network
thread; it never touches the socket. The network thread writes every queued PUBLISH with one
``send`` and takes every acknowledgement of one read together.

Same interface and events as the paho publisher it replaced:
:class:`~mqtt_kafka_sync.mqtt.events.Connected` (with the broker's Receive Maximum and Maximum
Packet Size), ``Refused``, ``Disconnected``, ``Acked`` on the caller's queue, which the
:class:`~mqtt_kafka_sync.mqtt.window.PublishWindow` reads.

- Connecting is the ingest subscriber's (:func:`~mqtt_kafka_sync.mqtt.connection.connect`: TCP or
  TLS with the ``mqtt.ssl.*`` files read at each connect, CONNECT, the CONNACK read in full);
  Clean Start on the first session of the process only, then resumed (``mqtt.session.expiry``).
- A refused CONNACK or TLS session waits capped exponential backoff with jitter
  (:data:`~mqtt_kafka_sync.mqtt.backoff.REFUSED_MIN_S` to :data:`~mqtt_kafka_sync.mqtt.backoff.REFUSED_MAX_S`,
  the cap from the start when not ``retriable``, so a refused certificate waits 30 to 60 s); an
  unreachable broker or a lost connection waits :data:`RECONNECT_MIN_S`, doubling to
  :data:`RECONNECT_MAX_S`, as paho did. A good CONNACK resets both.
- After a reconnect every unacknowledged exchange is continued (QoS 1/2 PUBLISH again with DUP,
  PUBREL for QoS 2 that got PUBREC), in order, before anything newer: the window's re-send gate
  (:mod:`~mqtt_kafka_sync.mqtt.resend`) relies on it.
- An answer that breaks the protocol (a PUBACK with a reason code PUBACK cannot carry, or with
  properties it may not carry) ends the connection with protocol error (0x82), worded in the
  ``Disconnected`` event's ``detail``: the window counts a failed attempt for what was in flight
  (:data:`~mqtt_kafka_sync.mqtt.reasons.REJECTS_WHAT_WAS_SENT`).
"""

from __future__ import annotations

import logging
import queue
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Iterable

from mqtt_kafka_sync.errors import CommandError, MqttConnectError, MqttError, MqttProtocolError
from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt import reasons
from mqtt_kafka_sync.mqtt.backoff import REFUSED_MAX_S, REFUSED_MIN_S, Backoff
from mqtt_kafka_sync.mqtt.connection import LOOP_TURN_MAX_S, BrokerRefused, ConnectionLost, connect
from mqtt_kafka_sync.mqtt.events import Acked, Connected, Disconnected, Refused
from mqtt_kafka_sync.mqtt.failures import Failure, connack_reason
from mqtt_kafka_sync.mqtt.keepalive import Keepalive
from mqtt_kafka_sync.mqtt.outflight import PROTOCOL_ERROR, Outflight, read_acks
from mqtt_kafka_sync.mqtt.publisher import Command, PublisherSettings, command_properties
from mqtt_kafka_sync.mqtt.subscriber_settings import SubscriberSettings
from mqtt_kafka_sync.mqtt.wakeup import Wakeup

logger = logging.getLogger(__name__)

RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 4.0
"""Waits before reconnecting after a connection ended or the broker did not answer (doubling from
the first to the cap), as paho waited."""
CLIENT = "mqtt-kafka-sync"
"""Who ended a connection, in :class:`~mqtt_kafka_sync.mqtt.events.Disconnected`'s words."""
READ_SIZE = 262_144
_UNSPECIFIED, _KEEPALIVE_TIMEOUT = 0x80, 0x8D
_MQTT311_CONNACK = {1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87}
"""A 3.1.1 CONNACK's return code read as its MQTT 5 twin (as paho reads it)."""
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class MqttPublisher:
    """Publishes :class:`Command`s; events go to ``events``, read by the relay thread."""

    def __init__(self, settings: PublisherSettings, events: queue.SimpleQueue[object]) -> None:
        self.settings = settings
        self._events = events
        self._flight = Outflight(settings.max_inflight)
        self._wakeup = Wakeup()
        self._stopping = threading.Event()
        self._end_session = False
        self._online = False
        self._max_packet_size: int | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"mqtt-publisher-{settings.client_id}", daemon=True
        )
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
        self._broker = f"{settings.host}:{settings.port}"

    # -- the caller's thread ----------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; tried again until the broker answers."""
        self._thread.start()

    def connected(self) -> bool:
        return self._online

    def publish(self, command: Command) -> int:
        """Queue ``command``'s PUBLISH; returns its packet id. Raises :class:`CommandError` when it
        cannot be sent (it is then never sent)."""
        topic, qos = command.topic, command.qos
        if not topic or "+" in topic or "#" in topic or qos not in (0, 1, 2):
            detail = f"not a PUBLISH MQTT allows: topic {topic!r} (empty, or with + or #), QoS {qos}"
            raise CommandError("mqtt-rejected", detail, mqtt_topic=topic)
        try:
            name = topic.encode("utf-8")
            if len(name) > 0xFFFF:
                raise ValueError(f"a topic of {len(name)} bytes does not fit MQTT's 65,535")
            tail = command_properties(command) + command.payload
        except ValueError as exc:
            raise CommandError(
                "mqtt-rejected", f"cannot encode the PUBLISH: {exc}", mqtt_topic=topic
            ) from None
        remaining = 2 + len(name) + (2 if qos else 0) + len(tail)
        head = b"%c%s%s%s" % (
            0x30 | qos << 1 | command.retain,
            p.encode_varint(remaining),
            len(name).to_bytes(2, "big"),
            name,
        )
        limit = self._max_packet_size
        if limit is not None and (size := len(head) + (2 if qos else 0) + len(tail)) > limit:
            detail = f"the PUBLISH would be {size} bytes; the broker takes at most {limit}"
            raise CommandError("mqtt-rejected", detail, mqtt_topic=topic)
        mid = self._flight.add(head, tail, qos)
        self._wakeup.wake()
        return mid

    def forget(self, mids: Iterable[int]) -> None:
        """Drop these publishes from the session: they are never sent again (the relay gave up on them)."""
        self._flight.forget(mids)

    def stop(self, *, end_session: bool) -> None:
        """Disconnect (ending the session at the broker when ``end_session``) and stop the thread."""
        self._end_session = end_session
        self._stopping.set()
        self._wakeup.wake()
        if self._thread.is_alive():
            self._thread.join(self._connect_settings.connect_timeout + 10.0)
            if self._thread.is_alive():
                logger.warning("MQTT client %s: the network thread did not stop", self.settings.client_id)
                return
        self._wakeup.close()

    # -- the network thread -----------------------------------------------------------------------
    def _run(self) -> None:
        refusals, losses = Backoff(), 0
        clean = True
        while not self._stopping.is_set():
            try:
                sock, connack, _, pending = connect(self._connect_settings, _nothing, clean_start=clean)
            except BrokerRefused as exc:
                self._refused(refusals, exc.code, None, retriable=exc.retriable)
                continue
            except MqttConnectError as exc:
                if hasattr(exc, "words"):  # TLS: refused, or our files unusable
                    self._refused(refusals, None, exc.words, retriable=exc.retriable)
                    continue
                wait, losses = _network_wait(losses)
                self._events.put(Refused(str(exc)))
                self._stopping.wait(wait)
                continue
            except OSError:
                wait, losses = _network_wait(losses)
                self._events.put(Refused("no answer (broker unreachable)"))
                self._stopping.wait(wait)
                continue
            clean, losses = False, 0
            refusals.reset()
            try:
                lost = self._session(sock, connack, pending)
            finally:
                self._online = False
                sock.close()
            if lost is None:
                return
            self._events.put(lost)
            wait, losses = _network_wait(losses)
            self._stopping.wait(wait)

    def _refused(
        self, refusals: Backoff, code: int | None, tls_words: str | None, *, retriable: bool
    ) -> None:
        """The broker refused the CONNECT (``code``) or the TLS session (``tls_words``): an event,
        then the refusals' backoff."""
        s, broker = self.settings, self._broker
        wait = refusals.next(REFUSED_MIN_S if retriable else REFUSED_MAX_S, REFUSED_MAX_S)
        if code is None:
            words = tls_words or ""
            failure = Failure("tls", 0, f"broker {broker}: TLS: {words}", retriable)
        else:
            code = _MQTT311_CONNACK.get(code, code)
            words = reasons.describe(code, reasons.CONNACK, needs="the relay")
            retriable = reasons.lookup(code, reasons.CONNACK).retriable
            failure = Failure(
                connack_reason(code), code, f"broker {broker} refused the connection: {words}", retriable
            )
        self._events.put(Refused(words, code, broker, s.client_id, wait, failure))
        self._stopping.wait(wait)

    def _session(self, sock: socket.socket, connack: p.Ack, pending: list[p.Packet]) -> Disconnected | None:
        """One accepted connection, until it ends: the event saying why (None: stopped)."""
        props = connack.properties
        receive_maximum = int(props.get(p.PROP_RECEIVE_MAXIMUM, 65535))  # type: ignore[call-overload]
        max_size = props.get(p.PROP_MAX_PACKET_SIZE)
        self._max_packet_size = max_size if isinstance(max_size, int) else None
        keepalive = Keepalive(int(props.get(p.PROP_SERVER_KEEPALIVE, self.settings.keepalive)))  # type: ignore[call-overload]
        out = bytearray()
        self._flight.reconnected(receive_maximum, out)
        self._online = True
        self._events.put(
            Connected(
                session_present=connack.session_present,
                receive_maximum=receive_maximum,
                maximum_qos=int(props.get(0x24, 2)),  # type: ignore[call-overload]
                retain_available=bool(props.get(0x25, 1)),
                maximum_packet_size=self._max_packet_size,
            )
        )
        for packet in pending:  # sent with the CONNACK: only a DISCONNECT is expected
            if isinstance(packet, p.Ack) and packet.kind == p.DISCONNECT:
                return _from_broker(packet.reason_codes[0])
        try:
            return _Loop(self, sock, keepalive).run(out)
        except ConnectionLost as exc:
            return Disconnected(str(exc), exc.code or _UNSPECIFIED, str(exc), by=CLIENT)
        except MqttProtocolError as exc:
            _say_protocol_error(sock)
            return Disconnected("protocol error", PROTOCOL_ERROR, str(exc), by=CLIENT)
        except (OSError, MqttError) as exc:
            return Disconnected(type(exc).__name__, _UNSPECIFIED, f"{type(exc).__name__}: {exc}", by=CLIENT)


class _Loop:
    """The network loop of one connection: write what is queued, read acknowledgements, keepalive."""

    def __init__(self, publisher: MqttPublisher, sock: socket.socket, keepalive: Keepalive) -> None:
        self.publisher = publisher
        self.sock = sock
        self.keepalive = keepalive
        self.inbox = b""
        self.buffer = memoryview(bytearray(READ_SIZE))
        self.tls = isinstance(sock, ssl.SSLSocket)

    def run(self, out: bytearray) -> Disconnected | None:
        pub, sock, keepalive, wakeup = self.publisher, self.sock, self.keepalive, self.publisher._wakeup
        sel = selectors.DefaultSelector()
        sel.register(wakeup.reader, selectors.EVENT_READ)
        sel.register(sock, selectors.EVENT_READ)
        writing = False
        keepalive.start()
        try:
            while not pub._stopping.is_set():
                self.write(out)
                if bool(out) != writing:
                    writing = bool(out)
                    sel.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0))
                timeout = keepalive.last_sent + keepalive.interval / 2 - time.monotonic()
                timeout = max(0.0, min(timeout, LOOP_TURN_MAX_S))
                if self.tls and sock.pending():  # type: ignore[attr-defined]  # decrypted, unseen by select
                    timeout = 0.0
                    if (lost := self.read(out)) is not None:
                        return lost
                for key, mask in sel.select(timeout):
                    if key.fileobj is wakeup.reader:
                        wakeup.drain()
                    elif mask & selectors.EVENT_READ and (lost := self.read(out)) is not None:
                        return lost
        finally:
            sel.close()
        sock.setblocking(True)
        sock.settimeout(5.0)
        sock.sendall(bytes(out) + p.encode_disconnect(0, 0 if pub._end_session else None))
        return None

    def write(self, out: bytearray) -> None:
        """Queue on ``out`` what may go now (and a PINGREQ when due), write what the socket takes."""
        pub, keepalive = self.publisher, self.keepalive
        done = pub._flight.take_writes(out)
        try:
            keepalive.check(out, reading=True)
        except ConnectionLost as exc:
            raise ConnectionLost(str(exc), _KEEPALIVE_TIMEOUT) from None
        if out:
            try:
                sent = self.sock.send(out)
            except _WOULD_BLOCK:
                sent = 0
            del out[:sent]
            keepalive.last_sent = time.monotonic()
        for mid in done:
            pub._events.put(Acked(mid, 0, ""))

    def read(self, out: bytearray) -> Disconnected | None:
        """Take what the broker sent: acknowledgements applied and answered, PUBREL queued on ``out``;
        the event when the broker sent DISCONNECT."""
        data, closed = self.receive()
        acks: list[tuple[int, int, int]] = []
        taken, disconnect, pong = read_acks(data, acks)
        self.inbox = data[taken:]
        if pong:
            self.keepalive.ping_sent_at = None
        if acks:
            events = self.publisher._events
            for mid, code in self.publisher._flight.answered(acks, out):
                events.put(Acked(mid, code, reasons.lookup(code).name if code >= 0x80 else ""))
        if disconnect is not None:
            return _from_broker(disconnect)
        if closed:
            raise ConnectionLost("broker closed the connection", _UNSPECIFIED)
        return None

    def receive(self) -> tuple[bytes, bool]:
        """The unparsed bytes (left over, then read now) and whether the broker closed the connection."""
        sock, buffer, total, closed = self.sock, self.buffer, 0, False
        while total < READ_SIZE:
            try:
                size = sock.recv_into(buffer[total:])
            except _WOULD_BLOCK:
                break
            except ssl.SSLEOFError:
                size = 0
            if not size:
                closed = True
                break
            total += size
            if not self.tls:
                break  # one read per turn over TCP; TLS returns a record (16 KB) per read
        return self.inbox + buffer[:total].tobytes(), closed


def _from_broker(code: int) -> Disconnected:
    return Disconnected(reasons.lookup(code, reasons.DISCONNECT).name, code, "", True, CLIENT)


def _say_protocol_error(sock: socket.socket) -> None:
    """Tell the broker why we end the connection (best effort: it may be gone already)."""
    try:
        sock.send(p.encode_disconnect(PROTOCOL_ERROR))
    except (OSError, ValueError):
        logger.debug("DISCONNECT (protocol error) not sent", exc_info=True)


def _network_wait(losses: int) -> tuple[float, int]:
    """The wait before reconnecting after ``losses`` failed or lost connections in a row (paho's
    schedule: 1 s, doubling to 4 s), and the new count."""
    return min(RECONNECT_MAX_S, RECONNECT_MIN_S * 2.0**losses), min(losses + 1, 8)


def _nothing() -> None:
    """The connect step's loop-turn callback: this thread has no watchdog."""

"""The network loop of one publishing connection (:class:`~mqtt_kafka_sync.mqtt.publisher.MqttPublisher`).

:func:`serve` runs on the publisher's network thread from an accepted CONNACK until the connection
ends: it continues the session's exchanges (:meth:`~mqtt_kafka_sync.mqtt.outflight.Outflight.reconnected`),
puts :class:`~mqtt_kafka_sync.mqtt.events.Connected` on the queue, then writes what waits (in one
``send``), reads acknowledgements (many per ``recv``, one ``Acks`` event for them), answers PUBREC with
PUBREL and keeps the keepalive (PINGREQ when quiet for half the interval, the connection given up
when no PINGRESP came within it). It returns the :class:`~mqtt_kafka_sync.mqtt.events.Disconnected`
that says why the connection ended, in the client's own words (``by`` ``mqtt-kafka-sync``): the
broker's DISCONNECT, the network, the keepalive (0x8D), or an answer that breaks the protocol
(0x82, after telling the broker so with a DISCONNECT).
"""

from __future__ import annotations

import logging
import queue
import selectors
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from mqtt_kafka_sync.errors import MqttError, MqttProtocolError
from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt import reasons
from mqtt_kafka_sync.mqtt.connection import LOOP_TURN_MAX_S, ConnectionLost
from mqtt_kafka_sync.mqtt.events import Acked, Acks, Connected, Disconnected
from mqtt_kafka_sync.mqtt.keepalive import Keepalive
from mqtt_kafka_sync.mqtt.outflight import PROTOCOL_ERROR, Outflight, read_acks
from mqtt_kafka_sync.mqtt.tls import WOULD_BLOCK, read_available
from mqtt_kafka_sync.mqtt.wakeup import Wakeup

logger = logging.getLogger(__name__)

CLIENT = "mqtt-kafka-sync"
"""Who ended a connection, in :class:`~mqtt_kafka_sync.mqtt.events.Disconnected`'s words."""
READ_SIZE = 262_144
"""Bytes asked of the socket per read."""
HOLD_S = 0.01
"""With :attr:`Link.hold_acks`, the longest a success waits to be told."""
GATHER_S = 0.0005
"""With :attr:`Link.hold_acks`, the pause after a read that brought acknowledgements while more are
due, so the next read takes more of them (docs/benchmarks.md, "Round 3 in the quiet sitting"; 1 ms
until session 8, when the relay's CPU per command fell and 0.5 ms moved more: "Session 8")."""
BURST_DIVISOR = 4
"""With :attr:`Link.hold_acks`, successes are told once ``1/BURST_DIVISOR`` of the window has
them: the size of the bursts the caller (the relay) publishes in."""
_UNSPECIFIED, _KEEPALIVE_TIMEOUT = 0x80, 0x8D
_MAXIMUM_QOS, _RETAIN_AVAILABLE = 0x24, 0x25


@dataclass
class Link:
    """What the publisher and its network thread share."""

    flight: Outflight
    events: queue.SimpleQueue[object]
    wakeup: Wakeup
    stopping: threading.Event
    keepalive: int
    """Our keepalive in seconds (a CONNACK's Server Keep Alive overrides it)."""
    end_session: bool = False
    """Stopping: the DISCONNECT ends the session at the broker."""
    online: bool = False
    """Between an accepted CONNACK and the end of that connection."""
    maximum_packet_size: int | None = None
    hold_acks: bool = False
    """Successes are told in batches of a quarter of the window (or when nothing else is
    unacknowledged, or :data:`HOLD_S` after the first), not per read: for a caller that publishes
    in such bursts anyway (the relay), each event it would wake for sooner only costs a hand-over."""


def serve(sock: socket.socket, connack: p.Ack, pending: list[p.Packet], link: Link) -> Disconnected | None:
    """One accepted connection, until it ends: the event saying why (None: stopped)."""
    props = connack.properties
    receive_maximum = _int(props, p.PROP_RECEIVE_MAXIMUM, 65535)
    size = props.get(p.PROP_MAX_PACKET_SIZE)
    link.maximum_packet_size = size if isinstance(size, int) else None
    keepalive = Keepalive(_int(props, p.PROP_SERVER_KEEPALIVE, link.keepalive))
    link.flight.reconnected(receive_maximum)
    link.online = True
    link.events.put(
        Connected(
            session_present=connack.session_present,
            receive_maximum=receive_maximum,
            maximum_qos=_int(props, _MAXIMUM_QOS, 2),
            retain_available=bool(_int(props, _RETAIN_AVAILABLE, 1)),
            maximum_packet_size=link.maximum_packet_size,
        )
    )
    try:
        for packet in pending:  # came with the CONNACK: only a DISCONNECT is expected
            if isinstance(packet, p.Ack) and packet.kind == p.DISCONNECT:
                return _from_broker(packet.reason_codes[0])
        return _Loop(link, sock, keepalive).run()
    except ConnectionLost as exc:
        return Disconnected(str(exc), exc.code or _UNSPECIFIED, str(exc), by=CLIENT)
    except MqttProtocolError as exc:
        _say_protocol_error(sock)
        return Disconnected("protocol error", PROTOCOL_ERROR, str(exc), by=CLIENT)
    except (OSError, MqttError) as exc:
        return Disconnected(type(exc).__name__, _UNSPECIFIED, f"{type(exc).__name__}: {exc}", by=CLIENT)
    finally:
        link.online = False


class _Loop:
    """The network loop of one connection: write what waits, read acknowledgements, keepalive."""

    def __init__(self, link: Link, sock: socket.socket, keepalive: Keepalive) -> None:
        self.link = link
        self.sock = sock
        self.keepalive = keepalive
        self.tls = isinstance(sock, ssl.SSLSocket)
        self.inbox = b""
        self.buffer = memoryview(bytearray(READ_SIZE))
        self.acked: list[int] = []
        """Successes not told yet (:attr:`Link.hold_acks`), since :attr:`acked_at` (monotonic)."""
        self.acked_at = 0.0
        self.gather = False
        """With :attr:`Link.hold_acks`: the last read brought acknowledgements and more are due."""

    def run(self) -> Disconnected | None:
        link, sock, keepalive, wakeup = self.link, self.sock, self.keepalive, self.link.wakeup
        sel = selectors.DefaultSelector()
        sel.register(wakeup.reader, selectors.EVENT_READ)
        sel.register(sock, selectors.EVENT_READ)
        writing = False
        keepalive.start()
        try:
            while not link.stopping.is_set():
                if self.write() != writing:
                    writing = not writing
                    sel.modify(sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0))
                now = time.monotonic()
                timeout = keepalive.last_sent + keepalive.interval / 2 - now
                if self.acked:
                    if now - self.acked_at >= HOLD_S:
                        self.tell_acked()
                    else:
                        timeout = min(timeout, self.acked_at + HOLD_S - now)
                timeout = max(0.0, min(timeout, LOOP_TURN_MAX_S))
                if self.tls and sock.pending():  # type: ignore[attr-defined]  # decrypted, unseen by select
                    timeout = 0.0
                    if (lost := self.read()) is not None:
                        return lost
                for key, mask in sel.select(timeout):
                    if key.fileobj is wakeup.reader:
                        wakeup.drain()
                    elif mask & selectors.EVENT_READ and (lost := self.read()) is not None:
                        return lost
                if self.gather:  # let more acknowledgements arrive before the next read
                    self.gather = False
                    self.write()  # the PUBRELs answering PUBRECs go first
                    time.sleep(GATHER_S)
        finally:
            sel.close()
            self.tell_acked()  # before the event that says why the connection ended
        last = bytes(link.flight.out) + p.encode_disconnect(0, 0 if link.end_session else None)
        sock.setblocking(True)
        sock.settimeout(5.0)
        sock.sendall(last)
        return None

    def write(self) -> bool:
        """Write what may go now (and a PINGREQ when due) as far as the socket takes it; returns
        whether bytes are left to write. (Only this thread touches :attr:`Outflight.out`: the
        lock is held for the queue, not for the ``send``.)"""
        flight, keepalive = self.link.flight, self.keepalive
        with flight.lock:
            done = flight.take_writes()
        out = flight.out
        try:
            keepalive.check(out, reading=True)
        except ConnectionLost as exc:
            raise ConnectionLost(str(exc), _KEEPALIVE_TIMEOUT) from None
        if out:
            try:
                sent = self.sock.send(out)
            except WOULD_BLOCK:
                sent = 0
            del out[:sent]
            keepalive.last_sent = time.monotonic()
        if done:
            self.link.events.put(Acks(done))
        return bool(out)

    def read(self) -> Disconnected | None:
        """Take what the broker sent: acknowledgements applied and answered (PUBREL for a PUBREC);
        the event when the broker sent DISCONNECT."""
        data, closed = self.receive()
        acks: list[tuple[int, int, int]] = []
        taken, disconnect, pong = read_acks(data, acks)
        self.inbox = data[taken:]
        if pong:
            self.keepalive.ping_sent_at = None
        if acks:
            flight = self.link.flight
            self.tell(flight.answered(acks))
            self.gather = self.link.hold_acks and flight.unanswered > 0
        if disconnect is not None:
            return _from_broker(disconnect)
        if closed:
            raise ConnectionLost("broker closed the connection", _UNSPECIFIED)
        return None

    def tell(self, ended: list[tuple[int, int]]) -> None:
        """The exchanges that ended as events: one :class:`Acks` per run of successes (held back
        with :attr:`Link.hold_acks`), an :class:`Acked` for each refusal, in the order the broker
        answered."""
        link = self.link
        if not self.acked:
            self.acked_at = time.monotonic()
        for mid, code in ended:
            if code < 0x80:
                self.acked.append(mid)
                continue
            self.tell_acked()  # a new list: the told one is the event's now
            link.events.put(Acked(mid, code, reasons.lookup(code).name))
        flight = link.flight
        if (
            not link.hold_acks
            or len(self.acked) >= max(1, flight.limit // BURST_DIVISOR)
            or not flight.unanswered
        ):
            self.tell_acked()

    def tell_acked(self) -> None:
        if self.acked:
            self.link.events.put(Acks(self.acked))
            self.acked = []

    def receive(self) -> tuple[bytes, bool]:
        """The unparsed bytes (left over, then read now) and whether the broker closed the connection."""
        total, closed = read_available(self.sock, self.buffer, records=self.tls)
        return self.inbox + self.buffer[:total].tobytes(), closed


def _int(props: p.Properties, pid: int, default: int) -> int:
    value = props.get(pid, default)
    return value if isinstance(value, int) else default


def _from_broker(code: int) -> Disconnected:
    return Disconnected(reasons.lookup(code, reasons.DISCONNECT).name, code, "", True, CLIENT)


def _say_protocol_error(sock: socket.socket) -> None:
    """Tell the broker why we end the connection (best effort: it may be gone already)."""
    try:
        sock.send(p.encode_disconnect(PROTOCOL_ERROR))
    except (OSError, ValueError):
        logger.debug("DISCONNECT (protocol error) not sent", exc_info=True)

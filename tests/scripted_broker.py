"""A misbehaving MQTT broker for tests: it answers exactly the packets its script says, nothing more.

:class:`ScriptedBroker` listens on 127.0.0.1 (port chosen by the OS) and runs ``script(conn,
index)`` on a thread for each connection it accepts (``index`` counts from 0). A script reads what
the client sends (:meth:`Conn.expect`) and writes raw packets (:meth:`Conn.send`), built with the
helpers below, which mirror what brokers were seen to answer:

- :func:`connack_v311`: an MQTT 3.1.1 CONNACK (Moquette answers an MQTT 5 CONNECT with code 1);
- :func:`connack`: an MQTT 5 CONNACK (with properties, e.g. Receive Maximum);
- :func:`suback`: one reason code per filter (0x91 packet identifier in use, 0x87 not authorized,
  1 for QoS 1 granted where QoS 2 was asked);
- :func:`puback_invalid`: a PUBACK with a reason code PUBACK cannot carry and the PUBLISH's
  properties echoed back (paho calls it a protocol error);
- :func:`publish`: a PUBLISH, with or without DUP (a redelivery).

Everything a connection received is kept in :attr:`ScriptedBroker.received`, and each connection's
start time in :attr:`ScriptedBroker.accepted`, so tests can count attempts in a time window.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mqtt_kafka_sync.mqtt import packets as p


@dataclass(frozen=True)
class Received:
    """One packet from the client: its type, flags (low nibble of the first byte) and body."""

    kind: int
    flags: int
    body: bytes

    @property
    def packet_id(self) -> int:
        """The packet id of a SUBSCRIBE, UNSUBSCRIBE or QoS 1/2 PUBLISH."""
        if self.kind == p.PUBLISH:
            topic_len = struct.unpack_from("!H", self.body)[0]
            return int(struct.unpack_from("!H", self.body, 2 + topic_len)[0])
        return int(struct.unpack_from("!H", self.body)[0])

    @property
    def publish_properties(self) -> bytes:
        """The encoded properties block (length prefix included) of a QoS 1/2 PUBLISH."""
        topic_len = struct.unpack_from("!H", self.body)[0]
        start = 2 + topic_len + 2
        length, end = p._read_varint(self.body, start)
        return self.body[start : end + length]

    def subscribe_filters(self) -> list[tuple[str, int]]:
        """(filter, QoS) of a SUBSCRIBE."""
        props_len, pos = p._read_varint(self.body, 2)
        pos += props_len
        out = []
        while pos < len(self.body):
            topic_filter, pos = p._read_str(self.body, pos)
            out.append((topic_filter, self.body[pos] & 0x03))
            pos += 1
        return out


class Conn:
    def __init__(self, sock: socket.socket, log: list[Received]) -> None:
        self.sock = sock
        self._buf = b""
        self._log = log

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, timeout: float = 5.0) -> Received | None:
        """The next packet from the client; None when it closed the connection or sent nothing."""
        deadline = time.monotonic() + timeout
        while True:
            packet = self._take()
            if packet is not None:
                self._log.append(packet)
                return packet
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, OSError):
                return None
            if not chunk:
                return None
            self._buf += chunk

    def expect(self, kind: int, timeout: float = 5.0) -> Received:
        """The next packet of type ``kind``, answering PINGREQs and skipping acks on the way."""
        while True:
            packet = self.read(timeout)
            if packet is None:
                raise ConnectionError(f"client sent no packet of type {kind}")
            if packet.kind == kind:
                return packet
            if packet.kind == p.PINGREQ:
                self.send(b"\xd0\x00")

    def serve(self, seconds: float) -> None:
        """Answer PINGREQs (and swallow everything else) for ``seconds`` or until the client leaves."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            packet = self.read(left)
            if packet is None:
                return
            if packet.kind == p.PINGREQ:
                self.send(b"\xd0\x00")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def _take(self) -> Received | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        header = p.fixed_header(buf, 0)
        if header is None:
            return None
        length, pos = header
        if len(buf) < pos + length:
            return None
        self._buf = buf[pos + length :]
        return Received(buf[0] >> 4, buf[0] & 0x0F, buf[pos : pos + length])


Script = Callable[[Conn, int], None]


class ScriptedBroker:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[Received] = []
        self.accepted: list[float] = []
        """``time.monotonic()`` of each accepted connection."""
        self.errors: list[BaseException] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[Conn] = []
        self._accepting = threading.Thread(target=self._accept, name="scripted-broker", daemon=True)
        self._accepting.start()

    def __enter__(self) -> ScriptedBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def packets(self, kind: int) -> list[Received]:
        return [r for r in list(self.received) if r.kind == kind]

    def close(self) -> None:
        self._stop.set()
        self._accepting.join(2.0)
        self._server.close()
        for conn in list(self._conns):
            conn.close()
        for thread in self._threads:
            thread.join(2.0)

    def _accept(self) -> None:
        index = 0
        while not self._stop.is_set():
            try:
                sock, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(time.monotonic())
            conn = Conn(sock, self.received)
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn, index), daemon=True)
            self._threads.append(thread)
            thread.start()
            index += 1

    def _serve(self, conn: Conn, index: int) -> None:
        try:
            self.script(conn, index)
        except (ConnectionError, OSError):
            pass  # the client went away: what the test looks at is what it did before
        except BaseException as exc:  # a broken script must fail the test, not vanish
            self.errors.append(exc)
        finally:
            conn.close()


# -- packets a broker sends -----------------------------------------------------------------------
def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + p.encode_varint(len(body)) + body


def connack_v311(code: int, session_present: bool = False) -> bytes:
    """An MQTT 3.1.1 CONNACK: no properties, a return code (1: unacceptable protocol version)."""
    return bytes((0x20, 2, int(session_present), code))


def connack(
    reason: int = 0, *, session_present: bool = False, properties: list[tuple[int, object]] | None = None
) -> bytes:
    """An MQTT 5 CONNACK."""
    return _packet(0x20, bytes((int(session_present), reason)) + p.encode_properties(properties or []))


def suback(packet_id: int, *codes: int) -> bytes:
    return _packet(0x90, struct.pack("!H", packet_id) + b"\x00" + bytes(codes))


def puback(packet_id: int, reason: int = 0) -> bytes:
    return _packet(0x40, struct.pack("!H", packet_id) + bytes((reason,)) + b"\x00")


def puback_invalid(packet_id: int, echoed_properties: bytes, reason: int = 0x01) -> bytes:
    """A PUBACK with a reason code only SUBACK may carry (0x01, granted QoS 1) and the PUBLISH's
    properties (correlation data, user properties) echoed, which PUBACK may not carry either."""
    return _packet(0x40, struct.pack("!H", packet_id) + bytes((reason,)) + echoed_properties)


def publish(topic: str, payload: bytes, *, qos: int, packet_id: int, dup: bool = False) -> bytes:
    body = p._str(topic) + (struct.pack("!H", packet_id) if qos else b"") + b"\x00" + payload
    return _packet((p.PUBLISH << 4) | (0x08 if dup else 0) | (qos << 1), body)


def accept(conn: Conn, *, session_present: bool = False) -> Received:
    """Read the CONNECT, answer a plain MQTT 5 CONNACK; returns the CONNECT."""
    connect = conn.expect(p.CONNECT)
    conn.send(connack(session_present=session_present))
    return connect

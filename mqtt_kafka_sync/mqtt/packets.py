"""The subset of the MQTT 5 wire format the ingest subscriber speaks.

Encoders return ``bytes`` ready to write; :class:`PacketReader` splits a byte stream into packets
and decodes the ones a subscriber receives. Property handling covers what brokers send to a
subscriber; unknown property ids are a protocol error, as the specification requires. The relay's
publisher encodes its PUBLISHes itself (``mqtt/publisher.PublishEncoder``) with this module's
:func:`encode_varint`, :func:`encode_binary` and property ids, and the test brokers split packets with
:func:`fixed_header`.

Why over 350 lines: this is one thing, the wire format, and its encoders and decoders share the
property table (:data:`_PROP_KIND`) and the primitives (variable byte integers, strings); the
decoded packet types are imported from here by every path that reads MQTT.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

from mqtt_kafka_sync.errors import MqttProtocolError

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15

PINGREQ_PACKET = b"\xc0\x00"

# Property identifiers (MQTT 5, section 2.2.2.2) and how each is encoded.
PROP_PAYLOAD_FORMAT, PROP_MESSAGE_EXPIRY, PROP_CONTENT_TYPE = 0x01, 0x02, 0x03
PROP_RESPONSE_TOPIC, PROP_CORRELATION_DATA, PROP_SUBSCRIPTION_ID = 0x08, 0x09, 0x0B
PROP_SESSION_EXPIRY, PROP_ASSIGNED_CLIENT_ID, PROP_SERVER_KEEPALIVE = 0x11, 0x12, 0x13
PROP_REASON_STRING, PROP_RECEIVE_MAXIMUM, PROP_TOPIC_ALIAS = 0x1F, 0x21, 0x23
PROP_WILL_DELAY, PROP_USER_PROPERTY, PROP_MAX_PACKET_SIZE = 0x18, 0x26, 0x27

_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
_PROP_KIND: dict[int, int] = {
    0x01: _BYTE,
    0x02: _U32,
    0x03: _STR,
    0x08: _STR,
    0x09: _BIN,
    0x0B: _VARINT,
    0x11: _U32,
    0x12: _STR,
    0x13: _U16,
    0x15: _STR,
    0x16: _BIN,
    0x17: _BYTE,
    0x18: _U32,
    0x19: _BYTE,
    0x1A: _STR,
    0x1C: _STR,
    0x1F: _STR,
    0x21: _U16,
    0x22: _U16,
    0x23: _U16,
    0x24: _BYTE,
    0x25: _BYTE,
    0x26: _PAIR,
    0x27: _U32,
    0x28: _BYTE,
    0x29: _BYTE,
    0x2A: _BYTE,
}

Properties = dict[int, object]
"""Decoded properties: id -> value; user properties (0x26) as a list of (name, value) pairs."""


def encode_varint(value: int) -> bytes:
    if value < 0x80:  # most lengths: one byte
        return _ONE_BYTE[value]
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


_ONE_BYTE = tuple(bytes((n,)) for n in range(0x80))
_U16_PACK, _U32_PACK = struct.Struct("!H").pack, struct.Struct("!I").pack


def _str(text: str) -> bytes:
    return encode_binary(text.encode("utf-8"))


def encode_binary(raw: bytes) -> bytes:
    """``raw`` as an MQTT string or binary: its two-byte length, then itself. Raises ValueError when
    it is longer than MQTT allows."""
    if len(raw) > 0xFFFF:
        raise ValueError(f"a string or property of {len(raw)} bytes does not fit MQTT's 65,535")
    return _U16_PACK(len(raw)) + raw


def encode_properties(props: Sequence[tuple[int, object]]) -> bytes:
    """``props`` as a property block, its length first (CONNECT and its will, SUBSCRIBE); the common
    kinds come first and each property is one ``%`` format."""
    body = b""
    for pid, value in props:
        kind = _PROP_KIND[pid]
        if kind in (_BIN, _STR):
            raw = bytes(value) if kind == _BIN else str(value).encode("utf-8")  # type: ignore[call-overload]
            body += b"%c%s" % (pid, encode_binary(raw))
        elif kind == _U32:
            body += b"%c%s" % (pid, _U32_PACK(value))
        elif kind == _PAIR:
            name, val = cast(tuple[str, str], value)
            body += b"%c%s%s" % (pid, _str(name), _str(val))
        elif kind == _BYTE:
            body += b"%c%c" % (pid, int(value))  # type: ignore[call-overload]
        elif kind == _U16:
            body += b"%c%s" % (pid, _U16_PACK(value))
        else:
            body += b"%c%s" % (pid, encode_varint(int(value)))  # type: ignore[call-overload]
    return encode_varint(len(body)) + body


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + encode_varint(len(body)) + body


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    delay_seconds: int = 0


def encode_connect(
    client_id: str,
    *,
    keepalive: int,
    clean_start: bool,
    session_expiry: int,
    receive_maximum: int,
    username: str | None = None,
    password: str | None = None,
    will: Will | None = None,
) -> bytes:
    flags = 0x02 if clean_start else 0x00
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    props = encode_properties(
        [(PROP_SESSION_EXPIRY, session_expiry), (PROP_RECEIVE_MAXIMUM, receive_maximum)]
    )
    body = _str("MQTT") + bytes((5, flags)) + struct.pack("!H", keepalive) + props + _str(client_id)
    if will is not None:
        will_delay = encode_properties([(PROP_WILL_DELAY, will.delay_seconds)])
        body += will_delay + _str(will.topic) + encode_binary(will.payload)
    if username is not None:
        body += _str(username)
    if password is not None:
        body += encode_binary(password.encode("utf-8"))
    return _packet(CONNECT << 4, body)


RETAIN_SEND_NEVER = 2
"""Subscription option Retain Handling 2: no retained messages at subscribe."""


def encode_subscribe(
    packet_id: int, filters: Sequence[tuple[str, int]], *, retain_handling: int = 0
) -> bytes:
    """``filters`` as (filter, qos). Options carry QoS and Retain Handling only: No Local must be 0
    on shared subscriptions."""
    options = retain_handling << 4
    body = (
        struct.pack("!H", packet_id)
        + b"\x00"
        + b"".join(_str(f) + bytes((qos | options,)) for f, qos in filters)
    )
    return _packet((SUBSCRIBE << 4) | 0x02, body)


def encode_unsubscribe(packet_id: int, filters: Sequence[str]) -> bytes:
    body = struct.pack("!H", packet_id) + b"\x00" + b"".join(_str(f) for f in filters)
    return _packet((UNSUBSCRIBE << 4) | 0x02, body)


def encode_publish(topic: str, payload: bytes, *, qos: int, retain: bool, packet_id: int = 0) -> bytes:
    body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"") + b"\x00" + payload
    return _packet((PUBLISH << 4) | (qos << 1) | (1 if retain else 0), body)


_ACK_FIRST_BYTE = {PUBACK: 0x40, PUBREC: 0x50, PUBREL: 0x62, PUBCOMP: 0x70}


def encode_ack(kind: int, packet_id: int) -> bytes:
    """PUBACK/PUBREC/PUBREL/PUBCOMP with reason Success (the short 2-byte form)."""
    return bytes((_ACK_FIRST_BYTE[kind], 2, packet_id >> 8, packet_id & 0xFF))


PUBACK_WORD, PUBREC_WORD = 0x4002_0000, 0x5002_0000
"""A short PUBACK or PUBREC as one big-endian 32-bit word, its packet id in the low 16 bits."""


def encode_acks(words: list[int]) -> bytes:
    """Many short acknowledgements at once: each word is :data:`PUBACK_WORD` or :data:`PUBREC_WORD`
    ORed with a packet id (what :func:`encode_ack` writes, one ``struct.pack`` for a whole batch)."""
    return struct.pack(f">{len(words)}I", *words)


def encode_disconnect(reason: int = 0, session_expiry: int | None = None) -> bytes:
    if session_expiry is None and reason == 0:
        return b"\xe0\x00"
    props = encode_properties([(PROP_SESSION_EXPIRY, session_expiry)] if session_expiry is not None else [])
    return _packet(DISCONNECT << 4, bytes((reason,)) + props)


@dataclass(slots=True)
class Publish:
    """A PUBLISH received from the broker."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    packet_id: int
    user_properties: list[tuple[str, str]] = field(default_factory=list)
    properties: Properties = field(default_factory=dict)


@dataclass(frozen=True)
class Ack:
    """CONNACK, SUBACK, UNSUBACK, PUBACK/PUBREC/PUBREL/PUBCOMP or DISCONNECT, decoded."""

    kind: int
    packet_id: int = 0
    reason_codes: tuple[int, ...] = (0,)
    session_present: bool = False
    properties: Properties = field(default_factory=dict)


Packet = Publish | Ack


def decode_properties(data: bytes, pos: int) -> tuple[Properties, int]:
    length, pos = _read_varint(data, pos)
    end = pos + length
    props: Properties = {}
    while pos < end:
        pid = data[pos]
        pos += 1
        kind = _PROP_KIND.get(pid)
        value: object
        if kind is None:
            raise MqttProtocolError(f"unknown MQTT property id 0x{pid:02x}")
        if kind == _BYTE:
            value, pos = data[pos], pos + 1
        elif kind == _U16:
            value, pos = (data[pos] << 8) | data[pos + 1], pos + 2
        elif kind == _U32:
            value, pos = struct.unpack_from("!I", data, pos)[0], pos + 4
        elif kind == _VARINT:
            value, pos = _read_varint(data, pos)
        elif kind in (_STR, _BIN):
            n = (data[pos] << 8) | data[pos + 1]
            raw = bytes(data[pos + 2 : pos + 2 + n])
            value, pos = (raw.decode("utf-8") if kind == _STR else raw), pos + 2 + n
        else:
            name, pos = _read_str(data, pos)
            val, pos = _read_str(data, pos)
            pairs = props.setdefault(PROP_USER_PROPERTY, [])
            pairs.append((name, val))  # type: ignore[attr-defined]
            continue
        props[pid] = value
    if pos != end:
        raise MqttProtocolError("MQTT properties overrun their declared length")
    return props, end


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    for _ in range(4):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise MqttProtocolError("malformed variable byte integer")


def _read_str(data: bytes, pos: int) -> tuple[str, int]:
    n = (data[pos] << 8) | data[pos + 1]
    return bytes(data[pos + 2 : pos + 2 + n]).decode("utf-8"), pos + 2 + n


def fixed_header(data: bytes, pos: int) -> tuple[int, int] | None:
    """The remaining length of the packet starting at ``data[pos]``, and where its body starts;
    None while its fixed header is incomplete. Raises :class:`MqttProtocolError` when the length
    takes more than four bytes."""
    try:
        return _read_varint(data, pos + 1)
    except IndexError:  # not all of the header has arrived
        return None


class PacketReader:
    """Incremental parser: :meth:`feed` received bytes, then take complete packets from :meth:`packets`.

    ``packets`` may be left early (flow control): what was not taken stays buffered, in order, for
    the next call.
    """

    def __init__(self, max_packet_size: int = 268_435_455) -> None:
        self._buf = b""
        self._pos = 0
        self._max = max_packet_size
        self.stopped_early = False
        """True when the last :meth:`packets` was left with complete packets still buffered."""

    def feed(self, chunk: bytes) -> None:
        self._buf = self._buf[self._pos :] + chunk if self._pos < len(self._buf) else chunk
        self._pos = 0

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def packets(self) -> Iterator[Packet]:
        """Every complete packet buffered. Runs once per packet received: a remaining length below
        16,384 (one or two bytes, as for most PUBLISH packets) is read inline, and a PUBLISH goes
        straight to :func:`_decode_publish`."""
        data = self._buf
        size = len(data)
        pos = self._pos
        self.stopped_early = True
        while size - pos >= 2:
            length = data[pos + 1]
            if length < 0x80:
                hdr = pos + 2
            elif size - pos >= 3 and data[pos + 2] < 0x80:  # 128 to 16,383 bytes
                length = (length & 0x7F) | (data[pos + 2] << 7)
                hdr = pos + 3
            else:
                header = fixed_header(data, pos)
                if header is None:
                    break
                length, hdr = header
            if length > self._max:
                raise MqttProtocolError(f"packet of {length} bytes exceeds the maximum {self._max}")
            end = hdr + length
            if end > size:
                break
            first = data[pos]
            self._pos = pos = end
            if first >> 4 == PUBLISH:
                yield _decode_publish(first, data, hdr, end)
            else:
                yield _decode(first, data, hdr, end)
        self.stopped_early = False

    def feed_all(self, chunk: bytes) -> list[Packet]:
        """:meth:`feed`, then every complete packet (for callers without flow control)."""
        self.feed(chunk)
        return list(self.packets())


_NO_USER_PROPERTIES: list[tuple[str, str]] = []
_NO_PROPERTIES: Properties = {}
"""Shared by every decoded PUBLISH without properties (nearly all; never mutated): an empty list and
dict of its own cost each message in flight 120 bytes (docs/benchmarks.md, issue 16)."""


def _decode_publish(first: int, data: bytes, start: int, end: int) -> Publish:
    qos = (first >> 1) & 0x03
    pos = start + 2 + ((data[start] << 8) | data[start + 1])
    topic = data[start + 2 : pos].decode("utf-8")
    packet_id = 0
    if qos:
        packet_id = (data[pos] << 8) | data[pos + 1]
        pos += 2
    if data[pos] == 0:  # no properties: nearly every message
        return Publish(
            topic,
            data[pos + 1 : end],
            qos,
            first & 1 == 1,
            first & 0x08 == 8,
            packet_id,
            _NO_USER_PROPERTIES,
            _NO_PROPERTIES,
        )
    props, pos = decode_properties(data, pos)
    user = cast(list[tuple[str, str]], props.pop(PROP_USER_PROPERTY, _NO_USER_PROPERTIES))
    return Publish(topic, data[pos:end], qos, first & 1 == 1, first & 0x08 == 8, packet_id, user, props)


def _decode(first: int, data: bytes, start: int, end: int) -> Packet:
    kind = first >> 4
    if kind == PUBLISH:
        return _decode_publish(first, data, start, end)
    body = data[start:end]
    if kind in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        reason = body[2] if len(body) > 2 else 0
        return Ack(kind, (body[0] << 8) | body[1], (reason,))
    if kind == CONNACK:
        props = decode_properties(body, 2)[0] if len(body) > 2 else {}
        return Ack(kind, 0, (body[1],), bool(body[0] & 1), props)
    if kind in (SUBACK, UNSUBACK):
        props, pos = decode_properties(body, 2)
        return Ack(kind, (body[0] << 8) | body[1], tuple(body[pos:]), False, props)
    if kind == PINGRESP:
        return Ack(kind)
    if kind == DISCONNECT:
        reason = body[0] if len(body) else 0
        props = decode_properties(body, 1)[0] if len(body) > 1 else {}
        return Ack(kind, 0, (reason,), False, props)
    raise MqttProtocolError(f"unexpected MQTT packet type {kind} from the broker")

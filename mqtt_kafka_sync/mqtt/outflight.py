"""The publisher's side of an MQTT 5 session: publishes handed over and not yet acknowledged, in order.

:class:`Outflight` is shared by the thread that publishes (:meth:`Outflight.stage` a burst of
publishes, then :meth:`Outflight.commit` it; :meth:`Outflight.forget`) and the publisher's network
thread (everything else), under one lock taken once per call (once per burst for the publishes),
and once per batch of acknowledgements. It keeps, per packet id, the encoded
PUBLISH (the parts before and after the packet id, written around it, never joined in memory) and
where its exchange stands:

- ``QUEUED``: handed over, not written on this connection yet (the network thread writes queued
  publishes in order while fewer than :attr:`Outflight.limit` are unacknowledged on the wire:
  ``min(mqtt.max.inflight.messages, the broker's Receive Maximum)``);
- ``SENT``: written, waiting for PUBACK (QoS 1) or PUBREC (QoS 2);
- ``RELEASING``: QoS 2, PUBREC came and PUBREL was written, waiting for PUBCOMP.

After a reconnect (:meth:`Outflight.reconnected`) every unacknowledged exchange is continued as
MQTT 5 (4.4) asks and paho does: a QoS 1/2 PUBLISH not yet acknowledged is written again with DUP,
a QoS 2 exchange that got its PUBREC is continued with PUBREL; all in the order they were handed
over. A QoS 0 publish is answered as soon as it is written (there is nothing else to wait for).

:func:`read_acks` splits received bytes into the acknowledgements a publisher may receive and
rejects anything else as a protocol error (:class:`Malformed`, reason code 0x82).
"""

from __future__ import annotations

import sys
import threading
from array import array
from collections import deque
from collections.abc import Iterable
from itertools import repeat

from mqtt_kafka_sync.errors import MqttProtocolError
from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt import reasons

QUEUED, SENT, RELEASING = 0, 1, 2
PROTOCOL_ERROR = 0x82
"""The reason code of a connection we end because the broker's answer breaks the protocol."""

_PUBACK_CODES = frozenset({0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99})
_VALID_CODES = {p.PUBACK: _PUBACK_CODES, p.PUBREC: _PUBACK_CODES, p.PUBCOMP: frozenset({0x00, 0x92})}
"""The reason codes each acknowledgement may carry (MQTT 5, 3.4.2.1, 3.5.2.1, 3.7.2.1)."""
_ACK_PROPERTIES = frozenset({p.PROP_REASON_STRING, p.PROP_USER_PROPERTY})
_NAMES = {p.PUBACK: "PUBACK", p.PUBREC: "PUBREC", p.PUBCOMP: "PUBCOMP", p.DISCONNECT: "DISCONNECT"}


class Malformed(MqttProtocolError):
    """The broker sent what a publisher cannot accept; the connection ends with protocol error (0x82)."""


class _Entry:
    __slots__ = ("dup", "head", "qos", "state", "tail")

    def __init__(self, head: bytes, tail: bytes, qos: int) -> None:
        self.head = head
        """The PUBLISH up to its packet id (all of it at QoS 0, which has none)."""
        self.tail = tail
        """The PUBLISH after its packet id: written after it, never joined to it in memory."""
        self.qos = qos
        self.state = QUEUED
        self.dup = False
        """Written on an earlier connection: written again with the DUP flag (QoS 1/2)."""


class Outflight:
    """See the module docstring."""

    def __init__(self, limit: int) -> None:
        self.lock = threading.Lock()
        self.limit = limit
        """PUBLISH/PUBREL exchanges that may be unacknowledged on the wire at once."""
        self.out = bytearray()
        """Bytes to write on this connection, in order (the network thread's alone)."""
        self._max_inflight = limit
        self._entries: dict[int, _Entry] = {}
        self._queue: deque[int] = deque()
        self._staged: list[tuple[int, _Entry]] = []
        """Publishes given packet ids and not handed over yet (the publishing thread's alone)."""
        self._on_wire = 0
        self._last_id = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def unanswered(self) -> int:
        """Exchanges written on this connection and not answered yet (network thread)."""
        return self._on_wire

    def stage(self, head: bytes, tail: bytes, qos: int) -> int:
        """Keep a PUBLISH (``head`` up to the packet id, ``tail`` after it) under a new packet id,
        handed over at the next :meth:`commit`, behind those staged before. The publishing thread
        only, without the lock: packet ids are taken there alone (the network thread only frees
        them), so a burst costs one lock, not one per publish."""
        entries = self._entries
        mid = self._last_id % 65535 + 1
        if mid in entries:
            mid = self._new_id()
        self._last_id = mid
        self._staged.append((mid, _Entry(head, tail, qos)))
        return mid

    def commit(self) -> bool:
        """Hand the staged publishes to the network thread, in order; returns whether its queue was
        empty (else it was told already, or waits for acknowledgements to write more), False when
        nothing was staged. The publishing thread."""
        staged = self._staged
        if not staged:
            return False
        self._staged = []
        with self.lock:
            self._entries.update(staged)
            queue = self._queue
            first = not queue
            queue.extend([mid for mid, _ in staged])
        return first

    def forget(self, mids: Iterable[int]) -> None:
        """Drop these exchanges: they are never written again. Any thread."""
        with self.lock:
            for mid in mids:
                entry = self._entries.pop(mid, None)
                if entry is not None and entry.state != QUEUED and entry.qos:
                    self._on_wire -= 1

    def take_writes(self) -> list[int]:
        """Append the queued publishes that may go now to :attr:`out`; returns the QoS 0 ones
        among them (answered once written). Network thread, :attr:`lock` held."""
        done: list[int] = []
        queue, entries, out = self._queue, self._entries, self.out
        while queue and self._on_wire < self.limit:
            entry = entries.get(mid := queue.popleft())
            if entry is None or entry.state != QUEUED:
                continue  # forgotten, or a PUBREL already written by reconnected()
            if not entry.qos:
                out += entry.head
                out += entry.tail
                del entries[mid]
                done.append(mid)
                continue
            start = len(out)
            out += entry.head
            if entry.dup:
                out[start] |= 0x08
            out += mid.to_bytes(2, "big")
            out += entry.tail
            entry.state = SENT
            self._on_wire += 1
        return done

    def reconnected(self, receive_maximum: int) -> None:
        """A new connection: continue every exchange, in order (see the module docstring); PUBRELs
        go to :attr:`out` now, PUBLISHes are queued again. Network thread."""
        with self.lock:
            self.limit = max(1, min(self._max_inflight, receive_maximum))
            self._on_wire = 0
            self.out = out = bytearray()
            queue: deque[int] = deque()
            for mid, entry in self._entries.items():
                if entry.state == RELEASING:
                    out += p.encode_ack(p.PUBREL, mid)
                    self._on_wire += 1
                    continue
                if entry.state == SENT:
                    entry.state, entry.dup = QUEUED, True
                queue.append(mid)
            self._queue = queue

    def answered(self, acks: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
        """Apply (kind, packet id, reason code) acknowledgements; PUBRELs to write go to :attr:`out`.
        Returns (packet id, reason code) of each exchange that ended. Network thread."""
        ended: list[tuple[int, int]] = []
        with self.lock:
            entries, out = self._entries, self.out
            for kind, mid, code in acks:
                entry = entries.get(mid)
                if entry is None or entry.state == QUEUED:
                    continue  # forgotten, or an answer from before a reconnect
                if kind == p.PUBREC and code < 0x80:
                    if entry.qos != 2:
                        raise Malformed(f"received a PUBREC for QoS {entry.qos} packet id {mid}")
                    if entry.state == SENT:
                        entry.state = RELEASING
                    out += p.encode_ack(p.PUBREL, mid)
                    continue
                if (kind == p.PUBACK) != (entry.qos == 1) or (kind == p.PUBCOMP and entry.state != RELEASING):
                    raise Malformed(f"received a {_NAMES[kind]} out of turn for packet id {mid}")
                del entries[mid]
                self._on_wire -= 1
                ended.append((mid, code))
        return ended

    def _new_id(self) -> int:
        entries, mid = self._entries, self._last_id
        for _ in range(65535):
            mid = mid % 65535 + 1
            if mid not in entries:
                self._last_id = mid
                return mid
        raise RuntimeError("65,535 publishes unacknowledged: no packet id left")


def read_acks(data: bytes, acks: list[tuple[int, int, int]]) -> tuple[int, int | None, bool]:
    """Append every complete PUBACK/PUBREC/PUBCOMP in ``data`` to ``acks`` as (kind, packet id,
    reason code); returns how many bytes were taken, a DISCONNECT's reason code (None: none came)
    and whether a PINGRESP came. Raises :class:`Malformed` for anything a publisher cannot receive."""
    size = len(data)
    if size and not size & 3 and _plain_acks(data, size >> 2, acks):
        return size, None, False
    pos, disconnect, pong = 0, None, False
    while size - pos >= 2:
        header = p.fixed_header(data, pos)
        if header is None:
            break
        length, start = header
        end = start + length
        if end > size:
            break
        first, kind = data[pos], data[pos] >> 4
        pos = end
        if kind in _VALID_CODES and first & 0x0F == 0 and length >= 2:
            code = data[start + 2] if length > 2 else 0
            _check_ack(kind, data, start, end, code)
            acks.append((kind, (data[start] << 8) | data[start + 1], code))
        elif kind == p.PINGRESP and length == 0:
            pong = True
        elif kind == p.DISCONNECT:
            disconnect = data[start] if length else 0
            break
        else:
            raise Malformed(f"received a packet of type {kind} (flags 0x{first & 0x0F:X}, {length} bytes)")
    return pos, disconnect, pong


def _plain_acks(data: bytes, count: int, acks: list[tuple[int, int, int]]) -> bool:
    """The usual read, ``count`` PUBACK/PUBREC/PUBCOMP of 4 bytes each (success: no reason code, no
    properties), appended to ``acks`` without a Python step per packet; False (nothing appended)
    when ``data`` is anything else."""
    kinds = data[0::4]
    if data[1::4] != b"\x02" * count or kinds.translate(None, _PLAIN_KINDS):
        return False
    words = array("H", data)
    if sys.byteorder == "little":
        words.byteswap()
    acks += zip(kinds.translate(_KIND_OF), words[1::2], repeat(0, count), strict=True)
    return True


_PLAIN_KINDS = bytes((p.PUBACK << 4, p.PUBREC << 4, p.PUBCOMP << 4))
_KIND_OF = bytes(n >> 4 for n in range(256))
"""A fixed header's first byte -> its packet type, for ``bytes.translate``."""


def _check_ack(kind: int, data: bytes, start: int, end: int, code: int) -> None:
    name = _NAMES[kind]
    if code not in _VALID_CODES[kind]:
        meaning = reasons.lookup(code).name
        raise Malformed(
            f"received a malformed {name}: reason code 0x{code:02X} ({meaning}) is not one {name} may carry"
        )
    if end - start > 3:
        try:
            props, props_end = p.decode_properties(data[:end], start + 3)
        except (MqttProtocolError, IndexError) as exc:
            raise Malformed(f"received a malformed {name}: its properties do not decode ({exc})") from None
        unexpected = sorted(set(props) - _ACK_PROPERTIES)
        if unexpected or props_end != end:
            listed = ", ".join(f"0x{pid:02X}" for pid in unexpected) or "bytes after them"
            raise Malformed(f"received a malformed {name}: properties it may not carry ({listed})")

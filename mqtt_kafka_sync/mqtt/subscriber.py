"""A lean MQTT 5 subscriber that acknowledges only when told to: its network loop and flow window.

Why not paho here: paho sends PUBREC for a QoS 2 message the moment it arrives (so a crash before
Kafka confirms loses it), and reads each packet with several small ``recv`` calls under a lock.
This client reads in large chunks on one network thread, hands each PUBLISH to a handler, and sends
PUBACK (QoS 1) or PUBREC (QoS 2) only when :meth:`MqttSubscriber.ack` is called, which any thread
may do. Acks carry the connection *generation* they belong to: an ack for a message received on an
earlier connection is dropped, because the broker re-sends that message on the new one and its
packet id may since name another message.

Every broker answer is read, never guessed at (:mod:`mqtt_kafka_sync.mqtt.reasons` words them).
The subscriber's parts, one job each:

- :mod:`~mqtt_kafka_sync.mqtt.connection`: CONNECT, the CONNACK and its refusals, how long to wait
  before reconnecting (:mod:`~mqtt_kafka_sync.mqtt.backoff` draws the waits).
- :mod:`~mqtt_kafka_sync.mqtt.subscriptions`: SUBSCRIBE, every SUBACK code per filter, the refresh.
- :mod:`~mqtt_kafka_sync.mqtt.keepalive` (PINGREQ, PINGRESP) and :mod:`~mqtt_kafka_sync.mqtt.wakeup`
  (other threads waking the network thread).
- this module: the public API, the life of each connection, the network loop, the flow window
  (Receive Maximum, in messages and bytes) and the dispatch of packets. Redeliveries (DUP, or a
  packet id left unacknowledged on the previous connection) are counted in
  :attr:`MqttSubscriber.redeliveries`. Over TLS (:mod:`~mqtt_kafka_sync.mqtt.tls`) the loop reads
  with :meth:`MqttSubscriber._read_tls`, chosen once per connection, so a ``tcp://`` read does no
  extra work.

Why over 350 lines: every PUBLISH passes through the loop, the flow window and the dispatch
(``_take_packets``, ``_window_full``), and every acknowledgement through
``_collect_outgoing``; they share one object's state so that each message costs no more attribute
look-ups or calls than it must, and the API and the connection's life set that same state.
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Protocol

from mqtt_kafka_sync.errors import MqttError, MqttProtocolError
from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt.backoff import Backoff
from mqtt_kafka_sync.mqtt.connection import (
    HEALTHY_S,
    LOOP_TURN_MAX_S,
    RECONNECT_REQUESTED,
    SESSION_TAKEN_OVER,
    ConnectionLost,
    Reconnects,
    connect,
)
from mqtt_kafka_sync.mqtt.failures import Failures
from mqtt_kafka_sync.mqtt.keepalive import Keepalive
from mqtt_kafka_sync.mqtt.subscriber_settings import LOGGER_NAME, SubscriberSettings
from mqtt_kafka_sync.mqtt.subscriptions import Subscriptions
from mqtt_kafka_sync.mqtt.tls import WOULD_BLOCK, read_available
from mqtt_kafka_sync.mqtt.wakeup import Wakeup

__all__ = ["Backoff", "MessageHandler", "MqttSubscriber", "SubscriberSettings", "message_bytes"]
"""What other modules and the tests take from here (``Backoff`` and ``SubscriberSettings`` live in
their own modules since the split)."""

logger = logging.getLogger(LOGGER_NAME)

READ_SIZE = 262_144
"""Bytes asked of the socket per read."""


class MessageHandler(Protocol):
    """What the subscriber calls, always on its network thread. Keep each call short."""

    def on_connected(self, generation: int, session_present: bool) -> None: ...

    def on_message(self, message: p.Publish, generation: int) -> None: ...

    def on_disconnected(self, generation: int, reason: str) -> None: ...

    def on_tick(self) -> float | None:
        """Called on every turn of the network loop; returns how long the loop may sleep at most."""
        ...


class MqttSubscriber:
    """Keeps one persistent MQTT session subscribed, reconnecting with backoff until stopped."""

    def __init__(self, settings: SubscriberSettings, handler: MessageHandler) -> None:
        self.settings = settings
        self._handler = handler
        self._generation = 0
        self._acks: deque[tuple[int, int, int]] = deque()
        self._control: deque[bytes] = deque()
        self._wakeup = Wakeup()
        self._stopping = threading.Event()
        self._disconnect_expiry: int | None = None
        self._paused = False
        self._reconnect_reason: str | None = None
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self.session_present = False
        self._unsubscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self._thread_id = 0
        self._next_packet_id = 0
        self.give_up_on_takeover = False
        """When set, a broker DISCONNECT 'session taken over' ends the subscriber instead of reconnecting."""
        self.taken_over = False
        self.acks_dropped = 0
        self._unacked = 0
        """QoS 1/2 messages of this connection not yet acknowledged (network thread only)."""
        self._unacked_bytes = 0
        self._sizes: dict[int, int] = {}
        """Payload size of each unacknowledged QoS 1/2 message by packet id (this connection)."""
        self._keepalive = Keepalive(settings.keepalive)
        self._reader = p.PacketReader()
        self._recv_buffer = memoryview(bytearray(READ_SIZE))
        """Reused by every read: ``recv(READ_SIZE)`` would allocate (mmap) and shrink (mremap) a
        fresh 256 KiB object per call, costly at the thousands of small reads per second of a
        moderate rate."""
        self._backlog: list[p.Packet] = []
        self.reconnects = 0
        self.redeliveries = 0
        """QoS 1/2 messages the broker sent again: DUP set, or a packet id left unacknowledged when
        the previous connection ended (network thread writes, metrics read)."""
        self.loop_turned_at = time.monotonic()
        """``time.monotonic()`` of the network thread's latest turn: at most :data:`LOOP_TURN_MAX_S`
        old while it runs, also while connecting or waiting to reconnect (a connect attempt itself
        may take up to ``connect_timeout``). Older means the thread is wedged."""
        self.last_refusal: str | None = None
        """The broker's latest refusal in words (CONNACK, SUBACK); None once subscribed."""
        self._reconnects = Reconnects(settings)
        self._expect_again: set[int] = set()
        """Packet ids unacknowledged when the last connection ended: the broker sends them again."""
        self._acks_sent = 0
        self._subs = Subscriptions(
            settings, self._control, self._packet_id, self._may_refresh, self._reconnects.failures
        )

    # -- public API, any thread -------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self._generation

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    @property
    def failures(self) -> Failures:
        """The broker's refusal in force (CONNACK, TLS, SUBACK) and refused attempts by reason."""
        return self._reconnects.failures

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{self.settings.client_id}", daemon=True)
        self._thread.start()

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def ack(self, items: Iterable[tuple[int, int, int]]) -> None:
        """Queue acknowledgements ``(generation, packet_id, qos)``, sent in the order given."""
        self._acks.extend(items)
        if threading.get_ident() != self._thread_id:  # the network thread collects them anyway
            self._wakeup.wake()

    def pause(self) -> None:
        """Stop reading from the broker (flow control keeps the backlog on the broker)."""
        self._paused = True
        self._wakeup.wake()

    def resume(self) -> None:
        self._paused = False
        self._wakeup.wake()

    def unsubscribe(self, filters: tuple[str, ...], timeout: float) -> bool:
        """Remove subscriptions of this session; messages already queued for it still arrive."""
        self._unsubscribed.clear()
        self._control.append(p.encode_unsubscribe(self._packet_id(), filters))
        self._wakeup.wake()
        return self._unsubscribed.wait(timeout)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Fire-and-forget QoS 1 publish for control messages (membership); not for data."""
        self._control.append(
            p.encode_publish(topic, payload, qos=1, retain=retain, packet_id=self._packet_id())
        )
        self._wakeup.wake()

    def stop(self, *, session_expiry: int | None = None, timeout: float = 10.0) -> None:
        """Disconnect normally (the session stays, unless ``session_expiry=0``) and end the thread."""
        self._disconnect_expiry = session_expiry
        self._stopping.set()
        self._wakeup.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._wakeup.close()

    def reconnect(self, reason: str) -> None:
        """Drop the connection and reconnect after a pause: the broker re-sends what is unacknowledged."""
        self._reconnect_reason = reason
        self._wakeup.wake()

    @property
    def stopped(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    # -- network thread ---------------------------------------------------------------------------
    def _packet_id(self) -> int:
        """The next packet id not held by an unacknowledged message or a SUBSCRIBE of this connection
        (brokers such as mochi refuse a SUBSCRIBE whose id the session holds: SUBACK 0x91)."""
        for _ in range(65535):
            self._next_packet_id = self._next_packet_id % 65535 + 1
            if self._next_packet_id not in self._sizes and self._next_packet_id not in self._subs.asked:
                break
        return self._next_packet_id

    def _may_refresh(self) -> bool:
        """An idle refresh needs the subscriptions granted and the window open."""
        return self._subscribed.is_set() and self._window_open()

    def _run(self) -> None:
        self._thread_id = threading.get_ident()
        wait = 0.0
        while not self._stopping.is_set():
            self._sleep(wait)
            if self._stopping.is_set():
                return
            self._turned()
            try:
                sock = self._connect()
            except (OSError, MqttError) as exc:
                wait, refusal = self._reconnects.failed(exc)
                if refusal is not None:
                    self.last_refusal = refusal
                continue
            started, self._acks_sent = time.monotonic(), 0
            try:
                self._loop(sock)
                return  # the loop ends normally only when stopping
            except ConnectionLost as exc:
                reason, code = str(exc), exc.code
            except (OSError, MqttProtocolError) as exc:
                reason, code = f"{type(exc).__name__}: {exc}", 0
            finally:
                sock.close()
            healthy = bool(self._acks_sent) or time.monotonic() - started >= HEALTHY_S
            wait = self._reconnects.after_lost(healthy=healthy, code=code)
            final = code == SESSION_TAKEN_OVER and self.give_up_on_takeover
            self._on_lost(reason, None if final else wait)
            if final:
                self.taken_over = True
                return

    def _turned(self) -> None:
        self.loop_turned_at = time.monotonic()

    def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` unless stopping, turning at least every :data:`LOOP_TURN_MAX_S`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self._stopping.is_set():
            self._turned()
            self._stopping.wait(min(left, LOOP_TURN_MAX_S))
        self._turned()

    def _on_lost(self, reason: str, wait: float | None) -> None:
        """The connection ended; ``wait``: seconds until reconnecting (None: not reconnecting)."""
        self._subscribed.clear()
        self._connected.clear()
        self.reconnects += 1
        self._expect_again = set(self._sizes)
        if not self._stopping.is_set():
            logger.warning(
                "mqtt %s: connection to %s:%d lost (%s); %s",
                self.settings.client_id,
                self.settings.host,
                self.settings.port,
                reason,
                "not reconnecting" if wait is None else f"reconnecting in {wait:.1f}s",
            )
        self._handler.on_disconnected(self._generation, reason)

    def _connect(self) -> socket.socket:
        s = self.settings
        sock, connack, self._reader, self._backlog = connect(s, self._turned)
        self._generation += 1
        self._acks.clear()  # acks of the previous connection must never reach this one
        self._unacked = self._unacked_bytes = 0
        self._sizes.clear()
        self._subs.connected()
        self._reconnects.connected()
        self.session_present = connack.session_present
        self._handler.on_connected(self._generation, connack.session_present)
        wanted = [(f, s.qos) for f in s.filters] + [(f, 0) for f in s.control_filters]
        if wanted:
            self._subs.subscribe(wanted, first=True)
        else:
            self._subscribed.set()
            self.last_refusal = None
        self._connected.set()
        if self.reconnects or self._reconnects.backoff.attempts:
            logger.info("mqtt %s: connected (session present: %s)", s.client_id, connack.session_present)
        return sock

    def _select_timeout(self) -> float:
        """How long the loop may wait for the socket: until the next keepalive, retried SUBSCRIBE
        or tick, at most :data:`LOOP_TURN_MAX_S`; 0 when something is queued."""
        now = time.monotonic()
        timeout = min(self._keepalive.last_sent + self.settings.keepalive / 2 - now, LOOP_TURN_MAX_S)
        if self._subs.again_at is not None:
            timeout = min(timeout, self._subs.again_at - now)
        if self._subs.refresh_at is not None:
            timeout = min(timeout, self._subs.refresh_at - now)
        tick = self._handler.on_tick()
        if tick is not None:
            timeout = min(timeout, tick)
        if self._acks or self._control:  # queued by on_tick itself: no wake-up byte for those
            return 0.0
        return max(0.0, timeout)

    def _loop(self, sock: socket.socket) -> None:
        wakeup, keepalive = self._wakeup, self._keepalive
        sel = selectors.DefaultSelector()
        sel.register(wakeup.reader, selectors.EVENT_READ)
        registered = 0
        out = bytearray()
        gen = self._generation
        # Over TLS a readable socket may hold several records, and bytes already decrypted are in the
        # SSL object, where the selector cannot see them: its own read, and a check before waiting.
        tls = isinstance(sock, ssl.SSLSocket)
        read = self._read_tls if tls else self._read
        keepalive.start()
        self._take_packets(gen, out, self._backlog)
        try:
            while True:
                self._turned()
                self._subs.on_turn(self.loop_turned_at)
                # Flush first: what is queued must not wait for the next event.
                self._collect_outgoing(gen, out)
                self._resume_window(gen, out)
                if self._stopping.is_set():
                    out += p.encode_disconnect(0, self._disconnect_expiry)
                    sock.setblocking(True)
                    sock.settimeout(5.0)
                    sock.sendall(out)
                    return
                # Our own flow control: Mosquitto 2.0 re-opens a whole Receive Maximum window on every
                # PUBACK, so stop reading once that many messages are unacknowledged (TCP back-pressure
                # keeps the rest on the broker). After _resume_window, held-back packets remain only
                # when the window is full, so this also covers them.
                reading = self._window_open()
                keepalive.check(out, reading=reading)
                if out:
                    try:
                        sent = sock.send(out)
                    except WOULD_BLOCK:
                        sent = 0
                    del out[:sent]
                    keepalive.last_sent = time.monotonic()
                want = (selectors.EVENT_READ if reading else 0) | (selectors.EVENT_WRITE if out else 0)
                if want != registered:
                    registered = _reregister(sel, sock, registered, want)
                timeout = self._select_timeout()
                if tls and reading and sock.pending():  # type: ignore[attr-defined]
                    read(sock, gen, out)  # decrypted bytes the selector cannot report
                    timeout = 0.0
                for key, mask in sel.select(timeout):
                    if key.fileobj is wakeup.reader:
                        wakeup.drain()
                    elif mask & selectors.EVENT_READ:
                        read(sock, gen, out)
        finally:
            sel.close()

    def _read(self, sock: socket.socket, gen: int, out: bytearray) -> None:
        size = sock.recv_into(self._recv_buffer)
        if not size:
            raise ConnectionLost("broker closed the connection")
        self._reader.feed(self._recv_buffer[:size].tobytes())
        self._take_packets(gen, out)

    def _read_tls(self, sock: socket.socket, gen: int, out: bytearray) -> None:
        """:meth:`_read` for a TLS session: the records it holds now (up to ``READ_SIZE`` bytes),
        dispatched together; a readable socket may also hold only part of a record."""
        total, closed = read_available(sock, self._recv_buffer)
        if total:
            self._reader.feed(self._recv_buffer[:total].tobytes())
            self._take_packets(gen, out)
        if closed:
            raise ConnectionLost("broker closed the connection")

    def _window_open(self) -> bool:
        """Whether to take more messages: not paused, fewer than Receive Maximum unacknowledged."""
        return not self._paused and not self._window_full()

    def _window_full(self) -> bool:
        """Receive Maximum messages, or ``receive_maximum_bytes`` of payload, unacknowledged."""
        s = self.settings
        return self._unacked >= s.receive_maximum or (
            s.receive_maximum_bytes > 0 and self._unacked_bytes >= s.receive_maximum_bytes
        )

    def _resume_window(self, gen: int, out: bytearray) -> None:
        """Once acknowledgements opened the window again, dispatch what it held back before."""
        if self._reader.stopped_early and self._window_open():
            self._take_packets(gen, out)
            self._collect_outgoing(gen, out)

    def _take_packets(self, gen: int, out: bytearray, backlog: list[p.Packet] | None = None) -> None:
        """Dispatch buffered packets until the window is full; the rest waits, in order.
        ``backlog``: packets that came with the CONNACK, dispatched all, whatever the window.

        Every PUBLISH passes here: what each needs is read into locals once per read, not once per
        message.
        """
        on_message, window_full = self._handler.on_message, self._window_full
        sizes = self._sizes
        again = self._expect_again
        publish = p.Publish
        took = False
        limited = backlog is None
        for packet in self._reader.packets() if backlog is None else backlog:
            if type(packet) is publish:
                took = True
                if packet.qos:
                    packet_id = packet.packet_id
                    if packet.dup or packet_id in again:
                        self.redeliveries += 1
                        again.discard(packet_id)
                    size = sizes[packet_id] = message_bytes(packet)
                    self._unacked += 1
                    self._unacked_bytes += size
                on_message(packet, gen)
                if limited and window_full():
                    break
            elif packet.kind == p.PINGRESP:  # type: ignore[union-attr]
                self._keepalive.ping_sent_at = None
            else:
                self._control_packet(packet, out)  # type: ignore[arg-type]
                if limited and window_full():
                    break
        if took:
            self._subs.last_publish_at = self.loop_turned_at

    def _collect_outgoing(self, gen: int, out: bytearray) -> None:
        acks = self._acks
        if acks:
            words: list[int] = []
            sizes = self._sizes
            freed = 0
            while acks:
                a_gen, packet_id, qos = acks.popleft()
                if a_gen != gen:
                    self.acks_dropped += 1
                elif qos:
                    words.append(p.PUBACK_WORD | packet_id if qos == 1 else p.PUBREC_WORD | packet_id)
                    freed += sizes.pop(packet_id, 0)
            if words:
                out += p.encode_acks(words)
                self._acks_sent += len(words)
                self._unacked -= len(words)
                self._unacked_bytes -= freed
        while self._control:
            out += self._control.popleft()
        if self._reconnect_reason is not None:
            reason, self._reconnect_reason = self._reconnect_reason, None
            raise ConnectionLost(f"reconnect requested: {reason}", RECONNECT_REQUESTED)

    def _control_packet(self, packet: p.Ack, out: bytearray) -> None:
        """Any packet but PUBLISH and PINGRESP (those are :meth:`_take_packets`' own)."""
        kind = packet.kind
        if kind == p.PUBREL:
            # We sent PUBREC only after Kafka confirmed the message, so completing is safe.
            out += p.encode_ack(p.PUBCOMP, packet.packet_id)
        elif kind == p.SUBACK:
            if self._subs.on_suback(packet):
                self._subscribed.set()
                self.last_refusal = None
            elif self._subs.refusal is not None:
                self.last_refusal, self._subs.refusal = self._subs.refusal, None
        elif kind == p.UNSUBACK:
            self._unsubscribed.set()
        elif kind == p.DISCONNECT:
            code = packet.reason_codes[0]
            raise ConnectionLost(f"broker sent DISCONNECT reason 0x{code:02x}", code)
        # PUBACK/PUBREC of our own control publishes need nothing more (QoS 1 only).


def message_bytes(packet: p.Publish) -> int:
    """What one unacknowledged message costs a task, for ``receive_maximum_bytes``: its payload, its
    topic three times (the packet, the ``mqtt.topic`` header, a key rendered from it) and its user
    properties. Counting the payload alone let 4,000 messages with 60 KB topics hold 540 MB."""
    size = len(packet.payload) + 3 * len(packet.topic)
    if packet.user_properties:
        size += sum(len(name) + len(value) for name, value in packet.user_properties)
    return size


def _reregister(sel: selectors.BaseSelector, sock: socket.socket, registered: int, want: int) -> int:
    if not registered:
        sel.register(sock, want)
    elif want:
        sel.modify(sock, want)
    else:
        sel.unregister(sock)
    return want

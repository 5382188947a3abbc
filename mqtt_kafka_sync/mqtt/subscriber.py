"""A lean MQTT 5 subscriber that acknowledges only when told to.

Why not paho here: paho sends PUBREC for a QoS 2 message the moment it arrives (so a crash before
Kafka confirms loses it), and reads each packet with several small ``recv`` calls under a lock.
This client reads in large chunks on one network thread, hands each PUBLISH to a handler, and sends
PUBACK (QoS 1) or PUBREC (QoS 2) only when :meth:`MqttSubscriber.ack` is called, which any thread
may do. Acks carry the connection *generation* they belong to: an ack for a message received on an
earlier connection is dropped, because the broker re-sends that message on the new one and its
packet id may since name another message.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import tenacity

from mqtt_kafka_sync.errors import MqttConnectError, MqttError, MqttProtocolError
from mqtt_kafka_sync.mqtt import packets as p

logger = logging.getLogger(__name__)

READ_SIZE = 262_144
"""Bytes asked of the socket per read."""

CONNACK_REASONS = {
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x84: "unsupported protocol",
    0x85: "client id not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x9F: "connection rate exceeded",
}
SESSION_TAKEN_OVER = 0x8E
RECONNECT_REQUESTED = -1


@dataclass(frozen=True)
class SubscriberSettings:
    host: str
    port: int
    client_id: str
    filters: tuple[str, ...]
    """Data subscriptions at ``qos``; empty for a session we only drain (no SUBSCRIBE sent)."""
    qos: int
    keepalive: int = 30
    session_expiry: int = 86_400
    receive_maximum: int = 1_000
    receive_maximum_bytes: int = 0
    """Most payload bytes unacknowledged at once (0: no limit); one message always gets through."""
    connect_timeout: float = 10.0
    username: str | None = None
    password: str | None = None
    will: p.Will | None = None
    control_filters: tuple[str, ...] = ()
    """Extra subscriptions at QoS 0 (membership records), never acknowledged."""
    reconnect_max_delay: float = 10.0


class MessageHandler(Protocol):
    """What the subscriber calls, always on its network thread. Keep each call short."""

    def on_connected(self, generation: int, session_present: bool) -> None: ...

    def on_message(self, message: p.Publish, generation: int) -> None: ...

    def on_disconnected(self, generation: int, reason: str) -> None: ...

    def on_tick(self) -> float | None:
        """Called on every turn of the network loop; returns how long the loop may sleep at most."""
        ...


class ConnectionLost(MqttError):
    retriable = True

    def __init__(self, reason: str, code: int = 0) -> None:
        self.code = code
        super().__init__(reason)


class MqttSubscriber:
    """Keeps one persistent MQTT session subscribed, reconnecting with backoff until stopped."""

    def __init__(self, settings: SubscriberSettings, handler: MessageHandler) -> None:
        self.settings = settings
        self._handler = handler
        self._generation = 0
        self._acks: deque[tuple[int, int, int]] = deque()
        self._control: deque[bytes] = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_pending = False
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
        self._last_sent = 0.0
        self._ping_sent_at: float | None = None
        self._reader = p.PacketReader()
        self._recv_buffer = memoryview(bytearray(READ_SIZE))
        """Reused by every read: ``recv(READ_SIZE)`` would allocate (mmap) and shrink (mremap) a
        fresh 256 KiB object per call, costly at the thousands of small reads per second of a
        moderate rate."""
        self._backlog: list[p.Packet] = []
        self.reconnects = 0

    # -- public API, any thread -------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self._generation

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

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
            self._wake()

    def pause(self) -> None:
        """Stop reading from the broker (flow control keeps the backlog on the broker)."""
        self._paused = True
        self._wake()

    def resume(self) -> None:
        self._paused = False
        self._wake()

    def unsubscribe(self, filters: tuple[str, ...], timeout: float) -> bool:
        """Remove subscriptions of this session; messages already queued for it still arrive."""
        self._unsubscribed.clear()
        self._control.append(p.encode_unsubscribe(self._packet_id(), filters))
        self._wake()
        return self._unsubscribed.wait(timeout)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Fire-and-forget QoS 1 publish for control messages (membership); not for data."""
        self._control.append(
            p.encode_publish(topic, payload, qos=1, retain=retain, packet_id=self._packet_id())
        )
        self._wake()

    def stop(self, *, session_expiry: int | None = None, timeout: float = 10.0) -> None:
        """Disconnect normally (the session stays, unless ``session_expiry=0``) and end the thread."""
        self._disconnect_expiry = session_expiry
        self._stopping.set()
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._wake_r.close()
        self._wake_w.close()

    def reconnect(self, reason: str) -> None:
        """Drop the connection and reconnect after a pause: the broker re-sends what is unacknowledged."""
        self._reconnect_reason = reason
        self._wake()

    @property
    def stopped(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    # -- network thread ---------------------------------------------------------------------------
    def _wake(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            with contextlib.suppress(OSError):
                self._wake_w.send(b"\0")

    def _packet_id(self) -> int:
        self._next_packet_id = self._next_packet_id % 65535 + 1
        return self._next_packet_id

    def _run(self) -> None:
        self._thread_id = threading.get_ident()
        retrying = tenacity.Retrying(
            wait=tenacity.wait_exponential_jitter(multiplier=0.2, max=self.settings.reconnect_max_delay),
            retry=tenacity.retry_if_exception_type((OSError, MqttError)),
            stop=lambda _state: self._stopping.is_set(),
            sleep=self._interruptible_sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        while not self._stopping.is_set():
            try:
                sock = retrying(self._connect)
            except (OSError, MqttError):
                return  # stopping while reconnecting
            try:
                self._loop(sock)
            except ConnectionLost as exc:
                self._on_lost(str(exc))
                if exc.code == SESSION_TAKEN_OVER and self.give_up_on_takeover:
                    self.taken_over = True
                    return
                if exc.code == RECONNECT_REQUESTED:
                    self._stopping.wait(1.0)
            except (OSError, MqttProtocolError) as exc:
                self._on_lost(f"{type(exc).__name__}: {exc}")
            finally:
                sock.close()

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log = (
            logger.warning
            if state.attempt_number in (1, 10) or state.attempt_number % 50 == 0
            else logger.debug
        )
        log(
            "mqtt %s: cannot connect to %s:%d (%s); retrying (attempt %d)",
            self.settings.client_id,
            self.settings.host,
            self.settings.port,
            exc,
            state.attempt_number,
        )

    def _on_lost(self, reason: str) -> None:
        self._subscribed.clear()
        self._connected.clear()
        self.reconnects += 1
        if not self._stopping.is_set():
            logger.warning("mqtt %s: connection lost (%s); reconnecting", self.settings.client_id, reason)
        self._handler.on_disconnected(self._generation, reason)

    def _connect(self) -> socket.socket:
        s = self.settings
        sock = socket.create_connection((s.host, s.port), timeout=s.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(
                p.encode_connect(
                    s.client_id,
                    keepalive=s.keepalive,
                    clean_start=False,
                    session_expiry=s.session_expiry,
                    receive_maximum=s.receive_maximum,
                    username=s.username,
                    password=s.password,
                    will=s.will,
                )
            )
            reader = p.PacketReader()
            deadline = time.monotonic() + s.connect_timeout
            connack: p.Ack | None = None
            pending: list[p.Packet] = []
            while connack is None:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                data = sock.recv(65536)
                if not data:
                    raise MqttConnectError("broker closed the connection before CONNACK")
                for packet in reader.feed_all(data):
                    if connack is None and isinstance(packet, p.Ack) and packet.kind == p.CONNACK:
                        connack = packet
                    else:
                        pending.append(packet)
            code = connack.reason_codes[0]
            if code >= 0x80:
                raise MqttConnectError(
                    f"broker refused the connection: {CONNACK_REASONS.get(code, hex(code))}"
                )
        except BaseException:
            sock.close()
            raise
        sock.setblocking(False)
        self._reader, self._backlog = reader, pending
        self._generation += 1
        self._acks.clear()  # acks of the previous connection must never reach this one
        self._unacked = self._unacked_bytes = 0
        self._sizes.clear()
        self.session_present = connack.session_present
        self._handler.on_connected(self._generation, connack.session_present)
        wanted = [(f, s.qos) for f in s.filters] + [(f, 0) for f in s.control_filters]
        if wanted:
            self._control.appendleft(p.encode_subscribe(self._packet_id(), wanted))
        else:
            self._subscribed.set()
        self._connected.set()
        if self.reconnects:
            logger.info("mqtt %s: connected (session present: %s)", s.client_id, connack.session_present)
        return sock

    def _loop(self, sock: socket.socket) -> None:
        s = self.settings
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ)
        registered = 0
        out = bytearray()
        gen = self._generation
        self._last_sent = time.monotonic()
        self._ping_sent_at = None
        for packet in self._backlog:
            self._dispatch(packet, gen, out)
        try:
            while True:
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
                self._keepalive(out, reading=reading)
                if out:
                    try:
                        sent = sock.send(out)
                    except BlockingIOError:
                        sent = 0
                    del out[:sent]
                    self._last_sent = time.monotonic()
                want = (selectors.EVENT_READ if reading else 0) | (selectors.EVENT_WRITE if out else 0)
                if want != registered:
                    registered = _reregister(sel, sock, registered, want)
                timeout = max(0.0, self._last_sent + s.keepalive / 2 - time.monotonic())
                tick = self._handler.on_tick()
                if tick is not None:
                    timeout = min(timeout, tick)
                if self._acks or self._control:  # queued by on_tick itself: no wake-up byte for those
                    timeout = 0.0
                for key, mask in sel.select(timeout):
                    if key.fileobj is self._wake_r:
                        self._drain_wake()
                    elif mask & selectors.EVENT_READ:
                        self._read(sock, gen, out)
        finally:
            sel.close()

    def _drain_wake(self) -> None:
        # Read the wake bytes first, then clear the flag: the queues are collected after this, so
        # anything queued before the flag cleared is seen, and anything after sends a fresh byte.
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass
        self._wake_pending = False

    def _read(self, sock: socket.socket, gen: int, out: bytearray) -> None:
        size = sock.recv_into(self._recv_buffer)
        if not size:
            raise ConnectionLost("broker closed the connection")
        self._reader.feed(self._recv_buffer[:size].tobytes())
        self._take_packets(gen, out)

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

    def _take_packets(self, gen: int, out: bytearray) -> None:
        """Dispatch buffered packets until the window is full; the rest waits, in order."""
        for packet in self._reader.packets():
            if isinstance(packet, p.Ack) and packet.kind == p.PINGRESP:
                self._ping_sent_at = None
            else:
                self._dispatch(packet, gen, out)
            if self._window_full():
                break

    def _collect_outgoing(self, gen: int, out: bytearray) -> None:
        acks = self._acks
        while acks:
            a_gen, packet_id, qos = acks.popleft()
            if a_gen != gen:
                self.acks_dropped += 1
            elif qos:
                out += p.encode_ack(p.PUBACK if qos == 1 else p.PUBREC, packet_id)
                self._unacked -= 1
                self._unacked_bytes -= self._sizes.pop(packet_id, 0)
        while self._control:
            out += self._control.popleft()
        if self._reconnect_reason is not None:
            reason, self._reconnect_reason = self._reconnect_reason, None
            raise ConnectionLost(f"reconnect requested: {reason}", RECONNECT_REQUESTED)

    def _keepalive(self, out: bytearray, *, reading: bool) -> None:
        now = time.monotonic()
        keepalive = self.settings.keepalive
        if self._ping_sent_at is not None:
            if not reading:
                # A full window stops our reads, so a PINGRESP cannot be seen: its deadline counts
                # from when we read again (a Kafka outage longer than the keepalive must not look
                # like a dead broker, and a reconnect would make the broker send the window again).
                self._ping_sent_at = now
            elif now - self._ping_sent_at > keepalive:
                raise ConnectionLost("no PINGRESP within the keepalive interval")
        if now - self._last_sent >= keepalive / 2:
            out += p.PINGREQ_PACKET
            if self._ping_sent_at is None:
                self._ping_sent_at = now

    def _dispatch(self, packet: p.Packet, gen: int, out: bytearray) -> None:
        if isinstance(packet, p.Publish):
            if packet.qos:
                self._unacked += 1
                size = len(packet.payload)
                self._sizes[packet.packet_id] = size
                self._unacked_bytes += size
            self._handler.on_message(packet, gen)
            return
        kind = packet.kind
        if kind == p.PUBREL:
            # We sent PUBREC only after Kafka confirmed the message, so completing is safe.
            out += p.encode_ack(p.PUBCOMP, packet.packet_id)
        elif kind == p.SUBACK:
            refused = [c for c in packet.reason_codes if c >= 0x80]
            if refused:
                raise MqttProtocolError(
                    f"broker refused subscriptions {self.settings.filters} with reason codes {refused} "
                    "(0x9e: shared subscriptions not supported, 0x87: not authorized)"
                )
            self._subscribed.set()
        elif kind == p.UNSUBACK:
            self._unsubscribed.set()
        elif kind == p.DISCONNECT:
            code = packet.reason_codes[0]
            raise ConnectionLost(f"broker sent DISCONNECT reason 0x{code:02x}", code)
        # PUBACK/PUBREC of our own control publishes need nothing more (QoS 1 only).


def _reregister(sel: selectors.BaseSelector, sock: socket.socket, registered: int, want: int) -> int:
    if not registered:
        sel.register(sock, want)
    elif want:
        sel.modify(sock, want)
    else:
        sel.unregister(sock)
    return want

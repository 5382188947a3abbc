"""A lean MQTT 5 subscriber that acknowledges only when told to.

Why not paho here: paho sends PUBREC for a QoS 2 message the moment it arrives (so a crash before
Kafka confirms loses it), and reads each packet with several small ``recv`` calls under a lock.
This client reads in large chunks on one network thread, hands each PUBLISH to a handler, and sends
PUBACK (QoS 1) or PUBREC (QoS 2) only when :meth:`MqttSubscriber.ack` is called, which any thread
may do. Acks carry the connection *generation* they belong to: an ack for a message received on an
earlier connection is dropped, because the broker re-sends that message on the new one and its
packet id may since name another message.

Every broker answer is read, never guessed at (:mod:`mqtt_kafka_sync.mqtt.reasons` words them):

- A CONNACK with any code but 0 is a refusal (a 3.1.1 broker answers an MQTT 5 CONNECT with return
  code 1): logged in words once, then tried again with capped exponential backoff.
- Every reconnect waits first, with jitter, and the wait grows while connections keep ending early;
  it starts small again only after a connection was healthy (an acknowledgement sent, or up for
  :data:`HEALTHY_S`). A broker that drops us after each redelivery cannot make us re-produce the
  session's messages hundreds of times a second. Redeliveries (DUP, or a packet id left
  unacknowledged on the previous connection) are counted in :attr:`MqttSubscriber.redeliveries`.
- Each SUBACK code is read per filter: 0x91 (packet id in use, held by a resumed session) is
  answered with a SUBSCRIBE under another id; a refusal is logged once naming the filter and the
  reason, and subscribed again with backoff (:data:`REFUSED_MIN_S` .. :data:`REFUSED_MAX_S`) when
  ``retriable``; a lower QoS than asked is logged once at WARNING, with what it costs.
"""

from __future__ import annotations

import contextlib
import logging
import random
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from mqtt_kafka_sync.errors import MqttConnectError, MqttError, MqttProtocolError
from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt import reasons

logger = logging.getLogger(__name__)

READ_SIZE = 262_144
"""Bytes asked of the socket per read."""

RECONNECT_MIN_S = 0.2
"""First wait before reconnecting after a connection ended or failed; doubles up to
``SubscriberSettings.reconnect_max_delay`` until a connection is healthy again."""
REFUSED_MIN_S, REFUSED_MAX_S = 1.0, 60.0
"""Waits after the broker refused us (CONNACK or SUBACK), or an error that is not ``retriable``."""
HEALTHY_S = 10.0
"""A connection up this long (or that sent an acknowledgement) resets the reconnect backoff."""
LOOP_TURN_MAX_S = 1.0
"""The network thread turns its loop at least this often, also while waiting to reconnect, so
:attr:`MqttSubscriber.loop_turned_at` shows a wedged thread."""
SUBSCRIBE_ID_RETRIES = 10
REFRESH_AFTER_S = 1.0
"""The data SUBSCRIBE is sent a second time this long after its SUBACK (see :meth:`_refresh`)."""
IDLE_REFRESH_S = 30.0
"""...and again whenever this long passed with the window open and no PUBLISH received."""
"""SUBACK 0x91 (packet identifier in use) answered with another id at most this often per connection."""
SESSION_TAKEN_OVER = 0x8E
PACKET_ID_IN_USE = 0x91
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
    """Most message bytes unacknowledged at once (0: no limit; see :func:`message_bytes`); one message
    always gets through."""
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


class BrokerRefused(MqttConnectError):
    """The broker answered CONNACK with a refusal; ``retriable`` as the reason code's table says."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.words = reasons.describe(code, reasons.CONNACK, needs="the ingest")
        self.retriable = reasons.lookup(code, reasons.CONNACK).retriable
        super().__init__(f"broker refused the connection: {self.words}")


class Backoff:
    """Capped exponential waits with jitter: the n-th wait since :meth:`reset` is drawn from
    ``[d/2, d]`` with ``d = min(cap, first * 2**(n-1))``, so peers refused together spread out."""

    def __init__(self, rand: Callable[[], float] = random.random) -> None:
        self.attempts = 0
        self._rand = rand

    def next(self, first: float, cap: float) -> float:
        ceiling = min(cap, first * 2.0 ** min(self.attempts, 30))
        self.attempts += 1
        return ceiling * (0.5 + 0.5 * self._rand())

    def reset(self) -> None:
        self.attempts = 0


@dataclass
class _Subscriptions:
    """Where the subscriptions of one connection stand (network thread only)."""

    asked: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    """SUBSCRIBE packet id -> the (filter, QoS) it asked for, until its SUBACK."""
    refused: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Filter -> (QoS asked, reason code) of subscriptions the broker refused."""
    again_at: float | None = None
    """Monotonic time to subscribe the retriable refused filters again."""
    backoff: Backoff = field(default_factory=Backoff)
    id_retries: int = 0
    refresh_at: float | None = None
    """Monotonic time to send the data SUBSCRIBE again (:meth:`MqttSubscriber._refresh`)."""
    refreshes: int = 0
    refreshed_at: float = 0.0
    last_publish_at: float = field(default_factory=time.monotonic)
    """When the latest PUBLISH was read (``loop_turned_at`` then)."""


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
        self.redeliveries = 0
        """QoS 1/2 messages the broker sent again: DUP set, or a packet id left unacknowledged when
        the previous connection ended (network thread writes, metrics read)."""
        self.loop_turned_at = time.monotonic()
        """``time.monotonic()`` of the network thread's latest turn: at most :data:`LOOP_TURN_MAX_S`
        old while it runs, also while connecting or waiting to reconnect (a connect attempt itself
        may take up to ``connect_timeout``). Older means the thread is wedged."""
        self.last_refusal: str | None = None
        """The broker's latest refusal in words (CONNACK, SUBACK); None once subscribed."""
        self._backoff = Backoff()
        self._expect_again: set[int] = set()
        """Packet ids unacknowledged when the last connection ended: the broker sends them again."""
        self._acks_sent = 0
        self._subs = _Subscriptions()
        self._logged_refusals: dict[str, int] = {}
        """What each refusal (connection, filter) last logged at ERROR, so a repeat logs at DEBUG."""
        self._downgrades_logged: set[str] = set()

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
        """The next packet id not held by an unacknowledged message or a SUBSCRIBE of this connection
        (brokers such as mochi refuse a SUBSCRIBE whose id the session holds: SUBACK 0x91)."""
        for _ in range(65535):
            self._next_packet_id = self._next_packet_id % 65535 + 1
            if self._next_packet_id not in self._sizes and self._next_packet_id not in self._subs.asked:
                break
        return self._next_packet_id

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
                wait = self._connect_failed(exc)
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
            if self._acks_sent or time.monotonic() - started >= HEALTHY_S:
                self._backoff.reset()
            wait = self._backoff.next(RECONNECT_MIN_S, self.settings.reconnect_max_delay)
            if code == RECONNECT_REQUESTED:
                wait = max(wait, 1.0)
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

    def _connect_failed(self, exc: OSError | MqttError) -> float:
        """Log a failed connection attempt; returns how long to wait before the next."""
        s = self.settings
        retriable = isinstance(exc, OSError) or exc.retriable
        if isinstance(exc, BrokerRefused) or not retriable:
            wait = self._backoff.next(REFUSED_MIN_S, REFUSED_MAX_S)
        else:
            wait = self._backoff.next(RECONNECT_MIN_S, s.reconnect_max_delay)
        attempt = self._backoff.attempts
        if isinstance(exc, BrokerRefused):
            self.last_refusal = f"broker {s.host}:{s.port} refused the connection: {exc.words}"
            first = self._logged_refusals.get("") != exc.code
            self._logged_refusals[""] = exc.code
            log = logger.error if first else logger.warning if attempt % 50 == 0 else logger.debug
            log(
                "mqtt %s: broker %s:%d refused the connection: %s; trying again in %.1fs (attempt %d)",
                s.client_id,
                s.host,
                s.port,
                exc.words,
                wait,
                attempt,
            )
            return wait
        log = logger.warning if attempt in (1, 10) or attempt % 50 == 0 else logger.debug
        log(
            "mqtt %s: cannot connect to %s:%d (%s); trying again in %.1fs (attempt %d)",
            s.client_id,
            s.host,
            s.port,
            exc,
            wait,
            attempt,
        )
        return wait

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
            connack, reader, pending = self._await_connack(sock)
            code = connack.reason_codes[0]
            if reasons.is_refusal(code, reasons.CONNACK):
                raise BrokerRefused(code)
        except BaseException:
            sock.close()
            raise
        sock.setblocking(False)
        self._reader, self._backlog = reader, pending
        self._generation += 1
        self._acks.clear()  # acks of the previous connection must never reach this one
        self._unacked = self._unacked_bytes = 0
        self._sizes.clear()
        self._subs = _Subscriptions()
        self._logged_refusals.pop("", None)
        self.session_present = connack.session_present
        self._handler.on_connected(self._generation, connack.session_present)
        wanted = [(f, s.qos) for f in s.filters] + [(f, 0) for f in s.control_filters]
        if wanted:
            self._subscribe(wanted, first=True)
        else:
            self._subscribed.set()
            self.last_refusal = None
        self._connected.set()
        if self.reconnects or self._backoff.attempts:
            logger.info("mqtt %s: connected (session present: %s)", s.client_id, connack.session_present)
        return sock

    def _await_connack(self, sock: socket.socket) -> tuple[p.Ack, p.PacketReader, list[p.Packet]]:
        """The CONNACK, the reader holding what came after it, and packets that came with it."""
        timeout = self.settings.connect_timeout
        deadline = time.monotonic() + timeout
        reader = p.PacketReader()
        pending: list[p.Packet] = []
        while True:
            self._turned()
            sock.settimeout(max(0.01, min(LOOP_TURN_MAX_S, deadline - time.monotonic())))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                if time.monotonic() < deadline:
                    continue
                raise MqttConnectError(f"no CONNACK within {timeout:g}s") from None
            if not data:
                raise MqttConnectError("broker closed the connection before CONNACK")
            connack: p.Ack | None = None
            for packet in reader.feed_all(data):
                if connack is None and isinstance(packet, p.Ack) and packet.kind == p.CONNACK:
                    connack = packet
                else:
                    pending.append(packet)
            if connack is not None:
                return connack, reader, pending

    def _select_timeout(self) -> float:
        """How long the loop may wait for the socket: until the next keepalive, retried SUBSCRIBE
        or tick, at most :data:`LOOP_TURN_MAX_S`; 0 when something is queued."""
        now = time.monotonic()
        timeout = min(self._last_sent + self.settings.keepalive / 2 - now, LOOP_TURN_MAX_S)
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

    def _subscribe(
        self, wanted: list[tuple[str, int]], *, first: bool = False, retain_handling: int = 0
    ) -> int:
        """Queue a SUBSCRIBE for ``wanted`` (before anything else when ``first``); returns its id."""
        packet_id = self._packet_id()
        self._subs.asked[packet_id] = wanted
        packet = p.encode_subscribe(packet_id, wanted, retain_handling=retain_handling)
        if first:
            self._control.appendleft(packet)
        else:
            self._control.append(packet)
        return packet_id

    def _loop(self, sock: socket.socket) -> None:
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
                self._turned()
                if self._subs.again_at is not None and self.loop_turned_at >= self._subs.again_at:
                    self._subscribe_again()
                self._refresh_if_due()
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
                for key, mask in sel.select(self._select_timeout()):
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
                self._acks_sent += 1
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
            self._subs.last_publish_at = self.loop_turned_at
            if packet.qos:
                if packet.dup or packet.packet_id in self._expect_again:
                    self.redeliveries += 1
                    self._expect_again.discard(packet.packet_id)
                self._unacked += 1
                size = message_bytes(packet)
                self._sizes[packet.packet_id] = size
                self._unacked_bytes += size
            self._handler.on_message(packet, gen)
            return
        kind = packet.kind
        if kind == p.PUBREL:
            # We sent PUBREC only after Kafka confirmed the message, so completing is safe.
            out += p.encode_ack(p.PUBCOMP, packet.packet_id)
        elif kind == p.SUBACK:
            self._on_suback(packet)
        elif kind == p.UNSUBACK:
            self._unsubscribed.set()
        elif kind == p.DISCONNECT:
            code = packet.reason_codes[0]
            raise ConnectionLost(f"broker sent DISCONNECT reason 0x{code:02x}", code)
        # PUBACK/PUBREC of our own control publishes need nothing more (QoS 1 only).

    # -- SUBACK: every code read, per filter ------------------------------------------------------
    def _on_suback(self, packet: p.Ack) -> None:
        asked = self._subs.asked.pop(packet.packet_id, None)
        if asked is None:
            logger.debug("mqtt %s: SUBACK for unknown id %d", self.settings.client_id, packet.packet_id)
            return
        codes = packet.reason_codes
        if len(codes) != len(asked):
            raise MqttProtocolError(
                f"SUBACK {packet.packet_id} carries {len(codes)} reason codes for {len(asked)} filters"
            )
        in_use = []
        for (topic_filter, qos), code in zip(asked, codes, strict=True):
            if code < 0x80:
                self._subs.refused.pop(topic_filter, None)
                self._logged_refusals.pop(topic_filter, None)
                if code < qos:
                    self._downgraded(topic_filter, qos, code)
            elif code == PACKET_ID_IN_USE and self._subs.id_retries < SUBSCRIBE_ID_RETRIES:
                in_use.append((topic_filter, qos))
            else:
                self._subs.refused[topic_filter] = (qos, code)
        if in_use:
            self._subs.id_retries += 1
            packet_id = self._subscribe(in_use)
            logger.warning(
                "mqtt %s: broker %s:%d answered SUBACK %s for %s with packet id %d; subscribing again "
                "with packet id %d",
                self.settings.client_id,
                self.settings.host,
                self.settings.port,
                reasons.describe(PACKET_ID_IN_USE, reasons.SUBACK),
                ", ".join(f for f, _ in in_use),
                packet.packet_id,
                packet_id,
            )
        if self._subs.refused:
            self._subscriptions_refused()
        elif not self._subs.asked:
            self._subscribed.set()
            self.last_refusal = None
            self._subs.backoff.reset()
            if self._subs.refreshes == 0 and self.settings.filters:
                self._subs.refresh_at = time.monotonic() + REFRESH_AFTER_S

    def _refresh_if_due(self) -> None:
        subs, now = self._subs, self.loop_turned_at
        if subs.refresh_at is not None:
            due = now >= subs.refresh_at
        else:
            idle = now - max(subs.last_publish_at, subs.refreshed_at)
            due = (
                subs.refreshes > 0
                and idle >= IDLE_REFRESH_S
                and self._subscribed.is_set()
                and self._window_open()
            )
        if due:
            self._refresh()

    def _refresh(self) -> None:
        """Send the data SUBSCRIBE again (Retain Handling 2: no retained messages come with it).

        HiveMQ CE can flag a connection as having no shared subscription when its SUBSCRIBE arrives
        just after CONNACK, before the subscription is stored; only another SUBSCRIBE clears the flag,
        and until then the worker gets one batch and nothing more while the backlog grows (issue 17
        item 7, docs/brokers.md). A broker that keeps the subscription replaces it with the same one.
        Sent once a second after the first SUBACK of each connection, and again after every
        ``IDLE_REFRESH_S`` with the window open and nothing received: a stall of that kind ends
        there, whatever its cause.
        """
        subs = self._subs
        subs.refresh_at = None
        subs.refreshes += 1
        subs.refreshed_at = self.loop_turned_at
        if subs.refreshes > 1:
            logger.debug(
                "mqtt %s: nothing received for %.0fs; subscribing again",
                self.settings.client_id,
                IDLE_REFRESH_S,
            )
        s = self.settings
        self._subscribe([(f, s.qos) for f in s.filters], retain_handling=p.RETAIN_SEND_NEVER)

    def _subscriptions_refused(self) -> None:
        """Log each refused filter (ERROR the first time, DEBUG while the answer repeats) and plan the
        next SUBSCRIBE of the retriable ones with backoff."""
        s = self.settings
        subs = self._subs
        retriable = [f for f, (_, code) in subs.refused.items() if reasons.lookup(code).retriable]
        wait = subs.backoff.next(REFUSED_MIN_S, REFUSED_MAX_S) if retriable else 0.0
        if retriable and not subs.asked:
            subs.again_at = time.monotonic() + wait
        for topic_filter, (_, code) in subs.refused.items():
            words = reasons.describe(code, reasons.SUBACK)
            self.last_refusal = (
                f"broker {s.host}:{s.port} refused the subscription to {topic_filter}: {words}"
            )
            then = f"subscribing again in {wait:.1f}s" if topic_filter in retriable else "not trying again"
            first = self._logged_refusals.get(topic_filter) != code
            self._logged_refusals[topic_filter] = code
            (logger.error if first else logger.debug)(
                "mqtt %s: broker %s:%d refused the subscription to %s: %s; %s (attempt %d)",
                s.client_id,
                s.host,
                s.port,
                topic_filter,
                words,
                then,
                subs.backoff.attempts,
            )

    def _subscribe_again(self) -> None:
        self._subs.again_at = None
        wanted = [(f, qos) for f, (qos, code) in self._subs.refused.items() if reasons.lookup(code).retriable]
        if wanted:
            self._subscribe(wanted)

    def _downgraded(self, topic_filter: str, asked: int, granted: int) -> None:
        """Logged once per filter: what the lower QoS costs."""
        if topic_filter in self._downgrades_logged:
            return
        self._downgrades_logged.add(topic_filter)
        meaning = (
            "the broker may send a message twice (at least once) and each copy becomes a Kafka "
            "record: duplicates are possible where QoS 2 promised none"
            if granted == 1
            else "the broker sends each message once without acknowledgement (at most once): a "
            "message in flight when the connection or this worker fails is lost"
        )
        logger.warning(
            "mqtt %s: broker %s:%d granted QoS %d for %s where QoS %d was asked: %s",
            self.settings.client_id,
            self.settings.host,
            self.settings.port,
            granted,
            topic_filter,
            asked,
            meaning,
        )


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

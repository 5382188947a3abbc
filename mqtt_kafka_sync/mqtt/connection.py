"""Connecting the ingest subscriber: TCP, CONNECT, the CONNACK read in full, and when to try again.

A CONNACK with any code but 0 is a refusal (a 3.1.1 broker answers an MQTT 5 CONNECT with return
code 1): :class:`BrokerRefused`. Every :class:`~mqtt_kafka_sync.errors.MqttConnectError` (a refused
CONNACK, a failed TLS handshake, a broker that hangs up before CONNACK) is one refusal episode
(:mod:`~mqtt_kafka_sync.mqtt.failures`): one ERROR line naming the broker, the client id and the
reason in words, then tried again with capped exponential backoff and jitter
(:data:`~mqtt_kafka_sync.mqtt.backoff.REFUSED_MIN_S` to :data:`~mqtt_kafka_sync.mqtt.backoff.REFUSED_MAX_S`);
a refusal that is not ``retriable`` waits the cap from the start and says an operator is needed.
Every reconnect waits first, with jitter, and the wait grows while connections keep ending
early; it starts small again only after a connection was healthy (an acknowledgement sent, or up for
:data:`HEALTHY_S`), so a broker that drops us after each redelivery cannot make us re-produce the
session's messages hundreds of times a second (:class:`Reconnects`).
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable

from mqtt_kafka_sync.errors import MqttConnectError, MqttError
from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt import reasons, tls
from mqtt_kafka_sync.mqtt.backoff import REFUSED_MAX_S, REFUSED_MIN_S, Backoff
from mqtt_kafka_sync.mqtt.failures import CONNECT_REFUSALS, Failure, Failures, connack_reason
from mqtt_kafka_sync.mqtt.subscriber_settings import LOGGER_NAME, SubscriberSettings

logger = logging.getLogger(LOGGER_NAME)

RECONNECT_MIN_S = 0.2
"""First wait before reconnecting after a connection ended or failed; doubles up to
``SubscriberSettings.reconnect_max_delay`` until a connection is healthy again."""
HEALTHY_S = 10.0
"""A connection up this long (or that sent an acknowledgement) resets the reconnect backoff."""
LOOP_TURN_MAX_S = 1.0
"""The network thread turns its loop at least this often, also while connecting or waiting to
reconnect, so :attr:`~mqtt_kafka_sync.mqtt.subscriber.MqttSubscriber.loop_turned_at` shows a wedged
thread."""
SESSION_TAKEN_OVER = 0x8E
RECONNECT_REQUESTED = -1


class ConnectionLost(MqttError):
    retriable = True

    def __init__(self, reason: str, code: int = 0) -> None:
        self.code = code
        super().__init__(reason)


class BrokerRefused(MqttConnectError):
    """The broker answered CONNACK with a refusal; ``retriable`` as the reason code's table says."""

    def __init__(self, code: int, needs: str = "the ingest") -> None:
        """``needs``: who needs MQTT 5, in the words of a 3.1.1 broker's refusal."""
        self.code = code
        self.words = reasons.describe(code, reasons.CONNACK, needs=needs)
        self.retriable = reasons.lookup(code, reasons.CONNACK).retriable
        self.reason = connack_reason(code)
        super().__init__(f"broker refused the connection: {self.words}")


def refusal(exc: BaseException, broker: str) -> Failure | None:
    """``exc`` as a refusal of ``broker`` ("host:port"), or None when the broker did not refuse
    (unreachable, the network): any :class:`MqttConnectError`, and a TLS error not wrapped in one."""
    if isinstance(exc, BrokerRefused):
        return Failure(
            exc.reason, exc.code, f"broker {broker} refused the connection: {exc.words}", exc.retriable
        )
    if isinstance(exc, MqttConnectError):
        return Failure(exc.reason, getattr(exc, "code", 0), f"broker {broker}: {exc}", exc.retriable)
    if isinstance(exc, ssl.SSLError):
        why = getattr(exc, "reason", None) or exc  # a certificate the other side refused: an operator's
        return Failure("tls", 0, f"broker {broker}: TLS handshake failed: {why}", retriable=False)
    return None


def connect(
    s: SubscriberSettings, turned: Callable[[], None], *, clean_start: bool = False, needs: str = "the ingest"
) -> tuple[socket.socket, p.Ack, p.PacketReader, list[p.Packet]]:
    """A non-blocking socket with the session accepted, its CONNACK, the reader holding what came
    after it, and packets that came with it; ``turned`` is called at least every
    :data:`LOOP_TURN_MAX_S` meanwhile. Raises :class:`BrokerRefused` on a refusal (its words name
    ``needs`` as who needs MQTT 5), and over TLS
    :class:`~mqtt_kafka_sync.mqtt.tls.TlsRefused` when the TLS session cannot be set up (the
    handshake is done blocking, within ``connect_timeout``, before CONNECT is sent)."""
    sock = socket.create_connection((s.host, s.port), timeout=s.connect_timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if s.tls is not None:
            sock = tls.handshake(sock, s.tls, s.host)
        try:
            sock.sendall(
                p.encode_connect(
                    s.client_id,
                    keepalive=s.keepalive,
                    clean_start=clean_start,
                    session_expiry=s.session_expiry,
                    receive_maximum=s.receive_maximum,
                    username=s.username,
                    password=s.password,
                    will=s.will,
                )
            )
            connack, reader, pending = _await_connack(sock, s.connect_timeout, turned)
        except (ssl.SSLError, ConnectionError) as exc:
            if s.tls is None:
                raise
            raise tls.refusal(exc, s.tls, s.host) from None  # TLS 1.3: our certificate refused
        code = connack.reason_codes[0]
        if reasons.is_refusal(code, reasons.CONNACK):
            raise BrokerRefused(code, needs)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock, connack, reader, pending


def _await_connack(
    sock: socket.socket, timeout: float, turned: Callable[[], None]
) -> tuple[p.Ack, p.PacketReader, list[p.Packet]]:
    """The CONNACK, the reader holding what came after it, and packets that came with it."""
    deadline = time.monotonic() + timeout
    reader = p.PacketReader()
    pending: list[p.Packet] = []
    while True:
        turned()
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


class Reconnects:
    """How long to wait before the next connection attempt, and what to log (network thread only)."""

    def __init__(self, settings: SubscriberSettings) -> None:
        self.settings = settings
        self.backoff = Backoff()
        self.failures = Failures()
        """The refusal in force (CONNACK, TLS, SUBACK) and refused attempts, for metrics and /readyz."""

    def connected(self) -> None:
        """The broker accepted the session: a CONNECT refusal episode is over."""
        self.failures.cleared(*CONNECT_REFUSALS)

    def after_lost(self, *, healthy: bool, code: int) -> float:
        """The wait after a connection ended (``code``: its DISCONNECT reason, or our own)."""
        if healthy:
            self.backoff.reset()
        wait = self.backoff.next(RECONNECT_MIN_S, self.settings.reconnect_max_delay)
        if code == RECONNECT_REQUESTED:
            wait = max(wait, 1.0)
        return wait

    def failed(self, exc: OSError | MqttError) -> tuple[float, str | None]:
        """Log a failed connection attempt; returns how long to wait before the next, and the
        broker's refusal in words (None when it did not refuse)."""
        s = self.settings
        refused = refusal(exc, f"{s.host}:{s.port}")
        if refused is not None:
            return self._refused(refused), refused.words
        retriable = isinstance(exc, OSError) or exc.retriable
        if retriable:
            wait = self.backoff.next(RECONNECT_MIN_S, s.reconnect_max_delay)
        else:
            wait = self.backoff.next(REFUSED_MIN_S, REFUSED_MAX_S)
        attempt = self.backoff.attempts
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
        return wait, None

    def _refused(self, refused: Failure) -> float:
        """One refused attempt: counted, logged as its episode says; returns the wait. A refusal that
        is not ``retriable`` waits the cap from the first attempt."""
        wait = self.backoff.next(REFUSED_MIN_S if refused.retriable else REFUSED_MAX_S, REFUSED_MAX_S)
        self.failures.refused(refused, logger, self.settings.client_id, wait, self.backoff.attempts)
        return wait

"""MQTT over TLS: the one place an ``ssl.SSLContext`` is made from ``mqtt.ssl.*``, and TLS failures in words.

Every client the product opens to an MQTT broker takes its context from here: the ingest subscriber, the
relay's publisher and ``replay --to-mqtt`` (:mod:`~mqtt_kafka_sync.mqtt.connection`, a fresh context
at every connect), and the simulator's paho clients
(:func:`~mqtt_kafka_sync.mqtt.paho_client.use_tls`, the context reloaded before every reconnect).
So the CA bundle, certificate and key are read again at every (re)connect, and a certificate rotated
on disk is used without a restart.

A refused handshake is a :class:`TlsRefused` with the reason in words ("certificate verify failed:
unable to get local issuer certificate", "hostname mismatch", "the broker refused our client
certificate"), retried calmly like a refused CONNACK. With TLS 1.3 the broker checks our certificate
after the client considers the handshake done, so its refusal arrives on the first read, before
CONNACK, as an alert or the connection closing: :func:`refusal` words those too.

Reading a TLS session is not reading a socket: each ``recv_into`` returns at most one TLS record
(16 KB), and bytes already decrypted wait in the SSL object, where a selector cannot see them.
:func:`read_available` is the one read loop of the subscriber's and the publisher's network threads.
"""

from __future__ import annotations

import socket
import ssl

from mqtt_kafka_sync.config.model import MqttTls
from mqtt_kafka_sync.config.tls_files import MQTT_KEYS, TlsFileProblem, load_mqtt_tls
from mqtt_kafka_sync.errors import MqttConnectError

_HOSTNAME_MISMATCH = frozenset({62, 64})
"""OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH."""
_CLIENT_CERTIFICATE_ALERTS = frozenset(
    {
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_DECRYPT_ERROR",
    }
)
"""Alerts a broker sends when it does not accept the certificate we presented (or none)."""
WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
"""A non-blocking send or read that cannot go now: the kernel's buffer is full (or empty), or (TLS)
the session must read or write a record of its own first."""


class TlsRefused(MqttConnectError):
    """The TLS session with the broker could not be set up; ``words`` says why.

    Not retriable in itself (a certificate or CA problem does not go away by trying again at once),
    so it is retried with the long backoff of a refused CONNECT, until files rotated on disk fix it.
    """

    retriable = False
    reason = "tls"

    def __init__(self, words: str) -> None:
        self.words = words
        super().__init__(f"TLS: {words}")


class TlsFilesUnusable(MqttConnectError):
    """A file of ``mqtt.ssl.*`` could not be used at a (re)connect (e.g. half-way through a rotation)."""

    reason = "tls"

    def __init__(self, problem: TlsFileProblem) -> None:
        self.words = f"{problem.key}: {problem.problem}"
        super().__init__(f"TLS settings: {self.words} ({problem.fix})")


def client_context(tls: MqttTls) -> ssl.SSLContext:
    """A fresh client context: TLS 1.2 or later, the broker's certificate verified (against the CA
    bundle or the system trust store), its name checked unless ``check_hostname`` is off, and our
    certificate presented when one is set. The files are read now. Raises :class:`TlsFilesUnusable`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = tls.check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    load_files(context, tls)
    return context


def load_files(context: ssl.SSLContext, tls: MqttTls) -> None:
    """``tls``'s files into ``context``. Raises :class:`TlsFilesUnusable`."""
    try:
        load_mqtt_tls(context, tls)
    except TlsFileProblem as exc:
        raise TlsFilesUnusable(exc) from None


def handshake(sock: socket.socket, tls: MqttTls, host: str) -> ssl.SSLSocket:
    """``sock`` (connected, blocking with a timeout) wrapped in TLS, the handshake done within that
    timeout. Raises :class:`TlsRefused` or :class:`TlsFilesUnusable`; a timeout stays an OSError."""
    context = client_context(tls)
    try:
        # suppress_ragged_eofs=False: a broker that drops the session right after the handshake
        # (TLS 1.3 refusing our certificate) shows as SSLEOFError, not as an empty read.
        return context.wrap_socket(sock, server_hostname=host, suppress_ragged_eofs=False)
    except (ssl.SSLError, ConnectionError) as exc:
        raise refusal(exc, tls, host) from None


def refusal(exc: OSError, tls: MqttTls, host: str) -> TlsRefused:
    """``exc`` from the handshake or the first read of a TLS session, as a :class:`TlsRefused`."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        if exc.verify_code in _HOSTNAME_MISMATCH:
            return TlsRefused(f"hostname mismatch: the broker's certificate is not valid for {host!r}")
        return TlsRefused(f"certificate verify failed: {exc.verify_message}")
    reason = getattr(exc, "reason", None)
    ended = isinstance(exc, ssl.SSLEOFError | ConnectionError)  # closed or reset, no alert
    if isinstance(exc, ssl.SSLError) and not ended and reason not in _CLIENT_CERTIFICATE_ALERTS:
        return TlsRefused(f"TLS handshake failed: {_words(reason) if reason else exc}")
    detail = "it ended the TLS session before CONNACK" if ended or not reason else _words(reason)
    if tls.certificate_location is None:
        return TlsRefused(f"the broker requires a client certificate ({detail}); set {MQTT_KEYS.certificate}")
    return TlsRefused(f"the broker refused our client certificate ({detail})")


def _words(reason: str) -> str:
    """``TLSV1_ALERT_UNKNOWN_CA`` -> ``unknown ca``."""
    for prefix in ("TLSV13_ALERT_", "TLSV1_ALERT_", "SSLV3_ALERT_"):
        reason = reason.removeprefix(prefix)
    return reason.lower().replace("_", " ")


def read_available(sock: socket.socket, buffer: memoryview, *, records: bool = True) -> tuple[int, bool]:
    """Read what ``sock`` has now into ``buffer``: the bytes read, and whether the broker closed.

    With ``records`` (a TLS session), read record after record until the session wants more from the
    network or ``buffer`` is full; without, one read (over TCP one call returns what the kernel has).
    A non-blocking socket with nothing to read gives ``(0, False)``.
    """
    total, limit = 0, len(buffer)
    while total < limit:
        try:
            size = sock.recv_into(buffer[total:])
        except WOULD_BLOCK:
            break
        except ssl.SSLEOFError:
            size = 0
        if not size:
            return total, True
        total += size
        if not records:
            break
    return total, False

"""A paho client as the simulator's devices and command fleet use it: made, given MQTT 5 properties, released.

(paho's network loop and reconnects are its own; what is here is what both ask of it the same way.)"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field

from paho.mqtt.client import CleanStartOption, Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt_kafka_sync.config.model import MqttTls
from mqtt_kafka_sync.mqtt.tls import TlsFilesUnusable, client_context, load_files

_log = logging.getLogger(__name__)

RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 4
"""paho's waits before reconnecting after a connection ended (doubling from the first to the cap)."""


def no_delay(client: Client, userdata: object, sock: object) -> None:
    """Disable Nagle: paho leaves it on, and a window's last PUBLISH would wait ~40 ms for a TCP ACK."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def new_client(client_id: str) -> Client:
    """An MQTT 5 client without Nagle, reconnecting after 1 to 4 s."""
    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    client.on_socket_open = no_delay
    if _log.isEnabledFor(logging.DEBUG):  # paho also logs a harmless ERROR at every disconnect
        client.enable_logger(logging.getLogger(f"{__name__}.paho"))
    client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
    return client


@dataclass(frozen=True)
class MqttAccess:
    """How a paho client logs in: user name and password, and TLS (``mqtt.ssl.*``) when set."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: MqttTls | None = None


def authenticate(client: Client, client_id: str, access: MqttAccess) -> None:
    """Give ``client`` its login and, over TLS, a context whose files are read again at each reconnect."""
    if access.username is not None:
        client.username_pw_set(access.username, access.password)
    if access.tls is not None:
        use_tls(client, access.tls, client_id)


def release(client: Client, properties: Properties | None = None) -> None:
    """Disconnect (also ends paho's reconnect attempts), stop the network thread, and close the
    socket pair paho wakes that thread with; paho itself closes it only in ``__del__``, which
    comes too late for a client in a reference cycle (ResourceWarning)."""
    client.disconnect(properties=properties if client.is_connected() else None)
    client.loop_stop()
    client.reinitialise()  # the one public call that closes those sockets


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]  # paho leaves __init__ unannotated


def session_properties(packet_type: int, expiry_s: int) -> Properties:
    """CONNECT or DISCONNECT properties setting the Session Expiry Interval."""
    props = _properties(packet_type)
    props.SessionExpiryInterval = expiry_s
    return props


def connect_later(
    client: Client,
    host: str,
    port: int,
    *,
    session_expiry: int,
    clean_start: CleanStartOption,
    keepalive: int = 60,
) -> None:
    """Connect once paho's network loop runs (paho retries until the broker answers), asking the broker
    to keep the session ``session_expiry`` seconds; ``clean_start`` may be paho's
    ``MQTT_CLEAN_START_FIRST_ONLY``."""
    client.connect_async(
        host,
        port,
        keepalive=keepalive,
        clean_start=clean_start,
        properties=session_properties(PacketTypes.CONNECT, session_expiry),
    )


def publish_properties(values: dict[str, str] | None) -> Properties | None:
    """PUBLISH properties carrying ``values`` as user properties; ``None`` when there are none."""
    if not values:
        return None
    props = _properties(PacketTypes.PUBLISH)
    props.UserProperty = list(values.items())
    return props


def use_tls(client: Client, tls: MqttTls, client_id: str) -> None:
    """Make paho ``client`` connect over TLS with ``tls``, reading the files again before every
    reconnect.

    paho 2.1 takes one context (``tls_set_context`` refuses a second) and offers no public way to
    replace it, but calls ``on_pre_connect`` before each connection attempt: there the files are
    loaded into a fresh context first (so a half-rotated pair is noticed and the previous one kept),
    then into paho's context. Loading replaces the certificate and key; a CA bundle is added to the
    CAs already trusted (OpenSSL cannot remove one from a context).
    """
    context = client_context(tls)
    client.tls_set_context(context)

    def reload(_client: Client, _userdata: object) -> None:
        try:
            client_context(tls)
            load_files(context, tls)
        except TlsFilesUnusable as exc:
            _log.warning("MQTT client %s: keeping the previous TLS files: %s", client_id, exc)

    client.on_pre_connect = reload

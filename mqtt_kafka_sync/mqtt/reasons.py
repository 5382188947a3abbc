"""Every reason code a broker can answer us with, in words: one table for the subscriber and the relay.

MQTT 5 reason codes (specification section 2.4) and the MQTT 3.1.1 CONNACK return codes. A code
below 0x80 is a success (in a CONNACK only 0x00 is); 0x80 and above is a refusal. The words say
what happened and, where there is one, what to do about it, so a log line can be read without the
specification at hand::

    >>> describe(0x87, SUBACK)
    'not authorized (0x87): the broker's access control does not allow it for this client id or user'

``retriable`` says whether the same request can succeed later without changing our config (the
broker's access rules, load or session change); the retry loops of the subscriber read it.
"""

from __future__ import annotations

from dataclasses import dataclass

CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH = 2, 4, 5, 6, 7, 9, 11, 14, 15
"""Packet types, as in :mod:`mqtt_kafka_sync.mqtt.packets` and paho's ``PacketTypes``."""


@dataclass(frozen=True)
class Reason:
    code: int
    name: str
    meaning: str = ""
    """What it means for us, in words; empty when the name says it all."""
    retriable: bool = False


def _r(code: int, name: str, meaning: str = "", *, retriable: bool = False) -> Reason:
    return Reason(code, name, meaning, retriable)


MQTT5: dict[int, Reason] = {
    r.code: r
    for r in (
        _r(0x00, "success"),
        _r(0x01, "granted QoS 1"),
        _r(0x02, "granted QoS 2"),
        _r(0x04, "disconnect with will message"),
        _r(0x10, "no matching subscribers", "the broker took the message; nobody is subscribed to its topic"),
        _r(0x11, "no subscription existed"),
        _r(0x18, "continue authentication"),
        _r(0x19, "re-authenticate"),
        _r(0x80, "unspecified error", "the broker did not say why", retriable=True),
        _r(0x81, "malformed packet", "the broker could not parse what it received"),
        _r(0x82, "protocol error", "a packet broke the MQTT 5 rules as the broker reads them"),
        _r(
            0x83,
            "implementation specific error",
            "the broker refused it for a reason of its own; its log says which",
            retriable=True,
        ),
        _r(
            0x84,
            "unsupported protocol version",
            "this broker does not speak MQTT 5, which mqtt-kafka-sync needs",
        ),
        _r(0x85, "client identifier not valid", "the broker does not accept this client id"),
        _r(0x86, "bad user name or password", "check mqtt.username and mqtt.password", retriable=True),
        _r(
            0x87,
            "not authorized",
            "the broker's access control does not allow it for this client id or user",
            retriable=True,
        ),
        _r(0x88, "server unavailable", "the broker cannot serve clients now", retriable=True),
        _r(0x89, "server busy", "the broker is overloaded; try again later", retriable=True),
        _r(0x8A, "banned", "the broker has banned this client", retriable=True),
        _r(0x8B, "server shutting down", retriable=True),
        _r(0x8C, "bad authentication method"),
        _r(0x8D, "keep alive timeout", "the broker heard nothing for 1.5 keepalives", retriable=True),
        _r(
            0x8E,
            "session taken over",
            "another connection with the same client id took this session",
            retriable=True,
        ),
        _r(0x8F, "topic filter invalid", "the broker does not accept this topic filter"),
        _r(0x90, "topic name invalid", "the broker does not accept this topic name"),
        _r(
            0x91,
            "packet identifier in use",
            "the broker's resumed session still holds this packet id (a new process started its ids "
            "at 1 again); another id will do",
            retriable=True,
        ),
        _r(
            0x92,
            "packet identifier not found",
            "the broker no longer knows this exchange (its session ended while we were away)",
            retriable=True,
        ),
        _r(0x93, "receive maximum exceeded", "more QoS 1/2 messages in flight than the broker allows"),
        _r(0x94, "topic alias invalid"),
        _r(0x95, "packet too large", "larger than the broker's maximum packet size"),
        _r(0x96, "message rate too high", retriable=True),
        _r(0x97, "quota exceeded", "a quota the broker enforces is used up", retriable=True),
        _r(0x98, "administrative action", "an administrator disconnected this client", retriable=True),
        _r(0x99, "payload format invalid", "the payload does not match its payload format indicator"),
        _r(0x9A, "retain not supported", "the broker does not keep retained messages"),
        _r(0x9B, "QoS not supported", "the QoS is above the broker's maximum QoS"),
        _r(0x9C, "use another server", "the broker redirects clients elsewhere", retriable=True),
        _r(0x9D, "server moved", "the broker has moved for good", retriable=True),
        _r(
            0x9E,
            "shared subscriptions not supported",
            "this broker (or its config) has no $share/ subscriptions, which the ingest needs",
        ),
        _r(0x9F, "connection rate exceeded", "too many connections too fast; backing off", retriable=True),
        _r(0xA0, "maximum connect time", "the broker limits how long a connection may last", retriable=True),
        _r(0xA1, "subscription identifiers not supported"),
        _r(0xA2, "wildcard subscriptions not supported", "this broker does not accept '+' or '#' in filters"),
    )
}

_BY_PACKET = {
    (CONNACK, 0x00): "connection accepted",
    (SUBACK, 0x00): "granted QoS 0",
    (DISCONNECT, 0x00): "normal disconnection",
}

MQTT311_CONNACK: dict[int, Reason] = {
    r.code: r
    for r in (
        _r(0x00, "connection accepted"),
        _r(
            0x01,
            "unacceptable protocol version",
            "this broker speaks MQTT 3.1.1 only; {needs} needs MQTT 5",
        ),
        _r(0x02, "identifier rejected", "the broker does not accept this client id"),
        _r(0x03, "server unavailable", "the broker cannot serve clients now", retriable=True),
        _r(0x04, "bad user name or password", "check mqtt.username and mqtt.password", retriable=True),
        _r(0x05, "not authorized", "the broker's access control refuses this client", retriable=True),
    )
}
"""The return codes of an MQTT 3.1.1 CONNACK. A 3.1.1 broker answers an MQTT 5 CONNECT with one
(code 1); they cannot be MQTT 5 CONNACK codes, which are 0 or 0x80 and above."""

REJECTS_WHAT_WAS_SENT = frozenset({0x81, 0x82, 0x83, 0x90, 0x93, 0x94, 0x95, 0x97, 0x99, 0x9A, 0x9B})
"""DISCONNECT reasons (the broker's, or paho's own when it rejects the broker's answer) that
blame a packet we sent or its answer, as opposed to the network, the broker's state or another
client: commands in flight when the connection ends with one of these count a failed attempt."""


def lookup(code: int, packet: int | None = None) -> Reason:
    """The table entry; a code the tables lack becomes an entry named by its number."""
    if packet == CONNACK and 0 < code < 0x80:
        return MQTT311_CONNACK.get(code, Reason(code, f"return code {code}"))
    reason = MQTT5.get(code)
    if reason is None:
        return Reason(code, "a reason code MQTT 5 does not define")
    if (renamed := _BY_PACKET.get((packet or -1, code))) is not None:
        return Reason(code, renamed, reason.meaning, reason.retriable)
    return reason


def is_refusal(code: int, packet: int | None = None) -> bool:
    """0x80 and above; in a CONNACK every code but 0 (a 3.1.1 broker answers 1 to 5)."""
    return code != 0 if packet == CONNACK else code >= 0x80


def describe(code: int, packet: int | None = None, *, needs: str = "mqtt-kafka-sync") -> str:
    """``"not authorized (0x87): the broker's access control ..."``; ``needs`` names who needs
    MQTT 5 in the words of a 3.1.1 refusal ("the ingest", "the relay")."""
    reason = lookup(code, packet)
    label = f"CONNACK return code {code}" if packet == CONNACK and 0 < code < 0x80 else f"0x{code:02X}"
    meaning = reason.meaning.format(needs=needs)
    return f"{reason.name} ({label}): {meaning}" if meaning else f"{reason.name} ({label})"

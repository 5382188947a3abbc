"""What the MQTT publisher's network thread tells the thread that publishes, as queued events.

The network thread of :class:`~mqtt_kafka_sync.mqtt.publisher.MqttPublisher` (its loop in
:mod:`~mqtt_kafka_sync.mqtt.outgoing`) puts one of these on a queue for each thing that happened,
and the relay (or the replay's MQTT target) takes them with :func:`take_events` on its own thread,
where the work is done.

A signal must not make that thread wait forever: on CPython 3.11, a ``SimpleQueue.get`` with a
timeout that a signal handler interrupts can go on waiting until the next ``put`` (it takes a
negative remaining time for "no timeout"). ``replay --to-mqtt`` stopped by Ctrl-C while every
command was acknowledged, or an idle relay given SIGTERM, then hung. :func:`take_events` waits with
the asynchronous signals blocked in its thread, so the signal is handled right after the wait.
"""

from __future__ import annotations

import importlib
import queue
import signal
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mqtt_kafka_sync.mqtt import reasons
from mqtt_kafka_sync.mqtt.failures import Failure


@dataclass(frozen=True, slots=True)
class Connected:
    session_present: bool
    receive_maximum: int
    """The broker's Receive Maximum: how many QoS 1/2 publishes it takes in flight (65535 if unset)."""
    maximum_qos: int
    retain_available: bool
    maximum_packet_size: int | None


@dataclass(frozen=True, slots=True)
class Refused:
    """No session: the broker refused the CONNECT or our TLS session (``failure`` set), or did not
    answer (``failure`` None); ``reason`` in words, ``wait`` the seconds until the publisher tries again."""

    reason: str
    client_id: str = ""
    wait: float = 0.0
    failure: Failure | None = None
    """A refusal (CONNACK or TLS) as the relay logs and counts it; None when the broker did not answer."""


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str
    reason_code: int
    detail: str = ""
    """The client's own words for why it ended the connection, when it gave any."""
    from_broker: bool = False
    """The broker sent DISCONNECT (else the client or the network ended the connection)."""
    by: str = "paho"
    """The client whose words ``detail`` are (the relay's own publisher: ``mqtt-kafka-sync``)."""

    def __str__(self) -> str:
        if self.from_broker:
            text = f"the broker sent DISCONNECT: {reasons.describe(self.reason_code, reasons.DISCONNECT)}"
        else:  # the client's verdict (on the broker's answer, or the network), not the broker's view
            name = reasons.lookup(self.reason_code).name
            text = f"{self.by} ended the connection: {name} (0x{self.reason_code:02X})"
        return f"{text}; {self.by}: {self.detail}" if self.detail else text


@dataclass(frozen=True, slots=True)
class Acked:
    """PUBACK (QoS 1) or PUBCOMP (QoS 2) for packet ``mid``; ``reason_code`` >= 0x80 is a refusal."""

    mid: int
    reason_code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Acks:
    """Successful PUBACKs (QoS 1) and PUBCOMPs (QoS 2), in the order they came: one event for what
    one read of the socket brought (a refusal, reason code >= 0x80, is an :class:`Acked` of its own,
    between the batches before and after it), so the publishing thread takes one event per read,
    not one per command."""

    mids: list[int]


MqttEvent = Connected | Refused | Disconnected | Acked | Acks


_SYNCHRONOUS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT}
_SHIELD = frozenset(int(s) for s in signal.valid_signals()) - _SYNCHRONOUS
"""The signals held back while a thread waits for events (see the module docstring)."""
_sigmask: Callable[[int, Iterable[int]], set[int]] = importlib.import_module("_signal").pthread_sigmask
"""``signal.pthread_sigmask`` without its wrapper, which turns every signal of the returned mask into
a ``Signals`` member: about 90 µs per block-and-restore pair against 3 µs, and the relay thread
waits here about once per 40 commands."""


def take_events(events: queue.SimpleQueue[object], timeout: float) -> list[object]:
    """Every event queued now, waiting up to ``timeout`` seconds for the first; [] when none came.
    A signal that arrives while it waits is handled when the wait ends (at most ``timeout`` later)."""
    try:
        taken = [events.get_nowait()]
    except queue.Empty:
        if timeout <= 0:
            return []
        held = _sigmask(signal.SIG_BLOCK, _SHIELD)
        try:
            taken = [events.get(timeout=timeout)]
        except queue.Empty:
            return []
        finally:
            _sigmask(signal.SIG_SETMASK, held)  # a held signal's handler runs here
    while True:
        try:
            taken.append(events.get_nowait())
        except queue.Empty:
            return taken

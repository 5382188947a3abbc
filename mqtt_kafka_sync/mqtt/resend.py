"""The re-send rule of one publishing connection (ours, or a simulated device's paho): when a new
PUBLISH may go out.

A publisher (ours, like paho) keeps every QoS 1/2 publish the broker has not acknowledged and sends
it again after a reconnect (QoS 1 with DUP, QoS 2 continued with PUBREL). A new PUBLISH handed to it meanwhile
(between the TCP connect and the CONNACK, or while those re-sends are in flight) may overtake them,
and the messages of one topic would arrive out of order. So a new PUBLISH goes out only while

- the broker is connected (a CONNACK came, no disconnect since),
- no publish that was unacknowledged at a disconnect, or handed over while disconnected, is still
  unacknowledged ("resending"), and
- fewer than ``min(max_inflight, the broker's Receive Maximum)`` are in flight.

A :class:`ResendGate` keeps that state; its owner keeps the publishes in flight (the relay's
:class:`~mqtt_kafka_sync.mqtt.window.PublishWindow`, the device simulator's publishers) and tells it
how many there are. It does no locking: the relay calls it from its one thread, the simulator with
its lock held.
"""

from __future__ import annotations

DEFAULT_RECEIVE_MAXIMUM = 65535
"""What a CONNACK without a Receive Maximum means (MQTT 5, 3.2.2.3.3)."""


class ResendGate:
    """Whether a new PUBLISH may go out now; see the module docstring."""

    __slots__ = ("max_inflight", "online", "resending", "size")

    def __init__(self, max_inflight: int) -> None:
        self.max_inflight = max_inflight
        self.size = max_inflight
        """Publishes that may be in flight: ``min(max_inflight, the broker's Receive Maximum)``."""
        self.online = False
        """Between a CONNACK and the next disconnect."""
        self.resending = False
        """Publishes re-sent after a reconnect are still unacknowledged: nothing new may go out."""

    def allows(self, in_flight: int) -> bool:
        """A new PUBLISH may go out, with ``in_flight`` publishes unacknowledged."""
        return self.online and not self.resending and in_flight < self.size

    def connected(self, in_flight: int, receive_maximum: int = DEFAULT_RECEIVE_MAXIMUM) -> None:
        """A CONNACK accepted the connection; the publisher now re-sends the ``in_flight`` publishes."""
        self.online = True
        self.size = max(1, min(self.max_inflight, receive_maximum))
        if in_flight:
            self.resending = True

    def disconnected(self, in_flight: int) -> None:
        """The connection ended with ``in_flight`` publishes unacknowledged: the publisher re-sends them."""
        self.online = False
        self.resending = in_flight > 0

    def settle(self, in_flight: int) -> bool:
        """Once connected and every re-sent publish is acknowledged, new ones may go out again;
        ``True`` when that happened with this call."""
        if self.resending and self.online and not in_flight:
            self.resending = False
            return True
        return False

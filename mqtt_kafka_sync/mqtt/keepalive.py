"""The ingest subscriber's keepalive: PINGREQ when nothing was sent for half the interval, and the
connection given up when no PINGRESP came back within it."""

from __future__ import annotations

import time

from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt.connection import ConnectionLost


class Keepalive:
    """One connection's keepalive (network thread only)."""

    __slots__ = ("interval", "last_sent", "ping_sent_at")

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self.last_sent = 0.0
        """``time.monotonic()`` when bytes were last written; the loop sets it."""
        self.ping_sent_at: float | None = None
        """When the unanswered PINGREQ went (None: none unanswered); a PINGRESP clears it."""

    def start(self) -> None:
        """A new connection: nothing sent, no PINGREQ out."""
        self.last_sent = time.monotonic()
        self.ping_sent_at = None

    def check(self, out: bytearray, *, reading: bool) -> None:
        """Queue a PINGREQ on ``out`` when due; raise :class:`ConnectionLost` when the broker is silent."""
        now = time.monotonic()
        interval = self.interval
        if self.ping_sent_at is not None:
            if not reading:
                # A full window stops our reads, so a PINGRESP cannot be seen: its deadline counts
                # from when we read again (a Kafka outage longer than the keepalive must not look
                # like a dead broker, and a reconnect would make the broker send the window again).
                self.ping_sent_at = now
            elif now - self.ping_sent_at > interval:
                raise ConnectionLost("no PINGRESP within the keepalive interval")
        if now - self.last_sent >= interval / 2:
            out += p.PINGREQ_PACKET
            if self.ping_sent_at is None:
                self.ping_sent_at = now

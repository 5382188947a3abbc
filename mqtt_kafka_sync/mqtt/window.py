"""The in-flight window of one MQTT connection: commands handed to the publisher and not yet acknowledged,
and whether another may go out now.

The relay task and the replay's MQTT target (``replay/mqtt_target.py``) publish through a
:class:`PublishWindow` on one thread each, and feed it the events the publisher's network thread queued
(:class:`~mqtt_kafka_sync.mqtt.events.Connected`, ``Disconnected``, ``Refused``, ``Acked``), and the
successful acknowledgements of each read of the socket (``Acks``) to :meth:`PublishWindow.delivered`.

A command may go out while the broker is connected, fewer than
``min(mqtt.max.inflight.messages, the broker's Receive Maximum)`` are in flight, and no command
re-sent after a reconnect is still unacknowledged: the publisher re-sends every unacknowledged QoS 1/2
publish after a reconnect (QoS 1 with DUP, QoS 2 continued with PUBREL), and nothing new goes out
before the broker acknowledged all of them, so a new command never overtakes an older one (the
re-send rule, :class:`~mqtt_kafka_sync.mqtt.resend.ResendGate`, which the device simulator's
publishers follow too). Commands go out in the order they are handed over, on one connection, so
the broker keeps that order per topic.

Each ``Acked`` becomes an :class:`Answer`: delivered, or refused (reason code >= 0x80) as a
``mqtt-rejected`` :class:`~mqtt_kafka_sync.errors.CommandError`. A PUBCOMP saying the broker lost a
QoS 2 exchange (0x92, its session ended while we were away) publishes the command again, at most
:data:`MAX_REPUBLISH` times.

Attempts are bounded (``max_attempts``, the relay's ``mqtt.publish.max.attempts``): a connection
that ends, with commands in flight, for a reason that blames what was sent or answered (a protocol
error, e.g. the publisher rejecting a malformed PUBACK, or a broker DISCONNECT such as 0x95 packet too large;
:data:`~mqtt_kafka_sync.mqtt.reasons.REJECTS_WHAT_WAS_SENT`) counts a failed attempt for each of
them, since the publisher sends them all again after the reconnect. A command whose attempts are used up is
dropped from the publisher's session and answered ``mqtt-rejected`` with the broker's answer as the detail
(:meth:`PublishWindow.take_given_up`), so its partition moves on instead of sending it forever. A
plain network loss or broker restart counts nothing: those commands wait for the broker.

Why over 350 lines: one class, the window's state and what each event does to it, which both of
its users (the relay, the replay's MQTT target) need whole; split, the attempts and the re-send
rule would read the in-flight map from another module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from mqtt_kafka_sync.errors import CommandError
from mqtt_kafka_sync.logs import per_record_logger
from mqtt_kafka_sync.mqtt import reasons
from mqtt_kafka_sync.mqtt.counters import PublishCounters
from mqtt_kafka_sync.mqtt.events import Acked, Connected, Disconnected, Refused
from mqtt_kafka_sync.mqtt.publisher import Command
from mqtt_kafka_sync.mqtt.resend import ResendGate

logger = logging.getLogger(__name__)
record_logger = per_record_logger(__name__)
"""Lines about one record that can repeat for many: one per kind and minute."""

STALL_S = 60.0
"""Connected, commands in flight, no acknowledgement for this long: logged at ERROR (again every STALL_S)."""
MAX_REPUBLISH = 2
_PACKET_ID_NOT_FOUND = 0x92
_SESSION_TAKEN_OVER = 0x8E


class RecordPlace(Protocol):
    """Where a command's Kafka record is, for the lines that name it (a ``confluent_kafka.Message``
    is one, and so is any record the relay's router reads)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


R = TypeVar("R", bound=RecordPlace)
"""The record a command was made from, handed back with its answer (the relay dead-letters it)."""
P = TypeVar("P")
"""What the sender needs back with the answer (the relay: the record's place in its offset tracker)."""


class Publisher(Protocol):
    """:class:`mqtt_kafka_sync.mqtt.publisher.MqttPublisher`, as its users need it."""

    def start(self) -> None: ...
    def connected(self) -> bool: ...
    def publish(self, command: Command, *, wake: bool = True) -> int: ...
    def wake(self) -> None: ...
    def forget(self, mids: Iterable[int]) -> None: ...
    def stop(self, *, end_session: bool) -> None: ...


class Flight(Generic[R, P]):
    """One command handed to the publisher, waiting for its PUBACK / PUBCOMP."""

    __slots__ = ("attempts", "command", "pending", "record")

    def __init__(self, record: R, command: Command, pending: P) -> None:
        self.record = record
        self.command = command
        self.pending = pending
        self.attempts = 1


@dataclass(frozen=True, slots=True)
class Answer(Generic[R, P]):
    """The broker's last word on a command: ``error`` None when it has it, else why it refused."""

    flight: Flight[R, P]
    error: CommandError | None


class PublishWindow(Generic[R, P]):
    def __init__(
        self,
        name: str,
        publisher: Publisher,
        max_inflight: int,
        counters: PublishCounters,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        max_attempts: int | None = None,
    ) -> None:
        """``max_attempts``: sends of one command before it is given up (None: never given up)."""
        self.name = name
        self.in_flight: dict[int, Flight[R, P]] = {}
        """Packet id -> command, in publish order."""
        self.ever_connected = False
        self.limits: Connected | None = None
        self.outage_since: float | None = None
        """Monotonic time the broker became unreachable; None while connected."""
        self._publisher = publisher
        self._gate = ResendGate(max_inflight)
        self._counters = counters
        self._monotonic = monotonic
        self._last_progress = monotonic()
        self._max_attempts = max_attempts
        self._given_up: list[Answer[R, P]] = []

    @property
    def online(self) -> bool:
        """Between a CONNACK and the next disconnect."""
        return self._gate.online

    @property
    def size(self) -> int:
        """Commands that may be in flight: ``min(max_inflight, the broker's Receive Maximum)``."""
        return self._gate.size

    @property
    def resending(self) -> bool:
        """Commands re-sent after a reconnect are still unacknowledged: nothing new may go out."""
        return self._gate.resending

    def can_publish(self) -> bool:
        return self._gate.allows(len(self.in_flight)) and self._publisher.connected()

    def room(self) -> int:
        """How many commands may go out now (0 while the broker is away or re-sent commands wait)."""
        gate = self._gate
        if not gate.online or gate.resending or not self._publisher.connected():
            return 0
        return max(0, gate.size - len(self.in_flight))

    def publish(self, record: R, command: Command, pending: P) -> None:
        """Hand ``command`` to the publisher, written at the next :meth:`flush`. Raises
        :class:`CommandError` (``mqtt-rejected``) when the broker cannot take it or the publisher
        refuses it: it is then never sent."""
        if self.limits is not None:
            check_limits(command, self.limits)
        mid = self._publisher.publish(command, wake=False)
        if mid in self.in_flight:
            record_logger.error("the publisher reused packet id %d while it was in flight", mid)
        self.in_flight[mid] = Flight(record, command, pending)
        self._counters.published += 1

    def flush(self) -> None:
        """After a burst of :meth:`publish`: the publisher's network thread writes them (one
        wake-up per burst, not per command)."""
        self._publisher.wake()

    def handle(self, event: object) -> Answer[R, P] | None:
        """Take one publisher event; returns the answer when it settled a command in flight."""
        if isinstance(event, Acked):
            return self._acked(event)
        if isinstance(event, Connected):
            self._connected(event)
        elif isinstance(event, Disconnected):
            self._disconnected(event)
        elif isinstance(event, Refused):
            self._refused(event)
        return None

    def delivered(self, mids: list[int]) -> list[Flight[R, P]]:
        """Take an :class:`~mqtt_kafka_sync.mqtt.events.Acks`' packet ids: the commands in flight
        they acknowledged (the broker has them), in order; ids not in flight are skipped."""
        self._last_progress = self._monotonic()
        pop = self.in_flight.pop
        return [flight for mid in mids if (flight := pop(mid, None)) is not None]

    def take_given_up(self) -> list[Answer[R, P]]:
        """Commands given up since the last call (attempts used up), each with its ``mqtt-rejected``
        error; they are no longer in flight and the publisher no longer sends them."""
        given_up, self._given_up = self._given_up, []
        return given_up

    def settle(self) -> None:
        """After a batch of events: new commands may go out again once every re-sent one is acknowledged."""
        self._gate.settle(len(self.in_flight))

    def check_stall(self) -> None:
        """Log (at ERROR, every :data:`STALL_S`) when the broker is connected and acknowledged
        nothing in flight for :data:`STALL_S`."""
        if not self.in_flight or not self.online:
            self._last_progress = self._monotonic()
            return
        if self._monotonic() - self._last_progress < STALL_S:
            return
        oldest = next(iter(self.in_flight.values()))
        self._counters.stalls += 1
        logger.error(
            "%s: connected, yet none of %d commands in flight was acknowledged for %.0fs (oldest %s [%s] "
            "offset %s to %s); their offsets stay unstored",
            self.name,
            len(self.in_flight),
            STALL_S,
            oldest.record.topic(),
            oldest.record.partition(),
            oldest.record.offset(),
            oldest.command.topic,
        )
        self._last_progress = self._monotonic()

    # -- events -----------------------------------------------------------------------------------
    def _acked(self, event: Acked) -> Answer[R, P] | None:
        self._last_progress = self._monotonic()
        flight = self.in_flight.pop(event.mid, None)
        if flight is None:
            logger.debug("acknowledgement for unknown packet id %d", event.mid)
            return None
        if event.reason_code < 0x80:
            return Answer(flight, None)
        record, command = flight.record, flight.command
        if event.reason_code == _PACKET_ID_NOT_FOUND and flight.attempts <= self._republish_limit:
            # PUBCOMP 0x92: the broker lost the QoS 2 exchange (its session ended while we were
            # away), so it may never have released the message: publish it again.
            record_logger.warning(
                "%s [%s] offset %s: broker answered %s for %s; publishing it again",
                record.topic(),
                record.partition(),
                record.offset(),
                reasons.describe(event.reason_code, reasons.PUBCOMP),
                command.topic,
            )
            try:
                mid = self._publisher.publish(command)
            except CommandError as exc:
                return Answer(flight, exc)
            flight.attempts += 1
            self.in_flight[mid] = flight
            self._counters.published += 1
            self._counters.republished += 1
            return None
        detail = f"the broker answered {reasons.describe(event.reason_code, reasons.PUBACK)}"
        return Answer(flight, CommandError("mqtt-rejected", detail, mqtt_topic=command.topic))

    def _connected(self, event: Connected) -> None:
        self.limits = event
        self._gate.connected(len(self.in_flight), event.receive_maximum)
        if not self.ever_connected:
            self.ever_connected = True
            logger.info("%s: connected to the MQTT broker (window %d)", self.name, self._gate.size)
        elif self.outage_since is not None:
            logger.warning(
                "%s: MQTT broker reachable again after %.1fs (session %s); sending %d commands again",
                self.name,
                self._monotonic() - self.outage_since,
                "resumed" if event.session_present else "NOT resumed",
                len(self.in_flight),
            )
        self.outage_since = None

    @property
    def _republish_limit(self) -> int:
        return MAX_REPUBLISH if self._max_attempts is None else min(MAX_REPUBLISH, self._max_attempts - 1)

    def _disconnected(self, event: Disconnected) -> None:
        was_online = self.online
        if was_online and event.reason_code in reasons.REJECTS_WHAT_WAS_SENT:
            self._failed_attempt(event)
        self._gate.disconnected(len(self.in_flight))
        if event.reason_code == _SESSION_TAKEN_OVER:
            logger.error(
                "%s: another MQTT client connected with this client id; give every relay its own "
                "mqtt.client.id",
                self.name,
            )
        if was_online:
            self._outage_started(f"connection lost: {event}")
        elif self.outage_since is None:
            self._outage_started(f"cannot connect: {event}")

    def _failed_attempt(self, event: Disconnected) -> None:
        """Each command in flight was sent on a connection that ended for what was sent or answered:
        one attempt failed; give up on those that used up ``max_attempts``."""
        if self._max_attempts is None:
            return
        given_up = [mid for mid, f in self.in_flight.items() if f.attempts >= self._max_attempts]
        for flight in self.in_flight.values():
            flight.attempts += 1
        if not given_up:
            return
        self._publisher.forget(given_up)
        for mid in given_up:
            flight = self.in_flight.pop(mid)
            detail = (
                f"sent {self._max_attempts} times, each time the connection ended before an "
                f"acknowledgement; the last time: {event}"
            )
            error = CommandError("mqtt-rejected", detail, mqtt_topic=flight.command.topic)
            self._given_up.append(Answer(flight, error))
        oldest = self._given_up[0].flight.record
        logger.error(
            "%s: giving up on %d commands (first %s [%s] offset %s): sent %d times, each time the "
            "connection ended before an acknowledgement (the last time: %s); dead-lettering them",
            self.name,
            len(given_up),
            oldest.topic(),
            oldest.partition(),
            oldest.offset(),
            self._max_attempts,
            event,
        )

    def _refused(self, event: Refused) -> None:
        if self.outage_since is None:
            self._outage_started(f"cannot connect: {event.reason}")

    def _outage_started(self, why: str) -> None:
        self.outage_since = self._monotonic()
        self._counters.outages += 1
        logger.warning(
            "%s: MQTT broker unavailable (%s); %d commands in flight; publishing nothing new until it is "
            "back",
            self.name,
            why,
            len(self.in_flight),
        )


def check_limits(command: Command, limits: Connected) -> None:
    """Raise ``mqtt-rejected`` when the broker announced it cannot take ``command``. (Its Maximum
    Packet Size is the publisher's to check: it knows each PUBLISH's exact size once encoded.)"""
    if command.qos > limits.maximum_qos:
        detail = f"the broker's maximum QoS is {limits.maximum_qos}, the route's {command.qos}"
        raise CommandError("mqtt-rejected", detail, mqtt_topic=command.topic)
    if command.retain and not limits.retain_available:
        detail = f"the broker does not keep retained messages; route {command.route!r} retains"
        raise CommandError("mqtt-rejected", detail, mqtt_topic=command.topic)

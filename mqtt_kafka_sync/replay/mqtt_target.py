"""Replay into MQTT through a command relay connector's routes: the second replay target.

Each record goes the way the relay sends a command, with the relay's own parts: the
:class:`~mqtt_kafka_sync.relay.routes.CommandRouter` routes it (the route reading the source topic:
key template, placeholder checks, topic, response topic, headers as user properties, correlation
data, expiry), a :class:`~mqtt_kafka_sync.mqtt.window.PublishWindow` decides when it may go out,
the :class:`~mqtt_kafka_sync.mqtt.publisher.MqttPublisher` publishes it (QoS 1/2), and
:class:`~mqtt_kafka_sync.kafka.dead_letter.DeadLetters` takes what the relay would not publish.
What becomes of a record, reported once through its ``done``:

====================================================  ===========================================
the broker acknowledged it (PUBACK / PUBCOMP)          ``done(None)``
the relay would dead-letter it (``no-route``,          written to the connector's dead-letter
``bad-key``, ``missing-header``,                       topic with the reason headers, counted by
``unsafe-placeholder``, ``bad-header``, ``expired``,   reason; ``done(None)`` once Kafka has it
``mqtt-rejected`` before publishing)
the broker refused the publish (reason code >= 0x80)   ``done(reason)``: the replay stops, the
                                                       checkpoint stays before it
the dead-letter topic refused the record               ``done(reason)``, likewise
nothing confirmed for ``stall_timeout`` seconds        ``done(reason)`` for the oldest record
(broker unreachable, or acknowledging nothing)         waiting, likewise
====================================================  ===========================================

A refusal by the broker stops the replay rather than dead-lettering the record: it is the broker's
policy (an ACL, a quota), usually for every record of the route, and the operator fixes it and runs
the command again. What the relay checks itself before publishing is a property of the record and
is dead-lettered, as the relay does.

Order: records are published in the order they are sent, on one connection, with at most the
window in flight and nothing new while commands re-sent after a reconnect are unacknowledged: the
records of one source partition reach the broker in offset order. While the broker is away, the
publisher keeps the unacknowledged publishes and sends them again once it is back; ``send`` blocks once
:data:`BUFFER_MAX` records wait, so the replay waits with it.

Expiry: with ``expiry_from="written"`` a route's ``mqtt.message.expiry.seconds`` counts from the
record's Kafka timestamp, as in the relay (older records are dead-lettered as ``expired``); with
``"replayed"`` every command gets the whole lifetime, counted from when it is published.

Threads: ``send``, ``poll`` and ``flush`` run on the replay's thread and do all the work. The
publisher's network thread and the dead-letter producer's delivery reports only put events on a queue.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from mqtt_kafka_sync.config.model import RelayConnectorConfig
from mqtt_kafka_sync.errors import CommandError
from mqtt_kafka_sync.kafka.dead_letter import DeadLetter, DeadLettered, DeadLetters
from mqtt_kafka_sync.kafka.producer import KafkaSink, producer_config
from mqtt_kafka_sync.mqtt.counters import PublishCounters
from mqtt_kafka_sync.mqtt.events import Acks, Refused, take_events
from mqtt_kafka_sync.mqtt.publisher import MqttPublisher, PublisherSettings
from mqtt_kafka_sync.mqtt.window import Answer, Publisher, PublishWindow
from mqtt_kafka_sync.relay.routes import CommandRouter
from mqtt_kafka_sync.replay.exceptions import ReplayError
from mqtt_kafka_sync.replay.target import Done, SourceRecord

logger = logging.getLogger(__name__)

ExpiryFrom = Literal["written", "replayed"]

BUFFER_MAX = 1_000
"""Records sent but not yet published; ``send`` waits while this many do."""
WAIT_S = 0.05
STALL_TIMEOUT_S = 600.0
DLQ_CLOSE_S = 5.0


MqttTargetStats = PublishCounters
"""The replay's MQTT target counts what the relay's window and answers count, nothing more."""


class MqttTarget:
    def __init__(
        self,
        router: CommandRouter,
        *,
        publisher: Publisher,
        dead_letters: DeadLetters,
        events: queue.SimpleQueue[object],
        max_inflight: int,
        broker: str,
        expiry_from: ExpiryFrom = "written",
        stall_timeout: float = STALL_TIMEOUT_S,
        max_attempts: int | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``broker``: how messages name the broker; ``stop``: set to end a ``send`` that waits for room.
        The router picks each record's route by its topic, the replay's source."""
        self.stats = MqttTargetStats()
        self.broker = broker
        self.dead_letter_topic = dead_letters.topic
        self._router = router
        self._publisher = publisher
        self._dead_letters = dead_letters
        self._events = events
        self._window: PublishWindow[SourceRecord, Done] = PublishWindow(
            f"replay to {broker}",
            publisher,
            max_inflight,
            self.stats,
            monotonic=monotonic,
            max_attempts=max_attempts,
        )
        self._expiry_from = expiry_from
        self._stall_timeout = stall_timeout
        self._stop = stop or threading.Event()
        self._clock = clock
        self._monotonic = monotonic
        self._buffer: deque[tuple[SourceRecord, Done]] = deque()
        self._dead_lettering: dict[int, DeadLetter[Done]] = {}
        self._last_progress = monotonic()
        self._failed = False

    # -- lifecycle --------------------------------------------------------------------------------
    def connect(self, timeout: float) -> None:
        """Connect to the broker, waiting up to ``timeout`` seconds for it to accept; raises
        :class:`ReplayError` when it does not (nothing was published then)."""
        self._publisher.start()
        deadline = self._monotonic() + timeout
        why = "no answer"
        while not self._window.online:
            left = deadline - self._monotonic()
            if left <= 0:
                raise ReplayError(
                    f"cannot connect to the MQTT broker {self.broker} within {timeout:g}s ({why}); "
                    "nothing was replayed"
                )
            for event in take_events(self._events, min(left, WAIT_S)):
                if isinstance(event, Refused):
                    why = event.reason  # the publisher tries again; the timeout decides
                else:
                    self._window.handle(event)
        self._last_progress = self._monotonic()

    def close(self) -> None:
        """Disconnect, ending the MQTT session (unconfirmed publishes are the checkpoint's to repeat)."""
        self._publisher.stop(end_session=True)
        self._dead_letters.close(DLQ_CLOSE_S)

    # -- Target -----------------------------------------------------------------------------------
    def send(self, record: SourceRecord, done: Done) -> None:
        if self._expiry_from == "replayed":
            record = record.unstamped()  # the router counts an unknown age as 0
        self._buffer.append((record, done))
        self._pump(0.0)
        while len(self._buffer) >= BUFFER_MAX and not self._failed and not self._stop.is_set():
            self._pump(WAIT_S)

    def poll(self, timeout: float = 0.0) -> None:
        self._pump(timeout)

    def flush(self, timeout: float) -> int:
        deadline = self._monotonic() + timeout
        while self.outstanding and not self._failed:
            left = deadline - self._monotonic()
            if left <= 0:
                break
            self._pump(min(WAIT_S, left))
        return self.outstanding

    @property
    def outstanding(self) -> int:
        """Records sent, not yet confirmed: waiting, in flight, or on their way to the dead-letter topic."""
        return len(self._buffer) + len(self._window.in_flight) + len(self._dead_lettering)

    # -- internals --------------------------------------------------------------------------------
    def _pump(self, timeout: float) -> None:
        """Publish what the window allows, take the events that arrived (waiting up to ``timeout``
        when nothing can be published), publish again."""
        if self._failed:
            return
        self._publish()
        idle = not (self._buffer and self._window.can_publish())
        self._take_events(timeout if idle else 0.0)
        self._publish()
        self._window.check_stall()
        self._check_stall()

    def _publish(self) -> None:
        buffer, window = self._buffer, self._window
        while buffer and window.can_publish() and not self._failed:
            record, done = buffer.popleft()
            try:
                window.publish(record, self._router.command(record, self._clock()), done)
            except CommandError as exc:
                letter = DeadLetter(record, done, exc)
                self._dead_lettering[id(letter)] = letter
                self._dead_letters.send(letter)
        window.flush()

    def _take_events(self, timeout: float) -> None:
        self._dead_letters.poll()
        for event in take_events(self._events, timeout):
            if self._failed:
                return
            if isinstance(event, Acks):
                for flight in self._window.delivered(event.mids):
                    self.stats.delivered += 1
                    self._confirm(flight.pending)
            elif isinstance(event, DeadLettered):
                self._dead_lettered(event)
            elif (answer := self._window.handle(event)) is not None:
                self._answered(answer)
            for given_up in self._window.take_given_up():  # sent max_attempts times: stop, as for a refusal
                self._answered(given_up)
        self._window.settle()

    def _answered(self, answer: Answer[SourceRecord, Done]) -> None:
        if answer.error is None:
            self.stats.delivered += 1
            self._confirm(answer.flight.pending)
            return
        error = answer.error
        self._fail(
            answer.flight.pending, f"the broker refused the publish to {error.mqtt_topic}: {error.detail}"
        )

    def _dead_lettered(self, event: DeadLettered) -> None:
        letter = event.letter
        self._dead_lettering.pop(id(letter), None)
        if event.error is None:
            self.stats.count_dead_lettered(letter.error.reason)
            self._confirm(letter.pending)
            return
        self._fail(
            letter.pending,
            f"the dead-letter topic {self.dead_letter_topic} refused it ({event.error.str()}); it was to go "
            f"there as {letter.error}",
        )

    def _confirm(self, done: Done) -> None:
        self._last_progress = self._monotonic()
        done(None)

    def _fail(self, done: Done, reason: str) -> None:
        """Report ``reason`` for one record and stop: nothing more is published or confirmed."""
        self._failed = True
        done(reason)

    def _check_stall(self) -> None:
        now = self._monotonic()
        if not self.outstanding:
            self._last_progress = now
            return
        if now - self._last_progress < self._stall_timeout:
            return
        if self._window.in_flight:
            oldest = next(iter(self._window.in_flight.values())).pending
        elif self._buffer:
            oldest = self._buffer[0][1]
        else:
            oldest = next(iter(self._dead_lettering.values())).pending
        why = (
            "the broker acknowledged nothing"
            if self._window.online
            else f"the MQTT broker {self.broker} was unreachable"
        )
        self._fail(oldest, f"nothing was confirmed for {self._stall_timeout:.0f}s ({why})")


def mqtt_target(
    config: RelayConnectorConfig,
    *,
    expiry_from: ExpiryFrom,
    stall_timeout: float,
    stop: threading.Event,
) -> MqttTarget:
    """The target for replaying records through ``config``'s routes, broker and dead-letter topic.
    Connects as ``<mqtt.client.id>-replay-<random>``, a session of its own."""
    client_id = f"{config.mqtt.client_id}-replay-{secrets.token_hex(4)}"
    events: queue.SimpleQueue[object] = queue.SimpleQueue()
    sink = KafkaSink(producer_config(config.kafka, client_id))
    return MqttTarget(
        CommandRouter(config.routes),
        publisher=MqttPublisher(PublisherSettings.of(config, client_id), events),
        dead_letters=DeadLetters(sink, config.dlq_topic, config.name, events),
        events=events,
        max_inflight=config.mqtt_max_inflight,
        broker=config.mqtt.server.uri,
        expiry_from=expiry_from,
        stall_timeout=stall_timeout,
        stop=stop,
        max_attempts=config.mqtt_publish_max_attempts,
    )

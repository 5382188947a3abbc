"""One relay task: Kafka records in, MQTT commands out, offsets stored as the broker acknowledges.

Everything here runs on one thread, the relay thread, in :meth:`RelayTask.step`: serve the
dead-letter producer's delivery reports, take the events queued for it (the publisher's acknowledgements
and connection changes from its network thread, dead-letter reports), publish buffered records while
the in-flight window has room, decide whether the partitions should be paused, and read more
records. Rebalance callbacks run inside ``consume``, on this thread too, so no state is shared
between threads except the event queue.

Order: records are published in the order Kafka hands them over, which is offset order per
partition, on one MQTT connection. The broker keeps that order per topic, so commands to one device
(one key, one partition) arrive in the order they were written. The in-flight window
(:mod:`~mqtt_kafka_sync.mqtt.window`) decides when a command may go out: after a reconnect no new
command is published until the publisher re-sent every unacknowledged one and the broker acknowledged it, so
a new command cannot overtake an older one that is being sent again.

A refused CONNECT (the publisher's :class:`~mqtt_kafka_sync.mqtt.events.Refused` with a ``failure``: a
CONNACK code, or the TLS session refused, e.g. our client certificate) is logged here, on the relay
thread, once per episode at ERROR naming the broker, the client id and the reason
(:class:`~mqtt_kafka_sync.mqtt.failures.Failures`, read by metrics and ``/readyz``); the publisher waits
before its next attempt as the publisher set it (capped backoff with jitter).

Flow control, with hysteresis, is :class:`~mqtt_kafka_sync.relay.flow.PauseControl`'s; the
counters are :class:`~mqtt_kafka_sync.relay.stats.RelayStats`.

Why over 350 lines: what stays here is the one loop of the relay thread and the handling of each
event it takes; split, that one thread's state would be spread over modules.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from confluent_kafka import Message

from mqtt_kafka_sync.errors import CommandError
from mqtt_kafka_sync.kafka.dead_letter import DeadLetter, DeadLettered, DeadLetters
from mqtt_kafka_sync.logs import per_record_logger
from mqtt_kafka_sync.mqtt.events import Acks, Connected, Refused, take_events
from mqtt_kafka_sync.mqtt.failures import CONNECT_REFUSALS, Failures
from mqtt_kafka_sync.mqtt.outgoing import BURST_DIVISOR
from mqtt_kafka_sync.mqtt.window import Answer, Flight, Publisher, PublishWindow
from mqtt_kafka_sync.relay.flow import PauseControl
from mqtt_kafka_sync.relay.offsets import OffsetTracker, Pending
from mqtt_kafka_sync.relay.offsets import TopicPartition as TP
from mqtt_kafka_sync.relay.routes import CommandRouter
from mqtt_kafka_sync.relay.stats import RelayStats
from mqtt_kafka_sync.telemetry.catalog import UNROUTED
from mqtt_kafka_sync.telemetry.counters import RouteCounters

logger = logging.getLogger(__name__)
record_logger = per_record_logger(__name__)
"""Lines about one record that can repeat for many: one per kind and minute."""

BATCH = 1000
REFILL_BELOW = 1000
"""Records are read only while fewer than this wait to be published (or every :data:`READ_EVERY_S`, to
stay in the group and serve rebalances): each ``consume()`` hands the GIL to the publisher's network
thread and waits to get it back, so reading in large batches, not every step, is what keeps the loop fast."""
WAIT_S = 0.1
READ_EVERY_S = 0.1
"""``consume()`` is called at least this often, however full the buffer (see :data:`REFILL_BELOW`)."""
REVOKE_WAIT_S = 5.0
DLQ_RETRY_S = 5.0


class Consumer(Protocol):
    """:class:`mqtt_kafka_sync.kafka.consumer.CommandConsumer`, as the task uses it."""

    assigned: set[TP]
    paused: set[TP]

    @property
    def kafka_up(self) -> bool: ...
    @property
    def errors(self) -> int: ...
    @property
    def kafka_refusal(self) -> str | None: ...
    @property
    def kafka_refusals(self) -> Mapping[str, int]: ...

    def subscribe(self) -> None: ...
    def consume(self, limit: int, timeout: float) -> list[Message]: ...
    def member_id(self) -> str | None: ...
    def pause(self, tps: set[TP]) -> None: ...
    def resume(self, tps: set[TP]) -> None: ...
    def store(self, tp: TP, offset: int) -> None: ...
    def flush_stores(self) -> None: ...
    def close(self) -> None: ...


ConsumerFactory = Callable[
    [Callable[[set[TP]], None], Callable[[set[TP]], None], Callable[[set[TP]], None]], Consumer
]
"""Builds the consumer from the task's (on_assigned, on_revoked, on_lost) callbacks."""


class RelayTask:
    def __init__(
        self,
        name: str,
        router: CommandRouter,
        *,
        consumer: ConsumerFactory,
        publisher: Publisher,
        dead_letters: DeadLetters,
        events: queue.SimpleQueue[object],
        max_inflight: int,
        max_attempts: int | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.stats = RelayStats()
        self.tracker = OffsetTracker()
        self._router = router
        self._consumer = consumer(self._assigned, self._revoked, self._lost)
        self._publisher = publisher
        self._dead_letters = dead_letters
        self._events = events
        self._window: PublishWindow[Message, Pending] = PublishWindow(
            name, publisher, max_inflight, self.stats, monotonic=monotonic, max_attempts=max_attempts
        )
        self._clock = clock
        self._monotonic = monotonic
        self._buffer: deque[Message] = deque()
        self._route_counters: dict[str, RouteCounters] = {}
        """Kafka topic -> its route's counters in :attr:`stats`."""
        self._retries: deque[tuple[float, DeadLetter[Pending]]] = deque()
        self._member = False
        self._next_read = 0.0
        """Monotonic time by which ``consume()`` is called again even with a full buffer."""
        self._next_dlq_poll = 0.0
        self._pause = PauseControl(name, self._consumer)
        self.in_group = False
        """In the consumer group now (checked every step), for metrics and readiness."""
        self.mqtt_failures = Failures()
        """The MQTT broker's refusal in force and refused attempts (metrics, /readyz)."""
        self._refused_in_a_row = 0

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._publisher.start()
        self._consumer.subscribe()

    @property
    def ready(self) -> bool:
        """In the group and connected to the broker at least once: what ``subscribed`` reports."""
        return self._member and self._window.ever_connected

    # -- read by metrics (any thread; plain reads of what the relay thread writes) --------------
    @property
    def mqtt_connected(self) -> bool:
        return self._window.online

    @property
    def kafka_connected(self) -> bool:
        return self._consumer.kafka_up

    @property
    def kafka_errors(self) -> int:
        """Errors librdkafka reported to the consumer and the dead-letter producer."""
        return self._consumer.errors + self._dead_letters.errors

    @property
    def kafka_refusal(self) -> str | None:
        """Kafka refuses the consumer (``auth``, ``tls``); None when it does not. The dead-letter
        producer uses the same settings, so the consumer speaks for both."""
        return self._consumer.kafka_refusal

    @property
    def kafka_refusals(self) -> Mapping[str, int]:
        """Refusals librdkafka reported to the consumer, by label."""
        return self._consumer.kafka_refusals

    @property
    def buffered(self) -> int:
        """Records read, not yet published."""
        return len(self._buffer)

    def step(self) -> None:
        """One round: events, publishing, flow control, reading."""
        # Block where the next piece of work comes from: nowhere while there is something to
        # publish, in consume() while the window has room, on the event queue while it is full or
        # the broker is away.
        room = self._room() > 0
        wait_for_events = 0.0 if room else WAIT_S
        wait_for_records = WAIT_S if room and not self._buffer else 0.0
        self._handle_events(wait_for_events)
        self._retry_dead_letters()
        self._publish()
        self._flow_control()
        self._window.check_stall()
        now = self._monotonic()
        if len(self._buffer) < REFILL_BELOW or now >= self._next_read:
            self._next_read = now + READ_EVERY_S
            records = self._consumer.consume(BATCH, wait_for_records)
            self._buffer.extend(records)
            self.stats.received += len(records)
            self.in_group = self._consumer.member_id() is not None
            if self.in_group:
                self._member = True

    def drain(self, timeout: float) -> bool:
        """Stop reading, wait up to ``timeout`` for in-flight commands, commit, leave the group,
        end the MQTT session. Returns False when some were not acknowledged in time: their offsets
        are not committed, so whoever reads the partition next publishes them again."""
        deadline = self._monotonic() + timeout
        self._buffer.clear()
        while self.tracker.unfinished() and self._monotonic() < deadline:
            if not self._window.online and not self._dead_letters_pending():
                break  # nothing can be acknowledged while the broker is away
            self._handle_events(WAIT_S)
            self._retry_dead_letters()
        unfinished = self.tracker.unfinished()
        if unfinished:
            logger.warning(
                "%s: %d commands not acknowledged at shutdown; they will be published again",
                self.name,
                unfinished,
            )
        self._consumer.flush_stores()
        self._consumer.close()
        self._publisher.stop(end_session=True)
        self._dead_letters.close(max(1.0, deadline - self._monotonic()))
        return unfinished == 0

    # -- events -----------------------------------------------------------------------------------
    def _handle_events(self, timeout: float) -> None:
        now = self._monotonic()
        # The producer is polled every step while dead letters are unanswered, else every WAIT_S
        # (each poll hands the GIL over).
        if len(self._dead_letters) or now >= self._next_dlq_poll:
            self._next_dlq_poll = now + WAIT_S
            self._dead_letters.poll()
        events = take_events(self._events, timeout)
        if not events:
            return
        window = self._window
        for event in events:
            if type(event) is Acks:  # the common case, first: what one read of the socket acknowledged
                self._delivered(window.delivered(event.mids))
            else:
                self._handle(event)
        self._consumer.flush_stores()
        window.settle()

    def _handle(self, event: object) -> None:
        if isinstance(event, Refused | Connected):
            self._connect_answered(event)
        if isinstance(event, DeadLettered):
            self._dead_lettered(event)
        elif (answer := self._window.handle(event)) is not None:
            self._answered(answer)
        for given_up in self._window.take_given_up():  # attempts used up: the partition moves on
            self._answered(given_up)

    def _connect_answered(self, event: Refused | Connected) -> None:
        """A refused CONNECT counted and logged as its episode says; a session ends the episode."""
        if isinstance(event, Connected):
            self._refused_in_a_row = 0
            self.mqtt_failures.cleared(*CONNECT_REFUSALS)
        elif event.failure is not None:
            self._refused_in_a_row += 1
            self.mqtt_failures.refused(
                event.failure, logger, event.client_id, event.wait, self._refused_in_a_row
            )

    def _answered(self, answer: Answer[Message, Pending]) -> None:
        flight = answer.flight
        if answer.error is not None:
            self._dead_letter(flight.record, flight.pending, answer.error)
            return
        self._delivered([flight])

    def _delivered(self, flights: list[Flight[Message, Pending]]) -> None:
        """Commands the broker has: counted, and their offsets stored as their partitions' finished
        prefixes grow (the consumer hands them to librdkafka once per batch of events)."""
        if not flights:
            return
        routes, name = self.stats.routes, flights[0].command.route
        route = routes[name]
        self.stats.delivered += len(flights)
        for flight in flights:
            command = flight.command
            if command.route != name:  # one route, most often: looked up once per batch
                name = command.route
                route = routes[name]
            route.delivered += 1
            route.delivered_bytes += len(command.payload)
        store = self._consumer.store
        for tp, offset in self.tracker.finish_all([flight.pending for flight in flights]).items():
            store(tp, offset)

    def _dead_lettered(self, event: DeadLettered) -> None:
        letter = event.letter
        if event.error is None:
            self.stats.count_dead_lettered(letter.error.reason)
            self._finish(letter.pending)
            return
        record = letter.record
        self.stats.dead_letter_refused += 1
        record_logger.error(
            "dead-letter topic %s refused %s [%s] offset %s (%s); trying again in %.0fs, its offset stays "
            "uncommitted",
            self._dead_letters.topic,
            record.topic(),
            record.partition(),
            record.offset(),
            event.error.str(),
            DLQ_RETRY_S,
        )
        self._retries.append((self._monotonic() + DLQ_RETRY_S, letter))

    # -- publishing ---------------------------------------------------------------------------
    def _room(self) -> int:
        """Commands that may go out now, if they make a burst: a quarter of the window, or every
        buffered record if fewer; else 0. (Published as soon as there was any room, the relay and
        the publisher's network thread took turns over three or four commands at a time: a wake-up,
        a write and a read each.)"""
        room = self._window.room()
        return room if room >= min(max(1, self._window.size // BURST_DIVISOR), len(self._buffer)) else 0

    def _publish(self) -> None:
        room = self._room()
        if not room:
            return
        buffer, add, publish = self._buffer, self.tracker.add, self._window.publish
        counters, command, now = self._route_counters, self._router.command, self._clock()
        while buffer and room:
            record = buffer.popleft()
            topic = record.topic() or ""
            try:
                pending = add((topic, record.partition() or 0), record.offset() or 0)
            except KeyError:
                continue  # revoked after it was read; the next owner reads it again
            route = counters.get(topic) or self._counters_of(topic)
            route.received += 1
            route.received_bytes += len(record)
            try:
                publish(record, command(record, now), pending)
            except CommandError as exc:
                self._dead_letter(record, pending, exc)
            else:
                room -= 1
        self._window.flush()

    def _counters_of(self, topic: str) -> RouteCounters:
        """The counters of the route that reads ``topic`` (kept per topic: a topic's route never changes)."""
        route = self._route_counters[topic] = self.stats.routes[self._router.route_name(topic) or UNROUTED]
        return route

    def _dead_letter(self, record: Message, pending: Pending, error: CommandError) -> None:
        self._dead_letters.send(DeadLetter(record, pending, error))

    def _retry_dead_letters(self) -> None:
        now = self._monotonic()
        while self._retries and self._retries[0][0] <= now:
            letter = self._retries.popleft()[1]
            if self.tracker.assigned(letter.pending.tp):
                self._dead_letters.send(letter)

    def _dead_letters_pending(self) -> bool:
        return bool(self._retries) or self.tracker.unfinished() > len(self._window.in_flight)

    def _finish(self, pending: Pending) -> None:
        offset = self.tracker.finish(pending)
        if offset is not None:
            self._consumer.store(pending.tp, offset)

    # -- flow control -------------------------------------------------------------------------
    def _flow_control(self) -> None:
        window = self._window
        self._pause.update(
            online=window.online,
            resending=window.resending,
            buffered=len(self._buffer),
            unfinished=self.tracker.unfinished(),
            outages=self.stats.outages,
        )

    # -- rebalance callbacks (inside consume) -------------------------------------------------
    def _assigned(self, tps: set[TP]) -> None:
        for tp in tps:
            self.tracker.assign(tp)
        if self._pause.reason:
            self._consumer.pause(tps)

    def _revoked(self, tps: set[TP]) -> None:
        self._drop_buffered(tps)
        deadline = self._monotonic() + REVOKE_WAIT_S
        while self.tracker.unfinished(tps) and self._window.online and self._monotonic() < deadline:
            self._handle_events(0.05)
        left = 0
        for tp in tps:
            left += self.tracker.revoke(tp)
        if left:
            logger.warning(
                "%s: %d commands of revoked partitions not acknowledged yet; the next owner publishes "
                "them again",
                self.name,
                left,
            )

    def _lost(self, tps: set[TP]) -> None:
        self._drop_buffered(tps)
        for tp in tps:
            self.tracker.revoke(tp)

    def _drop_buffered(self, tps: set[TP]) -> None:
        before = len(self._buffer)
        self._buffer = deque(r for r in self._buffer if (r.topic(), r.partition()) not in tps)
        self.stats.dropped_on_revoke += before - len(self._buffer)

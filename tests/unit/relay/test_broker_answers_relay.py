"""The command relay against broker answers it cannot take: a command is sent a bounded number of
times (``mqtt.publish.max.attempts``), then dead-lettered with the broker's answer, and its
partition moves on; the client's own error text reaches the log.

The dead-letter path runs the relay task with fake Kafka and MQTT clients; the protocol error
runs the relay's real publisher against a scripted broker (tests/scripted_broker.py) whose PUBACKs
carry a reason code PUBACK cannot have and the PUBLISH's properties echoed.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from mqtt_kafka_sync.config.loader import load_connector
from mqtt_kafka_sync.config.model import RelayConnectorConfig
from mqtt_kafka_sync.kafka.dead_letter import DeadLetters
from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt.events import Acked, Connected, Disconnected, Refused
from mqtt_kafka_sync.mqtt.publisher import Command, MqttPublisher, PublisherSettings
from mqtt_kafka_sync.mqtt.window import Answer, PublishWindow
from mqtt_kafka_sync.relay import task as task_module
from mqtt_kafka_sync.relay.routes import CommandRouter
from mqtt_kafka_sync.relay.stats import RelayStats
from mqtt_kafka_sync.relay.task import RelayTask
from tests.scripted_broker import Conn, ScriptedBroker, accept, connack_v311, puback_invalid
from tests.unit.config.test_relay_config import _problems, _write
from tests.unit.relay.relay_fakes import FakePublisher, FakeSink
from tests.unit.relay.test_relay_task import NOW, P0, ROUTE, Callback, FakeConsumer

PAHO_PROTOCOL_ERROR = Disconnected(
    "Protocol error", 0x82, "Received malformed packet: Expected exactly one name, found []"
)


class ForgettingPublisher(FakePublisher):
    def __init__(self) -> None:
        super().__init__()
        self.forgotten: list[int] = []

    def forget(self, mids: Iterable[int]) -> None:
        self.forgotten.extend(mids)


class Relay:
    """A relay task with fake clients, ``max_attempts`` as configured."""

    def __init__(self, max_attempts: int) -> None:
        self.events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.publisher = ForgettingPublisher()
        self.sink = FakeSink()
        consumers: list[FakeConsumer] = []

        def factory(assigned: Callback, revoked: Callback, lost: Callback) -> FakeConsumer:
            consumers.append(FakeConsumer(assigned, revoked, lost))
            return consumers[0]

        self.task = RelayTask(
            "relay-test",
            CommandRouter([ROUTE]),
            consumer=factory,
            publisher=self.publisher,
            dead_letters=DeadLetters(self.sink, "dlq", "relay-test", self.events),
            events=self.events,
            max_inflight=100,
            max_attempts=max_attempts,
            clock=lambda: NOW,
        )
        self.kafka = consumers[0]
        self.task.start()
        self.next_offset = 0

    def connect(self, receive_maximum: int = 2) -> None:
        self.publisher.is_connected = True
        self.events.put(Connected(True, receive_maximum, 2, True, None))
        self.steps()

    def drop(self, event: Disconnected) -> None:
        self.publisher.is_connected = False
        self.events.put(event)
        self.steps()

    def feed(self, count: int) -> None:
        for _ in range(count):
            offset, self.next_offset = self.next_offset, self.next_offset + 1
            self.kafka.records.append(_record(offset))

    def steps(self, count: int = 3) -> None:
        for _ in range(count):
            self.task.step()

    @classmethod
    def publishing(cls, records: int, *, max_attempts: int) -> Relay:
        """A relay connected to the broker, with ``records`` records of P0 read and published."""
        relay = cls(max_attempts)
        relay.connect()
        relay.kafka.assign(P0)
        relay.feed(records)
        relay.steps()
        return relay


def _record(offset: int) -> Message:
    return Message(
        topic=P0[0],
        partition=P0[1],
        offset=offset,
        key=b"p1.d1",
        value=f"0:{offset}".encode(),
        timestamp=(TIMESTAMP_CREATE_TIME, int(NOW * 1000)),
    )


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_module, "WAIT_S", 0.001)


# -- the dead-letter path, with fakes -------------------------------------------------------------
def test_a_command_the_broker_keeps_failing_is_dead_lettered_after_max_attempts_and_the_partition_moves_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    relay = Relay.publishing(3, max_attempts=3)
    assert relay.publisher.seqs() == ["0:0", "0:1"]  # the window (Receive Maximum 2) is full
    for attempt in (1, 2):
        relay.drop(PAHO_PROTOCOL_ERROR)
        assert relay.sink.produced == [], f"dead-lettered after {attempt} attempts"
        relay.connect()  # paho sends both again (the fake does not: nothing else goes out)
        assert relay.publisher.seqs() == ["0:0", "0:1"], "a new command overtook the ones being sent again"
    relay.drop(PAHO_PROTOCOL_ERROR)  # the third attempt failed too
    assert relay.publisher.forgotten == [1, 2], "paho would send them again forever"
    assert [(h["kafka.offset"], h["dlq.reason"]) for *_, h in relay.sink.produced] == [
        ("0", "mqtt-rejected"),
        ("1", "mqtt-rejected"),
    ]
    detail = relay.sink.produced[0][3]["dlq.detail"]
    assert "sent 3 times" in detail and "protocol error (0x82)" in detail
    assert "paho: Received malformed packet: Expected exactly one name" in detail
    relay.connect()
    relay.sink.poll()
    relay.steps()
    assert relay.kafka.stored == {P0: 2}
    assert relay.publisher.seqs() == ["0:0", "0:1", "0:2"], "the partition did not move on"
    assert relay.task.stats.dlq_by_reason == {"mqtt-rejected": 2}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("giving up on 2 commands" in line and "offset 0" in line for line in errors), errors
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("Received malformed packet" in line for line in warnings), "paho's own words never logged"


def test_network_losses_and_broker_restarts_count_no_attempt() -> None:
    relay = Relay.publishing(1, max_attempts=2)
    for _ in range(10):
        relay.drop(Disconnected("Unspecified error", 0x80))
        relay.connect()
        relay.drop(Disconnected("Server shutting down", 0x8B, from_broker=True))
        relay.connect()
    assert relay.sink.produced == [] and relay.publisher.forgotten == []
    relay.events.put(Acked(1, 0, ""))
    relay.steps()
    assert relay.kafka.stored == {P0: 1}


def test_a_lost_qos2_exchange_is_published_again_within_max_attempts_only() -> None:
    relay = Relay.publishing(1, max_attempts=2)
    relay.events.put(Acked(1, 0x92, "Packet identifier not found"))
    relay.steps()
    assert relay.publisher.seqs() == ["0:0", "0:0"]  # attempt 2
    relay.events.put(Acked(2, 0x92, "Packet identifier not found"))
    relay.steps()
    assert relay.publisher.seqs() == ["0:0", "0:0"], "a third attempt where two are allowed"
    assert "packet identifier not found (0x92)" in relay.sink.produced[0][3]["dlq.detail"]


# -- paho against a broker whose PUBACK it rejects ------------------------------------------------
def _command(n: int) -> Command:
    return Command(
        route="cmd",
        topic=f"p/p1/d/d1/c/{n}",
        payload=b"{}",
        qos=1,
        retain=False,
        user_properties=(("site", "a"),),
        correlation_data=f"commands/0/{n}".encode(),
        response_topic=None,
        expiry_seconds=None,
    )


class PahoRelay:
    """The relay's real publisher and its window (``max_attempts`` 3) against ``broker``,
    connected while in the ``with`` block."""

    def __init__(self, broker: ScriptedBroker) -> None:
        self.events: queue.SimpleQueue[object] = queue.SimpleQueue()
        settings = PublisherSettings("127.0.0.1", broker.port, "relay-answers")
        self.publisher = MqttPublisher(settings, self.events)
        self.window: PublishWindow[Message, int] = PublishWindow(
            "relay-test", self.publisher, 100, RelayStats(), max_attempts=3
        )

    def __enter__(self) -> PahoRelay:
        self.publisher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.publisher.stop(end_session=True)

    def pump(self, seconds: float) -> list[object]:
        """Feed paho's events to the window for ``seconds``; returns the events and the answers."""
        until, window = time.monotonic() + seconds, self.window
        seen: list[object] = []
        while time.monotonic() < until:
            try:
                event = self.events.get(timeout=0.05)
            except queue.Empty:
                continue
            seen.append(event)
            if (answer := window.handle(event)) is not None:
                seen.append(answer)
            seen.extend(window.take_given_up())
            window.settle()
        return seen


def test_paho_rejecting_every_puback_ends_in_dead_letters_after_max_attempts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def invalid_pubacks(conn: Conn, index: int) -> None:
        accept(conn, session_present=index > 0)
        while True:
            publish = conn.expect(p.PUBLISH, timeout=30.0)
            conn.send(puback_invalid(publish.packet_id, publish.publish_properties))

    with ScriptedBroker(invalid_pubacks) as broker:
        with PahoRelay(broker) as relay:
            window = relay.window
            seen = relay.pump(5.0) if not window.online else []
            assert window.online, seen
            for n in range(2):
                window.publish(_record(n), _command(n), n)
            window.flush()  # written at the flush, as the relay's bursts are
            deadline = time.monotonic() + 20.0
            answers: list[Answer[Message, int]] = []
            while len(answers) < 2 and time.monotonic() < deadline:
                answers += [a for a in relay.pump(0.5) if isinstance(a, Answer)]
            relay.pump(2.5)  # paho must not send them again now
        publishes = broker.packets(p.PUBLISH)
        connections = len(broker.accepted)
        assert broker.errors == []

    assert sorted(a.flight.pending for a in answers) == [0, 1]
    assert all(a.error is not None and a.error.reason == "mqtt-rejected" for a in answers)
    detail = answers[0].error.detail if answers[0].error else ""
    assert "sent 3 times" in detail and "protocol error (0x82)" in detail and "mqtt-kafka-sync: " in detail
    # Each command went out at most max_attempts times; the broker was then left in peace. (An
    # attempt is a connection that ended with the command in flight: paho may not have written the
    # second command yet when the broker's answer to the first ended the connection, so a command
    # can be sent fewer times than it was counted; never more.)
    per_topic = [r.body[2 : 2 + r.body[1]] for r in publishes]
    counts = {topic: per_topic.count(topic) for topic in (b"p/p1/d/d1/c/0", b"p/p1/d/d1/c/1")}
    assert all(1 <= n <= 3 for n in counts.values()) and len(per_topic) == sum(counts.values()), per_topic
    assert counts[b"p/p1/d/d1/c/0"] == 3, per_topic  # the first in flight is always written first
    assert connections <= 4, connections
    lost = [r.getMessage() for r in caplog.records if "connection lost" in r.getMessage()]
    assert lost and all("mqtt-kafka-sync: received a malformed PUBACK" in line for line in lost), lost


def test_a_311_connack_to_the_relay_is_said_in_words(caplog: pytest.LogCaptureFixture) -> None:
    def moquette(conn: Conn, index: int) -> None:
        conn.expect(p.CONNECT)
        conn.send(connack_v311(1))
        conn.read(5.0)

    with ScriptedBroker(moquette) as broker, PahoRelay(broker) as relay:
        seen = relay.pump(2.5)
    assert not relay.window.online
    said = [str(e) for e in seen if isinstance(e, Refused | Disconnected)]
    assert said, seen
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # the 3.1.1 return code 1 in 3.1.1's words (paho read it as MQTT 5's 0x84)
    assert any(
        "cannot connect: unacceptable protocol version (CONNACK return code 1): this broker speaks MQTT "
        "3.1.1 only; the relay needs MQTT 5" in line
        for line in warnings
    ), warnings


# -- the key --------------------------------------------------------------------------------------
def test_mqtt_publish_max_attempts_is_read_and_checked(tmp_path: Path) -> None:
    default = load_connector(_write(tmp_path, {}), {})
    assert isinstance(default, RelayConnectorConfig) and default.mqtt_publish_max_attempts == 5
    config = load_connector(_write(tmp_path, {"mqtt.publish.max.attempts": "2"}), {})
    assert isinstance(config, RelayConnectorConfig) and config.mqtt_publish_max_attempts == 2
    assert "mqtt.publish.max.attempts" in _problems(tmp_path, {"mqtt.publish.max.attempts": "0"})

"""The replay's MQTT target against a fake publisher and dead-letter producer: routing through the
relay's routes, confirmation on PUBACK only, the in-flight window and reconnects, dead letters,
refusals, expiry, and the stall that stops a replay."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import replace

import pytest

from mqtt_kafka_sync.config.model import RelayRouteConfig
from mqtt_kafka_sync.kafka.dead_letter import DeadLetters
from mqtt_kafka_sync.mqtt.events import Acked, Connected, Disconnected, Refused
from mqtt_kafka_sync.relay.routes import CommandRouter
from mqtt_kafka_sync.replay import mqtt_target as target_module
from mqtt_kafka_sync.replay.exceptions import ReplayError
from mqtt_kafka_sync.replay.mqtt_target import ExpiryFrom, MqttTarget
from mqtt_kafka_sync.replay.target import Headers, SourceRecord
from tests.unit.relay.relay_fakes import FakePublisher, FakeSink
from tests.unit.relay.test_broker_answers_relay import PAHO_PROTOCOL_ERROR, ForgettingPublisher

NOW = 1_800_000_000.0
SOURCE = "commands"
ROUTE = RelayRouteConfig(
    name="cmd", kafka_topic=SOURCE, kafka_key="{plant}.{device}", mqtt_topic="p/{plant}/d/{device}/c"
)


class Harness:
    def __init__(
        self,
        route: RelayRouteConfig = ROUTE,
        *,
        expiry_from: ExpiryFrom = "written",
        stall_timeout: float = 600.0,
        receive_maximum: int = 65535,
        max_attempts: int | None = None,
    ) -> None:
        self.skew = 0.0
        self.events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.publisher = ForgettingPublisher()
        self.sink = FakeSink()
        self.stop = threading.Event()
        self.target = MqttTarget(
            CommandRouter([route]),
            publisher=self.publisher,
            dead_letters=DeadLetters(self.sink, "dlq", "relay-test", self.events),
            events=self.events,
            max_inflight=100,
            broker="tcp://broker:1883",
            expiry_from=expiry_from,
            stall_timeout=stall_timeout,
            stop=self.stop,
            clock=lambda: NOW,
            monotonic=lambda: time.monotonic() + self.skew,
            max_attempts=max_attempts,
        )
        self.results: dict[tuple[int, int], list[str | None]] = {}
        self.connect(receive_maximum)
        self.target.connect(1.0)

    def connect(self, receive_maximum: int = 65535) -> None:
        self.events.put(Connected(False, receive_maximum, 2, True, None))

    def send(self, partition: int, offset: int, key: bytes | None = b"p1.d1", *, age_s: float = 0.0) -> None:
        where = (partition, offset)
        self.results[where] = []
        headers: Headers = [("origin", b"test"), ("replay.source", f"{SOURCE}/{partition}/{offset}")]
        stamp = int((NOW - age_s) * 1000)
        value = f"{partition}:{offset}".encode()
        record = SourceRecord(
            SOURCE, partition, offset, key=key, value=value, headers=headers, timestamp_ms=stamp
        )
        self.target.send(record, self.results[where].append)

    def ack(self, *mids: int, reason_code: int = 0) -> None:
        for mid in mids:
            self.events.put(Acked(mid, reason_code, "" if reason_code < 0x80 else "Not authorized"))
        self.target.poll(0.01)

    def confirmed(self) -> list[tuple[int, int]]:
        return [where for where, answers in self.results.items() if answers == [None]]


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(target_module, "WAIT_S", 0.001)


def test_records_are_routed_and_published_and_confirmed_only_on_the_brokers_ack() -> None:
    h = Harness()
    h.send(0, 10)
    h.send(1, 5, key=b"p2.d7")
    h.send(0, 11)
    assert [c.topic for _, c in h.publisher.sent] == ["p/p1/d/d1/c", "p/p2/d/d7/c", "p/p1/d/d1/c"]
    assert h.publisher.seqs() == ["0:10", "1:5", "0:11"]
    command = h.publisher.sent[0][1]
    assert command.user_properties == (("origin", "test"), ("replay.source", "commands/0/10"))
    assert command.correlation_data == b"commands/0/10"  # what the relay gives the same record
    assert (command.qos, command.expiry_seconds) == (1, None)
    assert h.confirmed() == [] and h.target.outstanding == 3
    h.ack(2)
    assert h.confirmed() == [(1, 5)]
    assert h.target.flush(0.0) == 2
    h.ack(1, 3)
    assert h.target.flush(0.0) == 0
    assert sorted(h.confirmed()) == [(0, 10), (0, 11), (1, 5)]
    assert h.target.stats.delivered == 3 and h.target.stats.dead_lettered == 0


def test_the_window_is_the_brokers_receive_maximum_and_flush_publishes_the_rest() -> None:
    h = Harness(receive_maximum=2)
    for offset in range(5):
        h.send(0, offset)
    assert h.publisher.seqs() == ["0:0", "0:1"]
    h.ack(1)
    assert h.publisher.seqs() == ["0:0", "0:1", "0:2"]
    h.ack(2, 3)
    h.ack(4, 5)
    assert h.target.flush(0.5) == 0
    assert h.publisher.seqs() == [f"0:{o}" for o in range(5)]


def test_after_a_reconnect_nothing_new_goes_out_before_the_resent_commands_are_acked() -> None:
    h = Harness(receive_maximum=2)
    for offset in range(4):
        h.send(0, offset)
    h.events.put(Disconnected("Unspecified error", 0x80))
    h.publisher.is_connected = False
    h.target.poll(0.01)
    h.publisher.is_connected = True
    h.connect(receive_maximum=2)
    h.target.poll(0.01)
    assert h.publisher.seqs() == ["0:0", "0:1"], "a new command overtook the ones paho sends again"
    h.ack(1, 2)
    assert h.publisher.seqs() == ["0:0", "0:1", "0:2", "0:3"]
    assert h.target.stats.outages == 1


def test_records_the_relay_would_not_publish_are_dead_lettered_and_confirmed_once_kafka_has_them() -> None:
    h = Harness()
    h.sink.holding = True
    h.send(0, 0, key=b"p1.#")
    h.send(0, 1, key=None)
    h.send(0, 2)
    assert h.publisher.seqs() == ["0:2"]
    h.ack(1)
    assert h.confirmed() == [(0, 2)], "a dead letter was confirmed before Kafka had it"
    assert h.target.outstanding == 2
    h.sink.holding = False
    assert h.target.flush(0.5) == 0
    assert sorted(h.confirmed()) == [(0, 0), (0, 1), (0, 2)]
    headers = [produced[3] for produced in h.sink.produced]
    assert [x["dlq.reason"] for x in headers] == ["unsafe-placeholder", "bad-key"]
    assert headers[0]["kafka.topic"] == SOURCE and headers[0]["kafka.offset"] == "0"
    assert headers[0]["replay.source"] == b"commands/0/0" and headers[0]["dlq.connector"] == "relay-test"
    assert h.target.stats.dlq_by_reason == {"unsafe-placeholder": 1, "bad-key": 1}


def test_commands_beyond_the_brokers_limits_are_dead_lettered_as_the_relay_does() -> None:
    h = Harness(route=replace(ROUTE, mqtt_qos=2))
    h.events.put(Connected(False, 100, 1, True, None))  # the broker now says: QoS 1 at most
    h.target.poll(0.01)
    h.send(0, 0)
    assert h.target.flush(0.5) == 0
    assert h.publisher.sent == [] and h.confirmed() == [(0, 0)]
    assert "maximum QoS is 1" in h.sink.produced[0][3]["dlq.detail"]


def test_a_publish_the_broker_refuses_stops_the_replay_with_the_reason() -> None:
    h = Harness()
    h.send(0, 0)
    h.send(0, 1)
    h.ack(1, reason_code=0x87)
    assert h.results[(0, 0)] == [
        "the broker refused the publish to p/p1/d/d1/c: the broker answered not authorized (0x87): the "
        "broker's access control does not allow it for this client id or user"
    ]
    h.ack(2)
    assert h.results[(0, 1)] == [], "confirmed after the replay failed"
    h.send(0, 2)
    assert h.publisher.seqs() == ["0:0", "0:1"], "published after the replay failed"
    assert h.target.flush(5.0) == 2  # at once


def test_a_command_the_broker_keeps_failing_stops_the_replay_after_max_attempts() -> None:
    """mqtt.publish.max.attempts bounds the replay too: a command whose sends keep ending the
    connection (paho's protocol error on a malformed PUBACK) stops the replay with the broker's
    answer, as a refusal does, instead of being sent for ever."""
    h = Harness(max_attempts=2)
    h.send(0, 0)
    for _ in range(2):
        h.events.put(PAHO_PROTOCOL_ERROR)
        h.target.poll(0.01)
        h.connect()
        h.target.poll(0.01)
    (answer,) = h.results[(0, 0)]
    assert answer is not None and "sent 2 times" in answer and "Received malformed packet" in answer
    assert h.publisher.forgotten == [1]


def test_a_dead_letter_kafka_refuses_stops_the_replay() -> None:
    h = Harness()
    h.sink.failing = True
    h.send(0, 0, key=b"bad")
    h.target.poll(0.01)
    (answer,) = h.results[(0, 0)]
    assert answer is not None and "dead-letter topic dlq refused it" in answer and "bad-key" in answer


@pytest.mark.parametrize(("expiry_from", "published"), [("written", False), ("replayed", True)])
def test_expiry_counts_from_the_kafka_timestamp_unless_asked_to_count_from_the_replay(
    expiry_from: ExpiryFrom, published: bool
) -> None:
    h = Harness(route=replace(ROUTE, message_expiry_seconds=300), expiry_from=expiry_from)
    h.send(0, 0, age_s=3600)
    h.send(0, 1, age_s=100)
    assert h.target.outstanding == len(h.publisher.sent)  # a dead letter is confirmed at once here
    expiries = [c.expiry_seconds for _, c in h.publisher.sent]
    if published:
        assert expiries == [300, 300] and h.sink.produced == []
    else:
        assert expiries == [200]
        assert h.sink.produced[0][3]["dlq.reason"] == "expired"


def test_a_full_buffer_makes_send_wait_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(target_module, "BUFFER_MAX", 3)
    h = Harness(receive_maximum=1)
    h.events.put(Disconnected("Server unavailable", 0x88))
    h.publisher.is_connected = False
    h.target.poll(0.01)
    h.send(0, 0)
    h.send(0, 1)
    threading.Timer(0.2, h.stop.set).start()
    started = time.monotonic()
    h.send(0, 2)  # the third waits: the broker is away
    assert 0.15 < time.monotonic() - started < 2.0
    assert h.target.outstanding == 3 and h.publisher.sent == []


def test_nothing_confirmed_for_the_stall_timeout_stops_the_oldest_record() -> None:
    h = Harness(stall_timeout=30.0)
    h.send(0, 7)
    h.events.put(Disconnected("Server unavailable", 0x88))
    h.publisher.is_connected = False
    h.target.poll(0.01)
    h.skew += 29
    h.target.poll(0.0)
    assert h.results[(0, 7)] == []
    h.skew += 2
    h.target.poll(0.0)
    assert h.results[(0, 7)] == [
        "nothing was confirmed for 30s (the MQTT broker tcp://broker:1883 was unreachable)"
    ]


def test_connect_gives_up_with_the_brokers_reason() -> None:
    events: queue.SimpleQueue[object] = queue.SimpleQueue()
    target = MqttTarget(
        CommandRouter([ROUTE]),
        publisher=FakePublisher(),
        dead_letters=DeadLetters(FakeSink(), "dlq", "relay-test", events),
        events=events,
        max_inflight=10,
        broker="tcp://broker:1883",
    )
    events.put(Refused("Not authorized"))
    with pytest.raises(ReplayError, match=r"tcp://broker:1883 within 0.2s \(Not authorized\)"):
        target.connect(0.2)

"""The relay task against fake Kafka and MQTT clients: ordering, offset stores, the in-flight
window, pausing with hysteresis, reconnects, revocations, dead letters and draining."""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from mqtt_kafka_sync.config.model import RelayRouteConfig
from mqtt_kafka_sync.errors import CommandError
from mqtt_kafka_sync.kafka.dead_letter import DeadLetters
from mqtt_kafka_sync.mqtt import window as window_module
from mqtt_kafka_sync.mqtt.events import Acked, Connected, Disconnected
from mqtt_kafka_sync.relay import flow as flow_module
from mqtt_kafka_sync.relay import task as task_module
from mqtt_kafka_sync.relay.offsets import TopicPartition
from mqtt_kafka_sync.relay.routes import CommandRouter
from mqtt_kafka_sync.relay.task import RelayTask
from tests.unit.relay.relay_fakes import FakePublisher, FakeSink

NOW = 1_800_000_000.0
TOPIC = "commands"
P0, P1 = (TOPIC, 0), (TOPIC, 1)
ROUTE = RelayRouteConfig(
    name="cmd", kafka_topic=TOPIC, kafka_key="{plant}.{device}", mqtt_topic="p/{plant}/d/{device}/c"
)
Callback = Callable[[set[TopicPartition]], None]


class FakeConsumer:
    def __init__(self, on_assigned: Callback, on_revoked: Callback, on_lost: Callback) -> None:
        self.on_assigned, self.on_revoked, self.on_lost = on_assigned, on_revoked, on_lost
        self.assigned: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()
        self.records: deque[Message] = deque()
        self.pending_stores: dict[TopicPartition, int] = {}
        self.stored: dict[TopicPartition, int] = {}
        self.closed = False
        self.subscribed = False
        self.kafka_up = True
        self.errors = 0
        self.kafka_refusal: str | None = None
        self.kafka_refusals: dict[str, int] = {}

    def subscribe(self) -> None:
        self.subscribed = True

    def consume(self, limit: int, timeout: float) -> list[Message]:
        out: list[Message] = []
        kept: deque[Message] = deque()
        while self.records:
            record = self.records.popleft()
            if (record.topic(), record.partition()) in self.paused or len(out) >= limit:
                kept.append(record)
            else:
                out.append(record)
        self.records = kept
        return out

    def member_id(self) -> str | None:
        return "member-1" if self.subscribed else None

    def pause(self, tps: set[TopicPartition]) -> None:
        self.paused |= tps

    def resume(self, tps: set[TopicPartition]) -> None:
        self.paused -= tps

    def store(self, tp: TopicPartition, offset: int) -> None:
        self.pending_stores[tp] = offset

    def flush_stores(self) -> None:
        self.stored.update(self.pending_stores)
        self.pending_stores.clear()

    def close(self) -> None:
        self.closed = True

    # -- driven by the tests ----------------------------------------------------------------
    def assign(self, *tps: TopicPartition) -> None:
        self.assigned |= set(tps)
        self.on_assigned(set(tps))

    def revoke(self, *tps: TopicPartition) -> None:
        self.on_revoked(set(tps))
        self.assigned -= set(tps)
        self.paused -= set(tps)


class Harness:
    def __init__(self, route: RelayRouteConfig = ROUTE, max_inflight: int = 100) -> None:
        self.skew = 0.0  # added to the monotonic clock, to make time pass
        self.events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.publisher = FakePublisher()
        self.sink = FakeSink()
        self.consumer: FakeConsumer | None = None

        def factory(assigned: Callback, revoked: Callback, lost: Callback) -> FakeConsumer:
            self.consumer = FakeConsumer(assigned, revoked, lost)
            return self.consumer

        self.task = RelayTask(
            "relay-test",
            CommandRouter([route]),
            consumer=factory,
            publisher=self.publisher,
            dead_letters=DeadLetters(self.sink, "dlq", "relay-test", self.events),
            events=self.events,
            max_inflight=max_inflight,
            clock=lambda: NOW,
            monotonic=lambda: time.monotonic() + self.skew,
        )
        assert self.consumer is not None
        self.kafka: FakeConsumer = self.consumer
        self.task.start()
        self.offsets: dict[TopicPartition, int] = {P0: 0, P1: 0}

    def connect(self, receive_maximum: int = 65535, maximum_qos: int = 2) -> None:
        self.events.put(Connected(False, receive_maximum, maximum_qos, True, None))

    def feed(self, tp: TopicPartition, key: bytes | None = b"p1.d1", count: int = 1) -> None:
        for _ in range(count):
            offset = self.offsets[tp]
            self.offsets[tp] += 1
            self.kafka.records.append(
                Message(
                    topic=tp[0],
                    partition=tp[1],
                    offset=offset,
                    key=key,
                    value=f"{tp[1]}:{offset}".encode(),
                    timestamp=(TIMESTAMP_CREATE_TIME, int(NOW * 1000)),
                )
            )

    def ack(self, *mids: int, reason_code: int = 0) -> None:
        for mid in mids:
            self.events.put(Acked(mid, reason_code, "" if reason_code < 0x80 else f"code {reason_code}"))

    def steps(self, count: int = 3) -> None:
        for _ in range(count):
            self.task.step()


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_module, "WAIT_S", 0.001)


def test_commands_go_out_in_offset_order_and_offsets_are_stored_only_after_acks() -> None:
    h = Harness()
    h.connect()
    h.kafka.assign(P0, P1)
    h.feed(P0, count=3)
    h.feed(P1, count=2)
    h.steps()
    assert h.publisher.seqs() == ["0:0", "0:1", "0:2", "1:0", "1:1"]
    assert h.kafka.stored == {}
    h.ack(2)  # P0 offset 1 before offset 0: nothing may be stored yet
    h.steps()
    assert h.kafka.stored == {}
    h.ack(1)
    h.steps()
    assert h.kafka.stored == {P0: 2}
    h.ack(3, 4, 5)
    h.steps()
    assert h.kafka.stored == {P0: 3, P1: 2}
    assert h.task.stats.delivered == 5 and h.task.tracker.finished == 5
    assert h.task.ready


def test_in_flight_window_is_the_brokers_receive_maximum() -> None:
    h = Harness(max_inflight=100)
    h.connect(receive_maximum=2)
    h.kafka.assign(P0)
    h.feed(P0, count=5)
    h.steps()
    assert len(h.publisher.sent) == 2
    h.ack(1)
    h.steps()
    assert len(h.publisher.sent) == 3


def test_nothing_is_published_before_the_first_connection_and_partitions_stay_paused() -> None:
    h = Harness()
    h.kafka.assign(P0)
    h.feed(P0, count=2)
    h.steps()
    assert h.publisher.sent == [] and h.kafka.paused == {P0}
    h.connect()
    h.steps()
    assert len(h.publisher.sent) == 2 and h.kafka.paused == set()


def test_an_outage_pauses_and_no_new_command_overtakes_the_ones_being_sent_again() -> None:
    h = Harness()
    h.connect(receive_maximum=2)
    h.kafka.assign(P0, P1)
    h.feed(P0, count=4)
    h.steps()
    assert h.publisher.seqs() == ["0:0", "0:1"]
    h.events.put(Disconnected("Unspecified error", 0x80))
    h.publisher.is_connected = False
    h.steps()
    assert h.kafka.paused == {P0, P1}
    assert h.task.stats.outages == 1
    h.publisher.is_connected = True
    h.connect(receive_maximum=2)
    h.steps()
    assert h.publisher.seqs() == ["0:0", "0:1"], "a new command went out before paho's re-sends were acked"
    assert h.kafka.paused == {P0, P1}, "resumed while re-sent commands were unacknowledged"
    h.ack(1, 2)
    h.steps()
    assert h.publisher.seqs() == ["0:0", "0:1", "0:2", "0:3"]
    assert h.kafka.paused == set()
    assert h.kafka.stored == {P0: 2}


def test_backlog_pauses_above_the_high_mark_and_resumes_below_the_low_mark(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(flow_module, "BUFFER_HIGH", 10)
    monkeypatch.setattr(flow_module, "BUFFER_LOW", 4)
    h = Harness()
    h.connect(receive_maximum=1)
    h.kafka.assign(P0)
    h.feed(P0, count=30)
    h.steps(2)
    assert h.kafka.paused == {P0}
    resumed_with = None
    for mid in range(1, 30):
        h.ack(mid)
        h.steps(1)
        if not h.kafka.paused:
            resumed_with = len(h.task._buffer)
            break
        assert len(h.task._buffer) > 4, "still paused with the buffer at the low mark"
    assert resumed_with is not None and resumed_with <= 4, "never resumed"
    assert resumed_with > 0, "resumed only once the buffer ran dry: no hysteresis"


def test_dead_letters_keep_offset_order_and_are_confirmed_before_the_offset_is_stored() -> None:
    h = Harness()
    h.connect()
    h.kafka.assign(P0)
    h.feed(P0, key=b"p1.#")  # offset 0: unsafe
    h.feed(P0)  # offset 1: fine
    h.sink.failing = True
    h.steps()
    assert len(h.publisher.sent) == 1
    h.ack(1)
    h.steps()
    assert h.kafka.stored == {}, "offset 1 stored while offset 0 was not dead-lettered yet"
    assert len(h.task._retries) == 1
    topic, value, key, headers = h.sink.produced[0]
    assert (topic, value, key) == ("dlq", b"0:0", b"p1.#")
    assert headers["dlq.reason"] == "unsafe-placeholder" and headers["kafka.offset"] == "0"
    h.sink.failing = False
    h.task._retries = deque((0.0, letter) for _, letter in h.task._retries)  # due now
    h.steps()
    assert h.kafka.stored == {P0: 2}
    assert h.task.stats.dead_lettered == 1 and h.task.stats.dlq_by_reason == {"unsafe-placeholder": 1}


def test_a_refused_publish_is_dead_lettered_and_a_lost_qos2_exchange_is_published_again() -> None:
    h = Harness(route=replace(ROUTE, mqtt_qos=2))
    h.connect()
    h.kafka.assign(P0)
    h.feed(P0, count=2)
    h.steps()
    h.ack(1, reason_code=0x87)  # not authorized
    h.ack(2, reason_code=0x92)  # packet identifier not found: publish again
    h.steps()
    assert [mid for mid, _ in h.publisher.sent] == [1, 2, 3]
    assert h.publisher.sent[2][1].payload == b"0:1"
    h.sink.poll()
    h.steps()
    assert h.sink.produced[0][3]["dlq.reason"] == "mqtt-rejected"
    assert h.kafka.stored == {P0: 1}
    h.ack(3, reason_code=0x92)
    h.steps()
    h.ack(4, reason_code=0x92)
    h.steps()
    h.sink.poll()
    h.steps()
    assert len(h.publisher.sent) == 4 and h.task.stats.republished == 2
    assert [p[3]["dlq.reason"] for p in h.sink.produced] == ["mqtt-rejected", "mqtt-rejected"]
    assert h.kafka.stored == {P0: 2}


def test_commands_beyond_the_brokers_limits_are_dead_lettered() -> None:
    h = Harness(route=replace(ROUTE, mqtt_qos=2))
    h.connect(maximum_qos=1)
    h.kafka.assign(P0)
    h.feed(P0)
    h.steps()
    assert h.publisher.sent == []
    assert "maximum QoS is 1" in h.sink.produced[0][3]["dlq.detail"]


def test_revocation_drops_buffered_records_and_finishes_in_flight_ones_first() -> None:
    h = Harness()
    h.connect(receive_maximum=1)
    h.kafka.assign(P0, P1)
    h.feed(P0, count=3)
    h.feed(P1, count=1)
    h.steps()
    assert h.publisher.seqs() == ["0:0"]
    h.ack(1)  # arrives while the revocation waits
    h.kafka.revoke(P0)
    assert h.kafka.stored == {P0: 1}, "the acknowledged offset was not stored before the commit"
    assert h.task.stats.dropped_on_revoke == 2
    h.steps()
    assert h.publisher.seqs() == ["0:0", "1:0"]


def test_acks_for_a_revoked_partition_do_not_store_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_module, "REVOKE_WAIT_S", 0.05)
    h = Harness()
    h.connect()
    h.kafka.assign(P0)
    h.feed(P0)
    h.steps()
    h.kafka.revoke(P0)  # no ack within the wait
    h.ack(1)
    h.steps()
    assert h.kafka.stored == {}


def test_drain_waits_for_in_flight_commands_then_commits_and_ends_the_session() -> None:
    h = Harness()
    h.connect()
    h.kafka.assign(P0)
    h.feed(P0, count=2)
    h.steps()
    h.feed(P0)  # read but never published: not stored, so it is read again later
    h.ack(1, 2)
    assert h.task.drain(1.0)
    assert h.kafka.stored == {P0: 2} and h.kafka.closed and h.publisher.stopped is True


def test_drain_gives_up_on_unacknowledged_commands() -> None:
    h = Harness()
    h.connect()
    h.kafka.assign(P0)
    h.feed(P0)
    h.steps()
    assert not h.task.drain(0.05)
    assert h.kafka.stored == {} and h.kafka.closed


def test_commands_never_acknowledged_on_a_live_connection_are_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    h.connect()
    h.kafka.assign(P0)
    h.feed(P0)
    h.steps()
    h.skew += window_module.STALL_S - 1
    h.steps()
    assert "none of 1 commands in flight" not in caplog.text
    h.skew += 2
    h.steps()
    assert (
        "none of 1 commands in flight was acknowledged for 60s (oldest commands [0] offset 0" in caplog.text
    )
    assert h.kafka.stored == {}


def test_command_error_reasons_are_stable() -> None:
    error = CommandError("bad-key", "no key", mqtt_topic="")
    assert error.reason == "bad-key" and str(error) == "bad-key: no key"

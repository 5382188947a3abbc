"""Hostile input to the ingest pipeline: nothing a message carries stops it, and nothing is lost.

Table-driven over the limits a record meets on its way (the producer's ``message.max.bytes``, the
dead-letter topic's own limit, the topic length limit), the bridge's reserved header names, a
Kafka topic librdkafka calls unknown, and an encoder that fails in an unforeseen way. Every case
ends with each message either in its topic or in the dead-letter topic, acknowledged in order.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from mqtt_kafka_sync.codec.exceptions import Rejected
from mqtt_kafka_sync.config.model import RouteConfig
from mqtt_kafka_sync.errors import KafkaDeliveryError, RoutingError
from mqtt_kafka_sync.ingest import held as held_module
from mqtt_kafka_sync.ingest.acks import AckTracker
from mqtt_kafka_sync.ingest.pipeline import IngestPipeline, device_properties
from mqtt_kafka_sync.ingest.routes import IngestRoutes
from mqtt_kafka_sync.kafka.dead_letter_copy import STUB_FIELD_BYTES, record_size
from mqtt_kafka_sync.kafka.producer import fit_batches
from mqtt_kafka_sync.mqtt.packets import Publish
from tests.unit.ingest.test_pipeline import FakeSink

LIMIT = 100_000
ROUTES = [
    RouteConfig("t", "plants/{plant}/devices/{device}/telemetry", "telemetry", "{plant}.{device}", "bytes"),
    RouteConfig("s", "plants/{plant}/devices/{device}/status", "status", "{plant}.{device}", "bytes"),
]


def _setup(
    *, limit: int = LIMIT, retry_timeout: float | None = 60.0, topic_max_length: int = 1024
) -> tuple[IngestPipeline, FakeSink, list[tuple[int, int, int]], list[str]]:
    sink = FakeSink(max_message_bytes=limit)
    acks: list[tuple[int, int, int]] = []
    stuck: list[str] = []
    pipeline = IngestPipeline(
        "c",
        IngestRoutes(ROUTES),
        sink=sink,
        tracker=AckTracker(acks.extend),
        dlq_topic="c-dlq",
        on_stuck=stuck.append,
        retry_timeout=retry_timeout,
        topic_max_length=topic_max_length,
    )
    pipeline.on_connected(1, False)
    return pipeline, sink, acks, stuck


def _msg(packet_id: int, payload: bytes, kind: str = "telemetry", props: Any = None) -> Publish:
    return Publish(f"plants/p/devices/d/{kind}", payload, 1, False, False, packet_id, props or [])


def _drain(pipeline: IngestPipeline, rounds: int = 5) -> None:
    for _ in range(rounds):
        pipeline.on_tick()


def _records(sink: FakeSink, topic: str) -> list[tuple[bytes, dict[str, Any]]]:
    return [(value, dict(headers)) for t, value, _, headers in sink.records if t == topic]


@pytest.mark.parametrize(
    ("size", "where"),
    [
        (0, "telemetry"),
        (1, "telemetry"),
        (LIMIT - 200, "telemetry"),
        (LIMIT - 100, "telemetry"),
        (LIMIT, "c-dlq"),
        (LIMIT + 1, "c-dlq"),
        (4 * LIMIT, "c-dlq"),
        (2_000_000, "c-dlq"),
    ],
)
def test_payload_sizes_around_the_producer_limit(size: int, where: str) -> None:
    pipeline, sink, acks, stuck = _setup()
    payload = b"x" * size
    pipeline.on_message(_msg(1, payload), 1)
    pipeline.on_message(_msg(2, b"next"), 1)  # the next message always flows
    _drain(pipeline)
    assert acks == [(1, 1, 1), (1, 2, 1)]
    assert stuck == []
    assert _records(sink, "telemetry")[-1][0] == b"next"
    if where == "telemetry":
        assert _records(sink, "telemetry")[0][0] == payload
        assert _records(sink, "c-dlq") == []
        return
    [(value, headers)] = _records(sink, "c-dlq")
    assert headers["dlq.reason"] == "kafka-rejected"
    assert "Message size too large" in headers["dlq.detail"]
    assert headers["dlq.truncated"] == "true"
    assert headers["dlq.original.bytes"] == str(size)
    assert headers["dlq.original.sha256"] == hashlib.sha256(payload).hexdigest()
    assert payload.startswith(value)
    assert pipeline.stats.dlq_by_reason == {"kafka-rejected": 1}


def test_a_dead_letter_topic_smaller_than_the_producer_gets_a_stub() -> None:
    """The dead-letter topic's max.message.bytes is below the producer's: Kafka refuses the copy in
    its delivery report, and a stub (every part cut to STUB_FIELD_BYTES) goes instead."""
    pipeline, sink, acks, stuck = _setup()
    real_produce = sink.produce
    refused: list[int] = []

    def produce(topic: str, value: bytes, key: bytes | None, headers: Any, on_delivery: Any) -> None:
        if topic == "c-dlq" and len(value) > 10_000:  # the topic's own limit
            refused.append(len(value))
            sink._due.append(lambda: on_delivery(_SizeErr(), None))
            return
        real_produce(topic, value, key, headers, on_delivery)

    sink.produce = produce  # type: ignore[method-assign]
    pipeline.on_message(_msg(1, b"y" * (3 * LIMIT)), 1)
    _drain(pipeline)
    [(value, headers)] = _records(sink, "c-dlq")
    assert refused and len(value) == STUB_FIELD_BYTES
    assert headers["dlq.original.bytes"] == str(3 * LIMIT)
    assert acks == [(1, 1, 1)]
    assert stuck == []


class _SizeErr:
    def code(self) -> int:
        return 10

    def str(self) -> str:
        return "Broker: Message size too large"

    def retriable(self) -> bool:
        return False


def test_a_dead_letter_copy_whose_key_and_headers_alone_exceed_the_limit_is_a_stub() -> None:
    pipeline, sink, acks, _ = _setup(topic_max_length=65_535)
    topic = "plants/" + "d" * 60_000  # no route; the key and mqtt.topic header repeat the topic
    pipeline.on_message(Publish(topic, b"{}", 1, False, False, 1, [("p", "v" * 50_000)]), 1)
    pipeline.on_message(_msg(2, b"next"), 1)
    _drain(pipeline)
    [(value, headers)] = _records(sink, "c-dlq")
    assert headers["dlq.reason"] == "no-route"
    assert value == b"{}"
    assert len(headers["mqtt.topic"].encode()) <= STUB_FIELD_BYTES + 40
    assert headers["dlq.original.bytes"] == "2"
    assert record_size(value, sink.records[0][2], sink.records[0][3]) <= LIMIT
    assert acks == [(1, 1, 1), (1, 2, 1)]


@pytest.mark.parametrize("length", [1023, 1024, 1025, 65_535])
def test_topics_longer_than_the_limit_are_dead_lettered(length: int) -> None:
    pipeline, sink, acks, _ = _setup()
    prefix = "plants/p/devices/"
    topic = prefix + "d" * (length - len(prefix) - len("/telemetry")) + "/telemetry"
    assert len(topic) == length
    pipeline.on_message(Publish(topic, b"v", 1, False, False, 1, []), 1)
    _drain(pipeline)
    if length <= 1024:
        assert [v for v, _ in _records(sink, "telemetry")] == [b"v"]
    else:
        [(_, headers)] = _records(sink, "c-dlq")
        assert headers["dlq.reason"] == "topic-too-long"
        assert str(length) in headers["dlq.detail"]
    assert acks == [(1, 1, 1)]


@pytest.mark.parametrize(
    "name",
    [
        "mqtt.topic",
        "mqtt.qos",
        "mqtt.retain",
        "mqtt.user.x",
        "dlq.reason",
        "dlq.detail",
        "dlq.connector",
        "kafka.topic",
        "kafka.offset",
        "replay.source",
    ],
)
def test_device_properties_cannot_spoof_the_bridges_headers(name: str) -> None:
    pipeline, sink, _, _ = _setup()
    pipeline.on_message(_msg(1, b"v", props=[(name, "spoofed"), ("site", "a")]), 1)
    _drain(pipeline)
    [(_, headers)] = _records(sink, "telemetry")
    names = [n for n, _ in sink.records[0][3]]
    assert names.count(name) == (1 if name in ("mqtt.topic", "mqtt.qos", "mqtt.retain") else 0)
    assert headers.get(name) != "spoofed"
    assert headers["mqtt.user." + name] == "spoofed"
    assert headers["site"] == "a"


def test_device_properties_keep_other_names_and_order() -> None:
    props = [("a", "1"), ("mqtt.topic", "x"), ("a", "2"), ("mqttish", "3")]
    assert device_properties(props) == [
        ("a", "1"),
        ("mqtt.user.mqtt.topic", "x"),
        ("a", "2"),
        ("mqttish", "3"),
    ]


def test_an_unknown_topic_holds_only_its_records_in_order_until_it_appears(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(held_module, "HOLD_FIRST_DELAY", 0.001)
    pipeline, sink, acks, _ = _setup()
    sink.unknown.add("telemetry")
    for i in range(1, 6):
        pipeline.on_message(_msg(i, str(i).encode()), 1)
    pipeline.on_message(_msg(6, b"s", kind="status"), 1)  # another topic flows meanwhile
    _drain(pipeline)
    assert [v for v, _ in _records(sink, "status")] == [b"s"]
    assert _records(sink, "telemetry") == []
    assert acks == []  # acknowledgements go out in arrival order: all wait for the held ones
    assert pipeline.stats.held == 5
    tries = sink.attempts.count("telemetry")
    time.sleep(0.05)
    _drain(pipeline)
    assert sink.attempts.count("telemetry") > tries  # retried, one try per due time
    sink.unknown.clear()  # the topic is created
    deadline = time.monotonic() + 5
    while len(_records(sink, "telemetry")) < 5 and time.monotonic() < deadline:
        _drain(pipeline)
        time.sleep(0.01)
    assert [v for v, _ in _records(sink, "telemetry")] == [b"1", b"2", b"3", b"4", b"5"]
    assert [a[1] for a in acks] == [1, 2, 3, 4, 5, 6]
    assert pipeline.stats.held == 0
    assert _records(sink, "c-dlq") == []


def test_an_unknown_topic_is_dead_lettered_after_the_retry_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(held_module, "HOLD_FIRST_DELAY", 0.001)
    pipeline, sink, acks, _ = _setup(retry_timeout=0.05)
    sink.unknown.add("telemetry")
    for i in range(1, 4):
        pipeline.on_message(_msg(i, str(i).encode()), 1)
    time.sleep(0.1)
    deadline = time.monotonic() + 5
    while len(acks) < 3 and time.monotonic() < deadline:
        _drain(pipeline)
        time.sleep(0.01)
    dlq = _records(sink, "c-dlq")
    assert [v for v, _ in dlq] == [b"1", b"2", b"3"]
    assert {h["dlq.reason"] for _, h in dlq} == {"kafka-topic-missing"}
    assert [a[1] for a in acks] == [1, 2, 3]


def test_a_missing_dead_letter_topic_holds_the_message_unacknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(held_module, "HOLD_FIRST_DELAY", 0.001)
    pipeline, sink, acks, _ = _setup(retry_timeout=0.0)
    sink.unknown.add("c-dlq")
    pipeline.on_message(Publish("nowhere", b"v", 1, False, False, 1, []), 1)
    time.sleep(0.02)
    _drain(pipeline)
    assert acks == []  # never acknowledged while nothing in Kafka has it, whatever the timeout
    sink.unknown.clear()
    deadline = time.monotonic() + 5
    while not acks and time.monotonic() < deadline:
        _drain(pipeline)
        time.sleep(0.01)
    assert acks == [(1, 1, 1)]
    assert _records(sink, "c-dlq")[0][1]["dlq.reason"] == "no-route"


def test_an_encoder_fault_costs_one_message_not_the_task() -> None:
    pipeline, sink, acks, _ = _setup()

    def broken(payload: bytes, fields: Any) -> bytes:
        if payload == b"boom":
            raise ZeroDivisionError("division by zero")
        return payload

    pipeline._routes.encoders["t"] = broken
    pipeline.on_message(_msg(1, b"boom"), 1)
    pipeline.on_message(_msg(2, b"fine"), 1)
    _drain(pipeline)
    [(_, headers)] = _records(sink, "c-dlq")
    assert headers["dlq.reason"] == "internal-error"
    assert "ZeroDivisionError" in headers["dlq.detail"]
    assert [v for v, _ in _records(sink, "telemetry")] == [b"fine"]
    assert acks == [(1, 1, 1), (1, 2, 1)]


def test_what_an_encoder_rejects_is_dead_lettered_with_its_field_and_reason() -> None:
    """The pipeline calls each route's encoder itself (not ``IngestRoutes.encode``): a ``Rejected``
    becomes a ``bad-payload`` dead letter naming the field, a ``MessageError`` keeps its own reason."""
    pipeline, sink, acks, _ = _setup()

    def picky(payload: bytes, fields: Any) -> bytes:
        if payload == b"rejected":
            raise Rejected("expected long", "seq")
        if payload == b"message-error":
            raise RoutingError("no schema for it")
        return payload

    pipeline._routes.encoders["t"] = picky
    for packet_id, payload in enumerate((b"rejected", b"message-error", b"fine"), start=1):
        pipeline.on_message(_msg(packet_id, payload), 1)
    _drain(pipeline)
    letters = [(h["dlq.reason"], h["dlq.detail"]) for _, h in _records(sink, "c-dlq")]
    assert letters == [("bad-payload", "field 'seq': expected long"), ("no-route", "no schema for it")]
    assert [v for v, _ in _records(sink, "telemetry")] == [b"fine"]
    assert acks == [(1, 1, 1), (1, 2, 1), (1, 3, 1)]


def test_a_fatal_producer_error_ends_the_task() -> None:
    pipeline, sink, _, _ = _setup()

    def fatal(*args: Any, **kwargs: Any) -> None:
        raise KafkaDeliveryError("Fatal idempotent producer error", topic="telemetry", fatal=True)

    sink.produce = fatal  # type: ignore[method-assign]
    with pytest.raises(KafkaDeliveryError):
        pipeline.on_message(_msg(1, b"v"), 1)


class _TopicGone:
    def code(self) -> int:
        return 3  # UNKNOWN_TOPIC_OR_PART: the topic was deleted under the producer

    def str(self) -> str:
        return "Broker: Unknown topic or partition"

    def retriable(self) -> bool:
        return True


def test_a_topic_deleted_under_in_flight_records_keeps_them_in_arrival_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Delivery reports fail one by one while new messages arrive: the held queue is sorted by
    arrival, so the device's records still reach the topic in the order it sent them."""
    monkeypatch.setattr(held_module, "HOLD_FIRST_DELAY", 0.001)
    pipeline, sink, acks, _ = _setup()
    for i in (1, 2, 3):
        pipeline.on_message(_msg(i, str(i).encode()), 1)
    first, *rest = sink.callbacks
    sink._due.clear()  # Kafka answers these three itself, below
    sink.records.clear()
    sink.unknown.add("telemetry")
    # The topic disappears: the first report fails, a new message arrives, then the rest fail.
    first(_TopicGone(), None)
    pipeline.on_message(_msg(4, b"4"), 1)
    for report in rest:
        report(_TopicGone(), None)
    assert pipeline.stats.held == 4
    sink.unknown.clear()
    deadline = time.monotonic() + 5
    while len(acks) < 4 and time.monotonic() < deadline:
        _drain(pipeline)
        time.sleep(0.01)
    assert [v for v, _ in _records(sink, "telemetry")] == [b"1", b"2", b"3", b"4"]
    assert [a[1] for a in acks] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("size", "produced"), [(40_000, True), (48_000, True), (49_500, False), (200_000, False)]
)
def test_a_record_above_the_topics_own_limit_is_dead_lettered_before_it_is_produced(
    size: int, produced: bool
) -> None:
    """Batched with others, a record above the topic's max.message.bytes would fail the whole
    batch; known limits are checked first, and the dead-letter copy fits the dead-letter topic's."""
    pipeline, sink, acks, _ = _setup()
    sink.topic_limits.update({"telemetry": 50_000, "c-dlq": 20_000})
    pipeline.on_message(_msg(1, b"x" * size), 1)
    _drain(pipeline)
    assert ("telemetry" in sink.attempts) is produced
    if not produced:
        [(value, headers)] = _records(sink, "c-dlq")
        assert "max.message.bytes 50000" in headers["dlq.detail"]
        assert record_size(value, sink.records[-1][2], sink.records[-1][3]) <= 20_000
    assert acks == [(1, 1, 1)]


def test_a_record_refused_alone_teaches_the_topics_limit() -> None:
    """A topic whose limit was not known at start: Kafka refuses a batch for size, so each of its
    records is tried again alone, in order; the one refused alone is dead-lettered, and its size is
    learned, so the next such record is dead-lettered before it is produced."""
    pipeline, sink, acks, _ = _setup()
    sink.refuse_above = 50_000
    for i, payload in enumerate([b"a", b"b" * 60_000, b"c"], start=1):
        pipeline.on_message(_msg(i, payload), 1)
    batch = list(sink.callbacks)
    sink._due.clear()
    sink.records.clear()
    for report in batch:  # the batch of all three refused together
        report(_SizeErr(), None)
    deadline = time.monotonic() + 5
    while len(acks) < 3 and time.monotonic() < deadline:
        _drain(pipeline)
    assert [v for t, v in sink.delivered if t == "telemetry"] == [b"a", b"c"]
    # The dead-letter topic refuses the full copy too (same limit here): a stub of it is what it took.
    assert [v for t, v in sink.delivered if t == "c-dlq"] == [b"b" * STUB_FIELD_BYTES]
    assert _records(sink, "c-dlq")[-1][1]["dlq.reason"] == "kafka-rejected"
    assert [a[1] for a in acks] == [1, 2, 3]
    assert 50_000 < sink.topic_limits["telemetry"] < 62_000
    tries = sink.attempts.count("telemetry")
    pipeline.on_message(_msg(4, b"d" * 70_000), 1)
    _drain(pipeline)
    assert sink.attempts.count("telemetry") == tries  # known now: not produced at all
    assert [a[1] for a in acks] == [1, 2, 3, 4]


def test_batches_are_kept_below_the_smallest_topic_limit() -> None:
    base = {"linger.ms": "5"}
    assert fit_batches(base, {}) == base
    assert fit_batches(base, {"a": 1_048_588}) == base  # default limits: batch.size 256 KB stays
    assert fit_batches(base, {"a": 1_048_588, "dlq": 50_000})["batch.size"] == str(50_000 - 1_024)
    assert fit_batches({"batch.size": "16384"}, {"a": 50_000}) == {"batch.size": "16384"}

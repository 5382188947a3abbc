"""The ingest pipeline with a fake Kafka sink: routing, dead letters, acks only after delivery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mqtt_kafka_sync.config.model import RouteConfig
from mqtt_kafka_sync.errors import KafkaDeliveryError
from mqtt_kafka_sync.ingest.acks import AckTracker
from mqtt_kafka_sync.ingest.pipeline import DELIVERY_POLL_INTERVAL, IngestPipeline
from mqtt_kafka_sync.ingest.routes import IngestRoutes
from mqtt_kafka_sync.mqtt.packets import Publish


class FakeSink:
    """Holds produced records until ``poll`` delivers them, as librdkafka does.

    Like librdkafka, ``produce`` raises at once for a record above ``max_message_bytes`` (not
    retriable) and for a topic in ``unknown`` (retriable); ``refuse`` fails delivery reports.
    """

    def __init__(self, max_message_bytes: int = 1_000_000) -> None:
        self.max_message_bytes = max_message_bytes
        self.records: list[tuple[str, bytes, bytes | None, list[tuple[str, Any]]]] = []
        self._due: list[Callable[[], None]] = []
        self.refuse: set[str] = set()
        self.unknown: set[str] = set()
        self.attempts: list[str] = []
        self.callbacks: list[Callable[[Any, Any], None]] = []
        """Every ``on_delivery`` given, in order (a test may answer one itself)."""
        self.topic_limits: dict[str, int] = {}
        self.delivered: list[tuple[str, bytes]] = []
        """What Kafka took, in order."""
        self.refuse_above: int | None = None
        """Delivery reports fail for size for values above this (a topic's max.message.bytes)."""

    def produce(self, topic: str, value: bytes, key: bytes | None, headers: Any, on_delivery: Any) -> None:
        self.attempts.append(topic)
        if topic in self.unknown:
            raise KafkaDeliveryError("Local: Unknown topic", topic=topic, retriable=True, code=-188)
        size = len(value) + len(key or b"") + sum(len(n) + len(v or b"") for n, v in headers)
        if size > self.max_message_bytes:
            raise KafkaDeliveryError("Broker: Message size too large", topic=topic, code=10)
        self.records.append((topic, value, key, list(headers)))
        self.callbacks.append(on_delivery)
        too_large = self.refuse_above is not None and len(value) > self.refuse_above
        err = _TooLarge() if too_large else _Err() if topic in self.refuse else None
        self._due.append(lambda: self._answer(on_delivery, err, topic, value))

    def _answer(self, on_delivery: Any, err: Any, topic: str, value: bytes) -> None:
        if err is None:
            self.delivered.append((topic, value))
        on_delivery(err, _Rec(topic, value))

    def poll(self, timeout: float = 0.0) -> int:
        due, self._due = self._due, []
        for deliver in due:
            deliver()
        return len(due)

    def __len__(self) -> int:
        return len(self._due)


class _Rec:
    """The parts of confluent_kafka.Message a delivery report reads."""

    def __init__(self, topic: str, value: bytes = b"") -> None:
        self._topic = topic
        self._value = value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 0

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes | None:
        return None

    def latency(self) -> float:
        return 0.001

    def __len__(self) -> int:
        return len(self._value)


class _TooLarge:
    def retriable(self) -> bool:
        return False

    def code(self) -> int:
        return 10  # MSG_SIZE_TOO_LARGE

    def str(self) -> str:
        return "Broker: Message size too large"


class _Err:
    def retriable(self) -> bool:
        return False

    def code(self) -> int:
        return 17

    def str(self) -> str:
        return "Broker: Message size too large"


def _pipeline(**extra: Any) -> tuple[IngestPipeline, FakeSink, list[list[tuple[int, int, int]]]]:
    """A pipeline on a fake sink; ``extra``: more keyword arguments of :class:`IngestPipeline`."""
    sink = FakeSink()
    acks: list[list[tuple[int, int, int]]] = []
    tracker = AckTracker(acks.append)
    route = RouteConfig(
        "t", "plants/{plant}/devices/{device}/telemetry", "telemetry", "{plant}.{device}", "json"
    )
    pipeline = IngestPipeline(
        "c",
        IngestRoutes([route]),
        sink=sink,
        tracker=tracker,
        dlq_topic="c-dlq",
        on_stuck=lambda reason: None,
        **extra,
    )
    return pipeline, sink, acks


def _msg(topic: str, payload: bytes, packet_id: int, qos: int = 1) -> Publish:
    return Publish(topic, payload, qos, False, False, packet_id, [("site", "a")])


def test_acks_only_after_delivery_reports_served_on_tick() -> None:
    pipeline, sink, acks = _pipeline()
    pipeline.on_connected(1, False)
    pipeline.on_message(_msg("plants/p1/devices/d1/telemetry", b'{"v": 1}', 10), 1)
    pipeline.on_message(_msg("plants/p1/devices/d2/telemetry", b'{"v": 2}', 11, qos=2), 1)
    assert acks == []
    assert sink.records[0][:3] == ("telemetry", b'{"v":1}', b"p1.d1")
    assert ("mqtt.topic", "plants/p1/devices/d1/telemetry") in sink.records[0][3]
    assert ("site", "a") in sink.records[0][3]
    assert pipeline.on_tick() != DELIVERY_POLL_INTERVAL  # delivered during this tick: nothing more is due
    assert [a for batch in acks for a in batch] == [(1, 10, 1), (1, 11, 2)]


def test_tick_asks_to_wake_again_while_deliveries_are_due() -> None:
    pipeline, sink, _ = _pipeline()
    pipeline.on_message(_msg("plants/p1/devices/d1/telemetry", b"{}", 1), 1)
    sink.poll = lambda timeout=0.0: 0  # type: ignore[method-assign]  # Kafka has not answered yet
    assert pipeline.on_tick() == DELIVERY_POLL_INTERVAL


def test_bad_payload_and_refused_record_are_dead_lettered_then_acked() -> None:
    pipeline, sink, acks = _pipeline()
    sink.refuse.add("telemetry")
    pipeline.on_message(_msg("plants/p1/devices/d1/telemetry", b"not json", 1), 1)
    pipeline.on_message(_msg("plants/p1/devices/d1/telemetry", b'{"big": true}', 2), 1)
    pipeline.on_tick()  # first delivery round: DLQ record of msg 1 ok, msg 2 refused -> re-sent to DLQ
    pipeline.on_tick()
    dlq = [r for r in sink.records if r[0] == "c-dlq"]
    reasons = [dict(r[3])["dlq.reason"] for r in dlq]
    assert reasons == ["bad-payload", "kafka-rejected"]
    assert [a for batch in acks for a in batch] == [(1, 1, 1), (1, 2, 1)]
    assert pipeline.stats.dead_lettered == 2


class _Purged:
    """A record the producer took back (``purge``): librdkafka's ``_PURGE_QUEUE``."""

    def retriable(self) -> bool:
        return False

    def code(self) -> int:
        return -152

    def str(self) -> str:
        return "Local: Purged in queue"


def test_a_purged_record_is_neither_retried_nor_dead_lettered_nor_acknowledged() -> None:
    """Its session was handed over unacknowledged: the broker sends the message to the next owner."""
    pipeline, sink, acks = _pipeline()
    pipeline.on_connected(1, False)
    pipeline.on_message(_msg("plants/p1/devices/d1/telemetry", b"{}", 1), 1)
    sink.callbacks[0](_Purged(), _Rec("telemetry"))
    assert len(sink.records) == 1 and acks == []
    assert pipeline.stats.dead_lettered == 0 and pipeline.stats.retried == 0


def test_a_shared_producer_decides_when_its_pipelines_poll() -> None:
    """With ``serve`` the pipeline neither polls the sink itself nor picks its own wait."""
    asked: list[int] = []

    def serve(in_flight: int) -> float:
        asked.append(in_flight)
        return 0.05

    pipeline, sink, _ = _pipeline(owns_sink=False, serve=serve)
    pipeline.on_connected(1, False)
    pipeline.on_message(_msg("plants/p1/devices/d1/telemetry", b"{}", 1), 1)
    assert pipeline.on_tick() == 0.05
    assert asked == [1] and len(sink) == 1  # not polled here: the serving thread does it

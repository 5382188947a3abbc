"""End-to-end check: did every simulated (device, seq) reach Kafka once, in order, well-formed?

This module only reads Kafka: :func:`verify_topic` (until every expected record arrived, a timeout
or an idle spell) and :func:`read_topic` (a whole topic). What is counted, and how, is in
``verify_analysis.py`` (:func:`analyze`, network-free), whose names are importable from here too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    Message,
    TopicPartition,
)

from mqtt_kafka_sync.kafka.settings import Kafka, reader_settings
from mqtt_kafka_sync.sim.payload import TELEMETRY_TOPIC_TEMPLATE
from mqtt_kafka_sync.sim.verify_analysis import (
    Analyzer,
    DeviceReport,
    Latency,
    Record,
    VerifyError,
    VerifyReport,
    analyze,
)

_log = logging.getLogger(__name__)

__all__ = [
    "Analyzer",
    "DeviceReport",
    "Latency",
    "Record",
    "VerifyError",
    "VerifyReport",
    "analyze",
    "read_topic",
    "verify_topic",
]


def _consumer(kafka: Kafka) -> Consumer:
    return Consumer(
        reader_settings(kafka, "verify", {"enable.partition.eof": "true", "auto.offset.reset": "earliest"})
    )


def _partitions(consumer: Consumer, topic: str, timeout_s: float) -> list[int] | None:
    """The topic's partitions, or ``None`` if it does not exist (yet)."""
    metadata = consumer.list_topics(topic, timeout=max(0.1, timeout_s))
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        return None
    return sorted(info.partitions)


def _to_record(msg: Message) -> Record:
    headers: dict[str, bytes] = {}
    raw = msg.headers() or []
    for name, value in raw.items() if isinstance(raw, dict) else raw:
        headers[name] = value.encode() if isinstance(value, str) else (value or b"")
    ts_type, ts = msg.timestamp()
    return Record(
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=msg.key(),
        value=msg.value(),
        headers=headers,
        timestamp_ms=None if ts_type == TIMESTAMP_NOT_AVAILABLE else ts,
    )


def _is_eof(msg: Message) -> bool:
    error = msg.error()
    return error is not None and error.code() == KafkaError._PARTITION_EOF


def _is_record(msg: Message, topic: str) -> bool:
    """``True`` for a record, ``False`` for an end-of-partition event or a passing error; raises
    :class:`VerifyError` on an error that will not pass."""
    error = msg.error()
    if error is None:
        return True
    if error.code() != KafkaError._PARTITION_EOF:
        if error.fatal() or not error.retriable():
            raise VerifyError(f"reading {topic} partition {msg.partition()}: {error}")
        _log.warning("reading %s partition %s: %s (retrying)", topic, msg.partition(), error)
    return False


def _start_offsets(
    consumer: Consumer, topic: str, partitions: list[int], since_ms: int | None, timeout_s: float
) -> list[TopicPartition]:
    if since_ms is None:
        return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
    # offset -1 (OFFSET_END) in the answer: no record that recent, start at the end.
    wanted = [TopicPartition(topic, p, since_ms) for p in partitions]
    return consumer.offsets_for_times(wanted, timeout=max(1.0, timeout_s))


def verify_topic(
    kafka: Kafka,
    topic: str,
    expected: Mapping[str, int],
    timeout_s: float = 60.0,
    idle_s: float = 10.0,
    *,
    topic_template: str = TELEMETRY_TOPIC_TEMPLATE,
    since_ms: int | None = None,
    latency_warmup_s: float = 0.0,
) -> VerifyReport:
    """Read ``topic`` from the beginning until every expected (device, seq) was seen, ``timeout_s``
    passed, or nothing new arrived for ``idle_s``; then :func:`analyze` what was read.

    ``since_ms`` (epoch ms) starts each partition at its first record with a timestamp at or after
    it instead, for topics that hold earlier runs (the demo's long-lived stack).
    ``latency_warmup_s`` leaves the first seconds of sends out of the latency percentiles (start-up
    of the generator and connections), never out of the delivery counts."""
    analyzer = Analyzer(expected, topic_template, latency_warmup_s)
    start = time.monotonic()
    deadline, last_new = start + timeout_s, start
    consumer = _consumer(kafka)
    try:
        partitions = None
        while partitions is None and time.monotonic() < min(deadline, start + idle_s):
            partitions = _partitions(consumer, topic, 1.0)
            if partitions is None:
                time.sleep(0.2)
        if partitions is None:
            return analyzer.report(ended_by="idle (topic does not exist)")
        consumer.assign(_start_offsets(consumer, topic, partitions, since_ms, deadline - time.monotonic()))
        while analyzer.missing > 0:
            now = time.monotonic()
            if now >= deadline:
                return analyzer.report(ended_by="timeout")
            if now - last_new >= idle_s:
                return analyzer.report(ended_by="idle")
            for msg in consumer.consume(num_messages=1000, timeout=min(0.5, deadline - now)):
                if _is_record(msg, topic):
                    analyzer.add(_to_record(msg))
                    last_new = time.monotonic()
        return analyzer.report(ended_by="complete")
    finally:
        consumer.close()


def read_topic(kafka: Kafka, topic: str, timeout_s: float = 30.0) -> list[Record]:
    """Every record in ``topic`` up to the high watermarks read at the start (``[]`` if the topic
    does not exist); after ``timeout_s`` whatever was read so far, with a warning."""
    deadline = time.monotonic() + timeout_s
    consumer = _consumer(kafka)
    try:
        partitions = _partitions(consumer, topic, min(5.0, timeout_s))
        if partitions is None:
            return []
        ends: dict[int, int] = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=max(0.1, timeout_s))
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        records: list[Record] = []
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(
                num_messages=1000, timeout=min(0.5, max(0.0, deadline - time.monotonic()))
            ):
                partition, offset = msg.partition() or 0, msg.offset() or 0
                if partition not in ends:
                    continue
                if _is_record(msg, topic) and offset < ends[partition]:
                    records.append(_to_record(msg))
                if _is_eof(msg) or offset >= ends[partition] - 1:
                    ends.pop(partition)
        if ends:
            _log.warning("read_topic %s: timed out before the end of partitions %s", topic, sorted(ends))
        return records
    finally:
        consumer.close()

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_NOT_AVAILABLE,
    KafkaError,
    TopicPartition,
)

from mqtt_kafka_sync.sim import commands, verify
from mqtt_kafka_sync.sim.payload import device_topic, make_payload
from mqtt_kafka_sync.sim.verify import (
    Analyzer,
    Latency,
    Record,
    VerifyError,
    VerifyReport,
    analyze,
    read_topic,
    verify_topic,
)

DEVICES = ("p01.d0001", "p01.d0002", "p02.d0003")
MESSAGES = 5
EXPECTED = dict.fromkeys(DEVICES, MESSAGES)
SENT_AT = 1_718_000_000.0


def record(device: str, seq: int, partition: int | None = None, **changes: Any) -> Record:
    """A record as the bridge should produce it; ``changes`` override single fields."""
    base = Record(
        partition=DEVICES.index(device) if partition is None else partition,
        offset=0,
        key=device.encode(),
        value=make_payload(device, seq, 120, clock=lambda: SENT_AT),
        headers={"mqtt.topic": device_topic(device).encode(), "mqtt.qos": b"1", "mqtt.retain": b"false"},
        timestamp_ms=int(SENT_AT * 1000) + 5,
    )
    return dataclasses.replace(base, **changes)


def perfect() -> list[Record]:
    """Every device's seqs 1..5 in order, interleaved as a consumer would return them."""
    return [record(device, seq) for seq in range(1, MESSAGES + 1) for device in DEVICES]


def with_offsets(records: list[Record]) -> list[Record]:
    next_offset: dict[int, int] = {}
    out = []
    for r in records:
        offset = next_offset.get(r.partition, 0)
        next_offset[r.partition] = offset + 1
        out.append(dataclasses.replace(r, offset=offset))
    return out


def drop(device: str, seq: int) -> Callable[[list[Record]], list[Record]]:
    def change(records: list[Record]) -> list[Record]:
        return [r for r in records if r != record(device, seq)]

    return change


def only(device: str, seqs: list[int]) -> Callable[[list[Record]], list[Record]]:
    """Replace ``device``'s records by these seqs, in this order."""

    def change(records: list[Record]) -> list[Record]:
        return [r for r in records if r.key != device.encode()] + [record(device, s) for s in seqs]

    return change


def append(*extra: Record) -> Callable[[list[Record]], list[Record]]:
    return lambda records: [*records, *extra]


def replace(device: str, seq: int, **changes: Any) -> Callable[[list[Record]], list[Record]]:
    def change(records: list[Record]) -> list[Record]:
        target = record(device, seq)
        return [record(device, seq, **changes) if r == target else r for r in records]

    return change


A, B = DEVICES[0], DEVICES[1]
TOPIC_A = device_topic(A).encode()
ZEROS = {
    "lost": 0,
    "duplicated": 0,
    "out_of_order": 0,
    "unexpected": 0,
    "unparseable": 0,
    "key_errors": 0,
    "header_errors": 0,
    "partition_splits": 0,
}

CASES: list[tuple[str, Callable[[list[Record]], list[Record]], dict[str, int], bool, bool]] = [
    # name, change to the perfect stream, counters that are not 0, ok, ok_allowing_reorder
    ("perfect", lambda r: r, {}, True, True),
    ("one lost", drop(A, 3), {"lost": 1}, False, False),
    ("a device never seen", only(A, []), {"lost": 5}, False, False),
    ("duplicate", append(record(A, 2)), {"duplicated": 1}, True, True),
    ("duplicate of every message", lambda r: r + r, {"duplicated": 15}, True, True),
    ("swap", only(A, [1, 3, 2, 4, 5]), {"out_of_order": 1}, False, True),
    ("first message last", only(A, [2, 3, 4, 5, 1]), {"out_of_order": 1}, False, True),
    ("last message first", only(A, [5, 1, 2, 3, 4]), {"out_of_order": 4}, False, True),
    (
        "redelivery after a later seq is a duplicate",
        only(A, [1, 2, 3, 2, 3, 4, 5]),
        {"duplicated": 2},
        True,
        True,
    ),
    ("lost and reordered", only(A, [1, 4, 2, 5]), {"lost": 1, "out_of_order": 1}, False, False),
    ("partition split", replace(A, 4, partition=7), {"partition_splits": 1}, False, False),
    ("wrong key", replace(A, 2, key=b"p01.d9999"), {"key_errors": 1}, False, False),
    ("no key", replace(A, 2, key=None), {"key_errors": 1}, False, False),
    (
        "missing mqtt.qos header",
        replace(A, 2, headers={"mqtt.topic": TOPIC_A, "mqtt.retain": b"false"}),
        {"header_errors": 1},
        False,
        False,
    ),
    ("no headers at all", replace(A, 2, headers={}), {"header_errors": 1}, False, False),
    (
        "mqtt.topic of another device",
        replace(
            A, 2, headers={"mqtt.topic": device_topic(B).encode(), "mqtt.qos": b"1", "mqtt.retain": b"0"}
        ),
        {"header_errors": 1},
        False,
        False,
    ),
    ("unexpected device", append(record("p09.d0999", 1, partition=0)), {"unexpected": 1}, True, True),
    ("seq beyond the last sent", append(record(A, MESSAGES + 1)), {"unexpected": 1}, True, True),
    ("seq 0", append(record(A, 0)), {"unexpected": 1}, True, True),
    (
        "unexpected later seq overtakes",
        only(A, [1, 2, 3, 4, 6, 5]),
        {"unexpected": 1, "out_of_order": 1},
        False,
        True,
    ),
    ("not a simulator payload", append(record(A, 1, value=b"not json {")), {"unparseable": 1}, True, True),
    ("empty value", append(record(A, 1, value=None)), {"unparseable": 1}, True, True),
]


@pytest.mark.parametrize(
    ("change", "counters", "ok", "ok_allowing_reorder"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_analyze(
    change: Callable[[list[Record]], list[Record]],
    counters: dict[str, int],
    ok: bool,
    ok_allowing_reorder: bool,
) -> None:
    records = with_offsets(change(perfect()))
    report = analyze(records, EXPECTED)
    assert {name: getattr(report, name) for name in ZEROS} == {**ZEROS, **counters}, report.summary()
    assert (report.ok, report.ok_allowing_reorder) == (ok, ok_allowing_reorder)
    assert report.records == len(records)
    assert report.delivered == 15 - counters.get("lost", 0)
    assert report.expected == 15


def test_lost_seqs_are_reported_as_ranges_per_device() -> None:
    expected = {A: 8, B: 3}
    records = [record(A, s) for s in (1, 5, 6, 8)] + [record(B, s) for s in (1, 2, 3)]
    report = analyze(records, expected)
    assert report.devices[A].lost_seqs == ((2, 4), (7, 7))
    assert report.devices[A].lost == 4
    assert report.devices[B].lost_seqs == ()
    assert report.lost == 4
    assert (
        report.details()[0] == f"{A}: delivered 4/8 lost [2-4,7] duplicated 0 out_of_order 0 partitions [0]"
    )


def test_every_problem_names_where_it_is() -> None:
    records = with_offsets(replace(A, 2, key=b"x")(only(B, [1, 3, 2, 4, 5])(perfect())))
    report = analyze(records, EXPECTED)
    assert any(f"partition 0 offset 1: key 'x' is not the device id '{A}'" == e for e in report.examples)
    assert any(f"{B} seq 2 after seq 3" in e for e in report.examples)


def test_partition_split_is_counted_once_per_device_and_named() -> None:
    records = [record(A, 1, partition=0), record(A, 2, partition=1), record(A, 3, partition=2)]
    report = analyze(records, {A: 3})
    assert report.partition_splits == 1
    assert report.devices[A].partitions == (0, 1, 2)
    assert f"{A} split over partitions [0, 1, 2]" in report.examples


def test_summary_is_one_line_with_every_counter() -> None:
    report = analyze(with_offsets(append(record(A, 2))(perfect())), EXPECTED)
    summary = report.summary()
    assert "\n" not in summary
    assert summary.startswith("delivered=15 lost=0 duplicated=1 out_of_order=0 unexpected=0 ")
    assert "key_errors=0 header_errors=0 partition_splits=0 records=16 expected=15" in summary
    assert "latency_ms p50=5.0 p99=5.0 p999=5.0" in summary


def test_latency_percentiles_from_payload_ts_to_record_timestamp() -> None:
    sent_ms = int(SENT_AT * 1000)
    records = [record(A, seq, timestamp_ms=sent_ms + seq) for seq in range(1, 1001)]
    records.append(record(A, 1000, timestamp_ms=sent_ms + 10_000))  # duplicates do not count
    records.append(record(B, 1, timestamp_ms=None))  # no timestamp: no sample
    latency = analyze(records, {A: 1000, B: 1}).latency
    assert latency == Latency(count=1000, p50_ms=500.0, p99_ms=990.0, p999_ms=999.0, max_ms=1000.0)


def test_no_records_means_everything_lost_and_no_latency() -> None:
    report = analyze([], EXPECTED)
    assert (report.lost, report.delivered, report.latency, report.ok) == (15, 0, None, False)
    assert report.devices[A].lost_seqs == ((1, 5),)


def test_analyzer_tells_when_every_expected_message_was_seen() -> None:
    analyzer = Analyzer({A: 2})
    assert analyzer.missing == 2
    analyzer.add(record(A, 1))
    analyzer.add(record(A, 1))
    assert analyzer.missing == 1
    analyzer.add(record(A, 2))
    assert analyzer.missing == 0
    report: VerifyReport = analyzer.report(ended_by="complete")
    assert report.ok and report.duplicated == 1
    assert report.summary().endswith("ended_by=complete")


def test_a_custom_topic_template_is_what_mqtt_topic_must_match() -> None:
    template = "t1/plants/{plant}/devices/{device}/telemetry"
    good = record(A, 1, headers={"mqtt.topic": device_topic(A, template).encode(), "mqtt.qos": b"1",
                                 "mqtt.retain": b"false"})  # fmt: skip
    assert analyze([good], {A: 1}, template).ok
    assert analyze([record(A, 1)], {A: 1}, template).header_errors == 1


# -- The Kafka I/O of verify_topic and read_topic, against a fake consumer --------------------------


class FakeMessage:
    def __init__(
        self, partition: int, offset: int, record: Record | None = None, code: int | None = None
    ) -> None:
        self._partition, self._offset, self._record = partition, offset, record
        self._error = None if code is None else KafkaError(code)

    def error(self) -> KafkaError | None:
        return self._error

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._record.key if self._record else None

    def value(self) -> bytes | None:
        return self._record.value if self._record else None

    def headers(self) -> list[tuple[str, bytes]] | None:
        return list(self._record.headers.items()) if self._record and self._record.headers else None

    def timestamp(self) -> tuple[int, int]:
        ts = self._record.timestamp_ms if self._record else None
        return (TIMESTAMP_NOT_AVAILABLE, 0) if ts is None else (TIMESTAMP_CREATE_TIME, ts)


class FakeConsumer:
    """Serves ``PARTITIONS[topic]`` (a list of records per partition) in batches of 3 per call."""

    partitions: ClassVar[dict[str, list[list[Record]]]] = {}
    instances: ClassVar[list[FakeConsumer]] = []

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.assigned: list[TopicPartition] = []
        self.closed = False
        self._queue: list[FakeMessage] = []
        FakeConsumer.instances.append(self)

    def list_topics(self, topic: str, timeout: float) -> Any:
        parts = self.partitions.get(topic)
        topics = (
            {}
            if parts is None
            else {topic: SimpleNamespace(error=None, partitions=dict.fromkeys(range(len(parts))))}
        )
        return SimpleNamespace(topics=topics)

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        return 0, len(self.partitions[tp.topic][tp.partition])

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions
        for tp in partitions:
            assert tp.offset == OFFSET_BEGINNING
            records = self.partitions[tp.topic][tp.partition]
            self._queue += [FakeMessage(tp.partition, i, r) for i, r in enumerate(records)]
            self._queue.append(FakeMessage(tp.partition, len(records), code=KafkaError._PARTITION_EOF))

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        batch, self._queue = self._queue[:3], self._queue[3:]
        if not batch:
            time.sleep(min(timeout, 0.01))
        return batch

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> type[FakeConsumer]:
    monkeypatch.setattr(verify, "Consumer", FakeConsumer)
    FakeConsumer.partitions = {}
    FakeConsumer.instances = []
    return FakeConsumer


def split_by_device(records: list[Record], partitions: int = 2) -> list[list[Record]]:
    out: list[list[Record]] = [[] for _ in range(partitions)]
    for r in records:
        assert r.key is not None
        partition = DEVICES.index(r.key.decode()) % partitions
        out[partition].append(dataclasses.replace(r, partition=partition))
    return out


def test_verify_topic_reads_from_the_beginning_until_complete(kafka: type[FakeConsumer]) -> None:
    kafka.partitions["t"] = split_by_device([*perfect(), record(A, 1)])
    report = verify_topic("b:9092", "t", EXPECTED, timeout_s=10, idle_s=5)
    assert report.ok and report.ended_by == "complete", report.summary()
    assert report.duplicated == 1
    [consumer] = kafka.instances
    assert consumer.config["enable.auto.commit"] is False and consumer.closed
    assert sorted(tp.partition for tp in consumer.assigned) == [0, 1]


def test_verify_topic_gives_up_when_nothing_new_arrives(kafka: type[FakeConsumer]) -> None:
    kafka.partitions["t"] = split_by_device(drop(A, 5)(perfect()))
    began = time.monotonic()
    report = verify_topic("b:9092", "t", EXPECTED, timeout_s=10, idle_s=0.3)
    assert (report.ended_by, report.lost, report.ok) == ("idle", 1, False)
    assert time.monotonic() - began < 3


def test_verify_topic_on_a_missing_topic_reports_everything_lost(kafka: type[FakeConsumer]) -> None:
    report = verify_topic("b:9092", "nope", EXPECTED, timeout_s=10, idle_s=0.3)
    assert report.lost == 15 and report.ended_by.startswith("idle")


def test_read_topic_returns_every_record_up_to_the_end(kafka: type[FakeConsumer]) -> None:
    kafka.partitions["dlq"] = [[record(A, 1), record(A, 2)], [], [record(B, 1)]]
    records = read_topic("b:9092", "dlq", timeout_s=5)
    assert sorted((r.partition, r.offset, r.value) for r in records) == [
        (0, 0, record(A, 1).value),
        (0, 1, record(A, 2).value),
        (2, 0, record(B, 1).value),
    ]
    assert records[0].headers == record(A, 1).headers
    assert records[0].timestamp_ms == record(A, 1).timestamp_ms
    assert read_topic("b:9092", "missing", timeout_s=5) == []
    assert all(c.closed for c in kafka.instances)


def test_a_consumer_error_that_will_not_pass_is_raised(
    kafka: type[FakeConsumer], monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka.partitions["t"] = [[record(A, 1)]]
    monkeypatch.setattr(
        FakeConsumer,
        "consume",
        lambda self, num_messages, timeout: [FakeMessage(0, 0, code=KafkaError.TOPIC_AUTHORIZATION_FAILED)],
    )
    with pytest.raises(VerifyError, match="reading t partition 0"):
        verify_topic("b:9092", "t", {A: 1}, timeout_s=5, idle_s=1)


@pytest.mark.parametrize(
    ("change", "code"), [(lambda r: r, 0), (drop(A, 5), 1), (only(A, [1, 3, 2, 4, 5]), 1)]
)
def test_verify_command_exits_non_zero_unless_ok(
    kafka: type[FakeConsumer],
    change: Callable[[list[Record]], list[Record]],
    code: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kafka.partitions["telemetry"] = split_by_device(change(perfect()))
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command", required=True))
    argv = [
        "verify",
        "--bootstrap",
        "b:9092",
        "--devices",
        "3",
        "--plants",
        "2",
        "--messages",
        "5",
        "--idle",
        "0.3",
    ]
    args = parser.parse_args(argv)
    assert args.func(args) == code
    out = capsys.readouterr().out
    assert out.startswith("delivered=")
    if code:
        assert f"{A}: delivered" in out

"""The counting of the end-to-end check: did every simulated (device, seq) arrive once, in order?

:func:`analyze` and :class:`Analyzer` never touch the network, so they are unit-tested with
hand-made records; ``verify.py`` reads Kafka and feeds them.

What is counted, per device (``expected`` maps a device id to its last seq; seqs are ``1..n``):

lost
    expected seqs never seen.
duplicated
    copies beyond the first of a (device, seq).
out_of_order
    first occurrences of a seq that arrive after the first occurrence of a larger seq of the same
    device, in the order the records were given (for Kafka: offset order within a partition).
    Duplicates are ignored, so a redelivered ``2`` after ``3`` is a duplicate, not a reorder;
    ``1 3 2`` counts 1 and ``5 1 2 3 4`` counts 4. Seqs beyond the expected last take part (a
    run cut short may deliver them), seqs below 1 do not.
unexpected
    records of devices not in ``expected``, or with a seq outside ``1..n``.
unparseable
    records whose value is not a simulator payload; they cannot be attributed to a device.

And per record: ``key_errors`` (key is not the device id), ``header_errors`` (``mqtt.topic``,
``mqtt.qos`` or ``mqtt.retain`` missing, or ``mqtt.topic`` not the device's MQTT topic), and per
device ``partition_splits`` (its records are in more than one partition).

Latency is Kafka record timestamp minus payload ``ts``, for first occurrences. With CreateTime it
is set by the producer, so it measures device -> bridge -> producer, not broker append; clocks of
the simulator and the producer host must agree. It is approximate either way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mqtt_kafka_sync.errors import SyncError
from mqtt_kafka_sync.sim.payload import TELEMETRY_TOPIC_TEMPLATE, PayloadError, device_topic, parse_payload

REQUIRED_HEADERS = ("mqtt.topic", "mqtt.qos", "mqtt.retain")
MAX_EXAMPLES = 20


class VerifyError(SyncError):
    """Kafka could not be read: the verification has no result."""


@dataclass(frozen=True)
class Record:
    """One Kafka record, as much of it as the checks need."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, bytes] = field(default_factory=dict)
    timestamp_ms: int | None = None


@dataclass(frozen=True)
class Latency:
    """End-to-end latency percentiles in milliseconds over ``count`` records."""

    count: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples_ms: list[float]) -> Latency | None:
        if not samples_ms:
            return None
        ordered = sorted(samples_ms)

        def rank(p: float) -> float:  # nearest-rank percentile
            return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

        return cls(len(ordered), rank(0.5), rank(0.99), rank(0.999), ordered[-1])


@dataclass(frozen=True)
class DeviceReport:
    expected: int
    delivered: int
    lost_seqs: tuple[tuple[int, int], ...]
    """Lost seqs as inclusive ranges ``(first, last)``."""
    duplicated: int
    out_of_order: int
    unexpected: int
    partitions: tuple[int, ...]

    @property
    def lost(self) -> int:
        return sum(last - first + 1 for first, last in self.lost_seqs)


@dataclass(frozen=True)
class VerifyReport:
    records: int
    expected: int
    delivered: int
    """Distinct expected (device, seq) seen."""
    lost: int
    duplicated: int
    out_of_order: int
    unexpected: int
    unparseable: int
    key_errors: int
    header_errors: int
    partition_splits: int
    latency: Latency | None
    devices: dict[str, DeviceReport]
    examples: tuple[str, ...]
    """Up to :data:`MAX_EXAMPLES` individual problems, each naming partition and offset."""
    ended_by: str = ""
    """``verify_topic`` only: ``complete``, ``idle`` or ``timeout``."""

    @property
    def ok_allowing_reorder(self) -> bool:
        return (
            self.lost == 0 and self.key_errors == 0 and self.header_errors == 0 and self.partition_splits == 0
        )

    @property
    def ok(self) -> bool:
        return self.ok_allowing_reorder and self.out_of_order == 0

    def summary(self) -> str:
        text = (
            f"delivered={self.delivered} lost={self.lost} duplicated={self.duplicated} "
            f"out_of_order={self.out_of_order} unexpected={self.unexpected} unparseable={self.unparseable} "
            f"key_errors={self.key_errors} header_errors={self.header_errors} "
            f"partition_splits={self.partition_splits} records={self.records} expected={self.expected}"
        )
        if self.latency is not None:
            lat = self.latency
            text += f" latency_ms p50={lat.p50_ms:.1f} p99={lat.p99_ms:.1f} p999={lat.p999_ms:.1f}"
        return f"{text} ended_by={self.ended_by}" if self.ended_by else text

    def details(self, limit: int = 20) -> list[str]:
        """Human-readable lines for the devices with problems, then the example records."""
        lines = []
        for device, rep in sorted(self.devices.items()):
            if rep.lost or rep.out_of_order or len(rep.partitions) > 1:
                lost = ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in rep.lost_seqs[:10])
                lines.append(
                    f"{device}: delivered {rep.delivered}/{rep.expected} lost [{lost}] "
                    f"duplicated {rep.duplicated} out_of_order {rep.out_of_order} "
                    f"partitions {list(rep.partitions)}"
                )
        lines.extend(self.examples)
        return lines[:limit]


class _Device:
    """What has been seen of one device so far."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = bytearray(expected + 1)  # index = seq; 0 unused
        self.delivered = 0
        self.other_seqs: set[int] = set()
        self.max_first = 0
        self.duplicated = 0
        self.out_of_order = 0
        self.unexpected = 0
        self.partitions: set[int] = set()

    def first_time(self, seq: int) -> bool:
        if 1 <= seq <= self.expected:
            if self.seen[seq]:
                return False
            self.seen[seq] = 1
            self.delivered += 1
            return True
        self.unexpected += 1
        if seq in self.other_seqs:
            return False
        self.other_seqs.add(seq)
        return True

    def report(self) -> DeviceReport:
        lost: list[tuple[int, int]] = []
        seq = self.seen.find(0, 1)
        while seq != -1:
            end = self.seen.find(1, seq)
            last = self.expected if end == -1 else end - 1
            lost.append((seq, last))
            seq = -1 if end == -1 else self.seen.find(0, end)
        return DeviceReport(
            expected=self.expected,
            delivered=self.delivered,
            lost_seqs=tuple(lost),
            duplicated=self.duplicated,
            out_of_order=self.out_of_order,
            unexpected=self.unexpected,
            partitions=tuple(sorted(self.partitions)),
        )


class Analyzer:
    """Incremental :func:`analyze`: :meth:`add` records, watch :attr:`missing`, then :meth:`report`."""

    def __init__(
        self,
        expected: Mapping[str, int],
        topic_template: str = TELEMETRY_TOPIC_TEMPLATE,
        latency_warmup_s: float = 0.0,
    ) -> None:
        self._template = topic_template
        self._warmup_s = latency_warmup_s
        self._devices = {device: _Device(last) for device, last in expected.items()}
        self._expected_total = sum(expected.values())
        self._topics: dict[str, str | None] = {}
        self.records = 0
        self._delivered = 0
        self._unparseable = 0
        self._key_errors = 0
        self._header_errors = 0
        self._latencies_ms: list[tuple[float, float]] = []  # (send ts, latency ms)
        self._examples: list[str] = []

    def _steady_latencies(self) -> list[float]:
        """Latencies of messages sent after the first ``latency_warmup_s`` seconds of the run."""
        if not self._latencies_ms:
            return []
        start = min(ts for ts, _ in self._latencies_ms) + self._warmup_s
        return [lat for ts, lat in self._latencies_ms if ts >= start]

    @property
    def missing(self) -> int:
        """Expected (device, seq) not seen yet."""
        return self._expected_total - self._delivered

    def add(self, record: Record) -> None:
        self.records += 1
        where = f"partition {record.partition} offset {record.offset}"
        try:
            device_id, seq, ts = parse_payload(record.value or b"")
        except PayloadError as exc:
            self._unparseable += 1
            self._example(f"{where}: unparseable value: {exc}")
            return
        device = self._devices.get(device_id)
        if device is None:
            device = self._devices[device_id] = _Device(0)
        device.partitions.add(record.partition)
        self._check_key(record, device_id, where)
        self._check_headers(record, device_id, where)
        if not device.first_time(seq):
            device.duplicated += 1
            return
        if 1 <= seq <= device.expected:
            self._delivered += 1
        if 1 <= seq < device.max_first:
            device.out_of_order += 1
            self._example(f"{where}: {device_id} seq {seq} after seq {device.max_first}")
        device.max_first = max(device.max_first, seq)
        if record.timestamp_ms is not None:
            self._latencies_ms.append((ts, record.timestamp_ms - ts * 1000.0))

    def _check_key(self, record: Record, device_id: str, where: str) -> None:
        key = None if record.key is None else record.key.decode(errors="replace")
        if key != device_id:
            self._key_errors += 1
            self._example(f"{where}: key {key!r} is not the device id {device_id!r}")

    def _check_headers(self, record: Record, device_id: str, where: str) -> None:
        missing = [name for name in REQUIRED_HEADERS if name not in record.headers]
        if missing:
            self._header_errors += 1
            self._example(f"{where}: {device_id} lacks headers {', '.join(missing)}")
            return
        expected_topic = self._topic(device_id)
        topic = record.headers["mqtt.topic"].decode(errors="replace")
        if expected_topic is not None and topic != expected_topic:
            self._header_errors += 1
            self._example(f"{where}: mqtt.topic {topic!r}, expected {expected_topic!r}")

    def _topic(self, device_id: str) -> str | None:
        if device_id not in self._topics:
            try:
                self._topics[device_id] = device_topic(device_id, self._template)
            except ValueError:
                self._topics[device_id] = None
        return self._topics[device_id]

    def _example(self, text: str) -> None:
        if len(self._examples) < MAX_EXAMPLES:
            self._examples.append(text)

    def report(self, ended_by: str = "") -> VerifyReport:
        devices = {device_id: d.report() for device_id, d in self._devices.items()}
        splits = [device_id for device_id, rep in devices.items() if len(rep.partitions) > 1]
        examples = [f"{d} split over partitions {list(devices[d].partitions)}" for d in splits[:5]]
        return VerifyReport(
            records=self.records,
            expected=self._expected_total,
            delivered=self._delivered,
            lost=self.missing,
            duplicated=sum(d.duplicated for d in devices.values()),
            out_of_order=sum(d.out_of_order for d in devices.values()),
            unexpected=sum(d.unexpected for d in devices.values()),
            unparseable=self._unparseable,
            key_errors=self._key_errors,
            header_errors=self._header_errors,
            partition_splits=len(splits),
            latency=Latency.of(self._steady_latencies()),
            devices=devices,
            examples=tuple(examples + self._examples),
            ended_by=ended_by,
        )


def analyze(
    records: Iterable[Record], expected: Mapping[str, int], topic_template: str = TELEMETRY_TOPIC_TEMPLATE
) -> VerifyReport:
    """Count lost, duplicated, reordered and malformed records; see the module docstring."""
    analyzer = Analyzer(expected, topic_template)
    for record in records:
        analyzer.add(record)
    return analyzer.report()


# -- Kafka I/O --------------------------------------------------------------------------------------

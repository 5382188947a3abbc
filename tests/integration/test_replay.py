"""``mqtt-kafka-sync replay`` and ``mqtt-kafka-sync lag`` against a real Kafka, run as a user runs them.

Source records carry a key (one of 40 devices) and ``<device>:<seq>`` as the value, so every check
is by content: the exact set of records copied, their keys and headers, order per key, and the
``replay.source`` header pointing back at the very record copied.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.sim.verify import Record, read_topic
from tests.integration.paced_consumer import LagProbe, PacedConsumer
from tests.integration.replay_process import kill_9_once_confirmed, start_logged
from tests.murmur2 import java_partition

pytestmark = pytest.mark.integration

DEVICES = 40


def _produce(bootstrap: str, topic: str, count: int, *, timestamps: list[int] | None = None) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
        }
    )
    for i in range(count):
        device = f"dev{i % DEVICES:02d}"
        seq = i // DEVICES
        extra: dict[str, Any] = {"timestamp": timestamps[i]} if timestamps else {}
        producer.produce(
            topic,
            key=device.encode(),
            value=f"{device}:{seq}".encode(),
            headers=[("origin", b"test")],
            **extra,
        )
        if i % 5000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0


def _replay(*args: str, cwd: Path, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mqtt_kafka_sync", "replay", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _by_source(records: list[Record], source: str) -> dict[tuple[int, int], list[Record]]:
    """Target records grouped by the source (partition, offset) their replay.source header names."""
    found: dict[tuple[int, int], list[Record]] = defaultdict(list)
    for record in records:
        topic, partition, offset = record.headers["replay.source"].decode().split("/")
        assert topic == source
        found[(int(partition), int(offset))].append(record)
    return found


def _assert_order_per_key(records: list[Record]) -> None:
    """Within each target partition, every device's first copies of its seqs come in increasing order."""
    last: dict[str, int] = {}
    seen: set[tuple[str, int]] = set()
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        device, seq = (record.value or b"").decode().split(":")
        if (device, int(seq)) in seen:
            continue  # a duplicate from a resume
        seen.add((device, int(seq)))
        assert int(seq) > last.get(device, -1), f"{device} seq {seq} after {last[device]}"
        last[device] = int(seq)


def _assert_copies(
    copies: dict[tuple[int, int], list[Record]], originals: dict[tuple[int, int], Record]
) -> None:
    for where, records in copies.items():
        source = originals[where]
        for record in records:
            assert (record.key, record.value) == (source.key, source.value)
            assert record.headers["origin"] == b"test"
            assert record.timestamp_ms == source.timestamp_ms


def test_offset_range_into_a_new_topic_keeps_partitions_keys_headers_and_order(
    brokers: Any, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    source, target = f"replay-src-{tag}", f"replay-dst-{tag}"
    bootstrap = brokers.kafka_bootstrap
    ensure_topics(bootstrap, [source], partitions=3)
    _produce(bootstrap, source, 6000)
    originals = {(r.partition, r.offset): r for r in read_topic(bootstrap, source, timeout_s=30)}
    assert len(originals) == 6000
    ends = Counter(p for p, _ in originals)
    args = ["--bootstrap", bootstrap, "--source", source, "--target", target, "--create-target"]
    stops = {0: ends[0], 1: ends[1] - 50, 2: ends[2] // 2}  # partition 0: to its end
    args += ["--from-offset", "100", "--to-offset", f"1:{stops[1]}", "--to-offset", f"2:{stops[2]}"]

    plan = _replay(*args, "--dry-run", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert f"would create {target} with 3 partitions" in plan.stdout
    assert "same partition numbers (3 partitions)" in plan.stdout
    assert not list(tmp_path.glob("*.json")), "a dry run writes no checkpoint"
    assert read_topic(bootstrap, target, timeout_s=5) == []

    done = _replay(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    wanted = {(p, o) for p, o in originals if 100 <= o < stops[p]}
    expected = sum(stops[p] - 100 for p in range(3))
    assert len(wanted) == expected > 3000
    copies = _by_source(read_topic(bootstrap, target, timeout_s=30), source)
    assert set(copies) == wanted
    assert all(len(c) == 1 for c in copies.values()), "a replay that was not interrupted copies once"
    _assert_copies(copies, originals)
    assert all(r.partition == p for (p, _o), rs in copies.items() for r in rs)
    _assert_order_per_key([r for rs in copies.values() for r in rs])
    print(f"\n[replay offsets] {expected} records copied; {done.stdout.splitlines()[-1]}")

    again = _replay(*args, cwd=tmp_path)
    assert again.returncode == 0 and "already complete" in again.stdout


def test_time_range_into_a_topic_with_more_partitions_goes_by_key(brokers: Any, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    source, target = f"replay-src-{tag}", f"replay-dst-{tag}"
    bootstrap = brokers.kafka_bootstrap
    ensure_topics(bootstrap, [source], partitions=2)
    ensure_topics(bootstrap, [target], partitions=5)
    base = (int(time.time()) - 3600) * 1000  # an hour ago: 100 ms apart, 4,000 records over 400 s
    stamps = [base + 100 * i for i in range(4000)]
    _produce(bootstrap, source, 4000, timestamps=stamps)
    start, stop = base + 100_000, base + 250_000
    iso = [
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
        for ms in (start, stop)
    ]

    args = ["--bootstrap", bootstrap, "--source", source, "--target", target]
    done = _replay(*args, "--from-time", iso[0], "--to-time", iso[1], cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "partition by key, murmur2 as Java (2 source -> 5 target partitions" in done.stdout
    originals = {(r.partition, r.offset): r for r in read_topic(bootstrap, source, timeout_s=30)}
    wanted = {where for where, r in originals.items() if start <= (r.timestamp_ms or 0) < stop}
    assert len(wanted) == 1500
    records = read_topic(bootstrap, target, timeout_s=30)
    copies = _by_source(records, source)
    assert set(copies) == wanted and len(records) == 1500
    _assert_copies(copies, originals)
    wrong = [r for r in records if r.partition != java_partition(r.key or b"", 5)]
    assert not wrong, f"{len(wrong)} records not where Java's murmur2 puts their key"
    _assert_order_per_key(records)


def test_resume_after_kill_9_leaves_no_gap_and_reports_what_may_repeat(brokers: Any, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    source, target = f"replay-src-{tag}", f"replay-dst-{tag}"
    bootstrap = brokers.kafka_bootstrap
    ensure_topics(bootstrap, [source, target], partitions=3)
    _produce(bootstrap, source, 40_000)
    checkpoint = tmp_path / "cp.json"
    args = ["--bootstrap", bootstrap, "--source", source, "--target", target, "--checkpoint", str(checkpoint)]

    first = start_logged(
        [sys.executable, "-m", "mqtt_kafka_sync", "replay", *args, "--rate-max", "5000"],
        tmp_path / "first.log",
        tmp_path,
    )
    done_at_kill = kill_9_once_confirmed(first, checkpoint, 8000, tmp_path / "first.log", timeout=30)

    resumed = _replay(*args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    match = re.search(r"resuming: ([\d,]+) done; up to ([\d,]+) records", resumed.stdout)
    assert match, resumed.stdout
    may_repeat = int(match.group(2).replace(",", ""))

    originals = {(r.partition, r.offset): r for r in read_topic(bootstrap, source, timeout_s=30)}
    records = read_topic(bootstrap, target, timeout_s=60)
    copies = _by_source(records, source)
    missing = set(originals) - set(copies)
    duplicates = len(records) - len(copies)
    print(
        f"\n[replay kill -9] killed at >= {done_at_kill} confirmed; resume: up to {may_repeat} may repeat; "
        f"{len(records)} records for {len(originals)}: {len(missing)} missing, {duplicates} duplicated"
    )
    assert not missing, f"{len(missing)} source records never reached the target, e.g. {sorted(missing)[:5]}"
    assert 0 <= duplicates <= may_repeat
    _assert_copies(copies, originals)
    _assert_order_per_key(records)


def test_lag_command_prints_the_table_of_a_real_group(brokers: Any, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    topic, group = f"lag-{tag}", f"lag-group-{tag}"
    bootstrap = brokers.kafka_bootstrap
    ensure_topics(bootstrap, [topic], partitions=3)
    _produce(bootstrap, topic, 3000)
    ends = Counter(r.partition for r in read_topic(bootstrap, topic, timeout_s=30))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        commits = [TopicPartition(topic, 0, ends[0] - 250), TopicPartition(topic, 1, ends[1])]
        consumer.commit(offsets=commits, asynchronous=False)
    finally:
        consumer.close()

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mqtt_kafka_sync",
            "lag",
            "--bootstrap",
            bootstrap,
            "--group",
            group,
            "--group",
            "nobody-" + tag,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    print(f"\n[lag]\n{out.stdout}")
    rows = [line.split() for line in out.stdout.splitlines()]
    assert rows[0] == ["GROUP", "TOPIC", "PARTITION", "END", "COMMITTED", "LAG", "TIME", "LAG"]
    by_partition = {r[2]: r for r in rows[1:4]}
    p0, p1, p2 = by_partition["0"], by_partition["1"], by_partition["2"]
    assert p0[3:6] == [f"{ends[0]:,}", f"{ends[0] - 250:,}", "250"]
    assert re.fullmatch(r"\d+\.\ds|\d+:\d\d:\d\d", p0[6]), p0  # age of the record at the committed offset
    assert p1[3:7] == [f"{ends[1]:,}", f"{ends[1]:,}", "0", "0.0s"]
    assert p2[3:7] == [f"{ends[2]:,}", "-", "-", "-"]  # never committed
    assert rows[4][:3] == [group, "(total)", "250"]
    assert f"nobody-{tag}: no committed offsets" in out.stdout


def test_throttled_replay_keeps_the_group_lag_near_the_high_mark(brokers: Any, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    source, target, group = f"replay-src-{tag}", f"replay-dst-{tag}", f"replay-reader-{tag}"
    bootstrap = brokers.kafka_bootstrap
    ensure_topics(bootstrap, [source, target], partitions=3)
    _produce(bootstrap, source, 24_000)
    reader = PacedConsumer(bootstrap, target, group, rate=1000.0)
    lag = LagProbe(bootstrap, group, target)
    high, step = 3000, 300.0
    args = ["--bootstrap", bootstrap, "--source", source, "--target", target, "--throttle-group", group]
    args += ["--lag-high", str(high), "--step-max", str(step), "--lag-interval", "1", "--rate-min", "600"]
    try:
        # The group has no commit until it reads something: the throttle holds the floor until then.
        proc = start_logged(
            [sys.executable, "-m", "mqtt_kafka_sync", "replay", *args, "--progress-interval", "1"],
            tmp_path / "replay.log",
            tmp_path,
        )
        curve: list[int] = []
        deadline = time.monotonic() + 75
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                curve.append(lag.read())
                time.sleep(0.25)
            assert proc.poll() == 0, (
                f"replay failed or took over 75 s:\n{(tmp_path / 'replay.log').read_text()}"
            )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    finally:
        reader.close()
        lag.close()
    log_text = (tmp_path / "replay.log").read_text()
    assert lag.failed < lag.reads // 10, f"{lag.failed} of {lag.reads} lag reads failed"
    print(f"\n[throttled replay] lag every 0.25 s: max {max(curve)}, high {high}\n{curve}")
    # docs/replay.md: high + 2*(step*T + S/N) + B with S = 0.5 s of consumption hidden by commits,
    # N = 5, and B (0.1 s at the rate) below 200; measured lag is up to S above the true lag.
    assert max(curve) <= high + 2 * (step * 1 + 500 / 5) + 200 + 500
    assert max(curve) > high / 2, "the replay never pushed the group: the throttle was not exercised"
    assert "limit" in log_text and "replayed 24,000 offsets" in log_text
    copies = _by_source(read_topic(bootstrap, target, timeout_s=30), source)
    assert len(copies) == 24_000

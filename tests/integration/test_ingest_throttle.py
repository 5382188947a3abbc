"""The ingest throttle end to end: a 100,000-message MQTT backlog released at once, a consumer group
reading the Kafka topic at a fixed, slower rate, the real ``mqtt-kafka-sync run`` pacing its
acknowledgements by that group's lag. The lag must stay within 10% of ``throttle.lag.high``, the
backlog must drain completely, and nothing may be lost. The ``run`` tree is the supervisor, the
task and the lag reader: no multiprocessing resource tracker (docs/benchmarks.md, issue 16).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from loadtests.publisher import LoadSpec, generate
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.sim.payload import device_ids
from mqtt_kafka_sync.sim.verify import verify_topic
from tests.integration.paced_consumer import LagProbe, PacedConsumer
from tests.integration.worker_process import WorkerProcess, write_source_config

pytestmark = pytest.mark.integration

DEVICES, PER_DEVICE = 200, 500
TOTAL = DEVICES * PER_DEVICE
HIGH = 20_000
CONSUMER_RATE = 1500.0


def _children(pid: int) -> dict[int, list[bytes]]:
    """The command lines (argv) of ``pid``'s children."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def _names(children: dict[int, list[bytes]]) -> list[str]:
    """The children's names (``start_child`` puts a child's name last on its command line)."""
    return sorted(argv[-1].decode() for argv in children.values())


def test_a_100k_backlog_is_paced_to_the_consumer_groups_lag_ceiling(brokers: Any, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    root, topic, group = f"burst{tag}", f"burst-{tag}", f"historian-{tag}"
    bootstrap = brokers.kafka_bootstrap
    ensure_topics(bootstrap, [topic, f"{topic}-dlq"], partitions=6)
    # The bound (docs/replay.md, Theorems 1 and 2), T = 1 s: 2*(step*T + (S + W)/5) + B + W with
    # step 500, S = 1,500/s * 0.2 s of commits = 300, W = 200 (Receive Maximum, one task) and
    # B = 0.1 s at about 2,200/s: 1,200 + 220 + 200 = 1,620 records, plus up to S more on a
    # commit-based reading: 1,920, under 10% of 20,000. The floor starts near the consumer's rate.
    config = write_source_config(
        tmp_path / "burst.json",
        brokers,
        name=f"burst-{tag}",
        root=root,
        topic=topic,
        **{
            "mqtt.receive.maximum": 200,
            "mqtt.takeover.enabled": "false",
            "throttle.lag.groups": group,
            "throttle.lag.high": HIGH,
            "throttle.rate.min": 1400,
            "throttle.step.max": 500,
            "throttle.lag.interval.seconds": 1,
        },
    )
    first = WorkerProcess(config, tmp_path, "first").start()
    first.wait_subscribed()
    assert first.proc is not None
    # The task and the lag reader (the config check has exited). The reader's first read on a fresh
    # broker may crash it (librdkafka#5040, kafka/lag_hub.py): the hub starts another in 5 s.
    expected = [f"burst-{tag}/task-0", "lag-reader"]
    deadline = time.monotonic() + 20
    while _names(children := _children(first.proc.pid)) != expected:
        assert time.monotonic() < deadline, children
        time.sleep(0.2)
    assert not [c for c in children.values() if b"multiprocessing" in b" ".join(c)], children  # no tracker
    assert first.stop() == 0, first.log()  # the session stays: what is published now queues there

    spec = LoadSpec(
        brokers.mqtt_host,
        brokers.mqtt_port,
        f"{root}/plants/{{plant}}/devices/{{device}}/telemetry",
        DEVICES,
        PER_DEVICE,
        rate=50_000,
        payload_size=200,
    )
    published = generate(spec)
    assert published.acked == TOTAL, published

    reader = PacedConsumer(bootstrap, topic, group, CONSUMER_RATE, commit_ms=200)
    lag = LagProbe(bootstrap, group, topic)
    worker = WorkerProcess(config, tmp_path, "drain").start()
    curve: list[tuple[float, int, int]] = []
    drained_at: float | None = None
    try:
        start = time.monotonic()
        while time.monotonic() - start < 120:
            assert worker.alive(), worker.log()
            acked = worker.totals().get("acked", 0)
            curve.append((time.monotonic() - start, lag.read(), acked))
            if acked >= TOTAL and drained_at is None:
                drained_at = time.monotonic() - start
            if drained_at is not None and reader.consumed >= TOTAL:
                break
            time.sleep(0.25)
        assert worker.stop() == 0, worker.log()
    finally:
        if worker.alive():
            worker.stop()
        reader.close()
        lag.close()

    assert lag.failed < lag.reads // 10, f"{lag.failed} of {lag.reads} lag reads failed"
    peak = max(lag for _t, lag, _a in curve)
    print(f"\n[ingest throttle] drained {TOTAL:,} in {drained_at} s; group lag peak {peak:,} (high {HIGH:,})")
    print("  t(s)    lag   acked")
    for t, lag_now, acked in curve[::8]:
        print(f"  {t:5.1f} {lag_now:6,} {acked:7,}")
    assert drained_at is not None, f"backlog not drained in 120 s: {curve[-1]}"
    assert peak <= 1.1 * HIGH, f"group lag peaked at {peak:,}, more than 10% above {HIGH:,}"
    assert peak >= 0.5 * HIGH, "the consumer never fell behind: the throttle was not exercised"
    # Unthrottled the worker drains far faster than the consumer reads; paced, it cannot beat it by
    # more than the lag it is allowed to build.
    assert drained_at >= (TOTAL - 1.1 * HIGH) / CONSUMER_RATE * 0.9

    report = verify_topic(
        bootstrap,
        topic,
        dict.fromkeys(device_ids(DEVICES), PER_DEVICE),
        timeout_s=120,
        idle_s=15,
        topic_template=spec.topic_template,
    )
    print(f"  {report.summary()}")
    assert report.lost == 0, report.summary()

"""Sharded mode end to end: MQTT sessions owned by shards, shards owned by workers through a Kafka group.

Every worker is a real ``mqtt-kafka-sync run`` process on the same connector file (tasks.max=1),
as an operator would start them on three machines. The devices number their messages; the Kafka
topic is read back and lost, duplicated and out-of-order messages are counted per device (out of
order: first occurrences only, so a re-sent duplicate is not a reorder).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.sim.devices import DeviceSimulator
from mqtt_kafka_sync.sim.verify import VerifyReport, verify_topic
from tests.integration.worker_process import WorkerProcess, write_source_config

pytestmark = pytest.mark.integration

PARTITIONS = 6
PLANTS = 6


class ShardedScenario:
    """One isolated sharded connector: its topic root, Kafka topics, group; shard ``i`` = plant ``i``."""

    def __init__(self, brokers: Any, tmp_path: Path, **config: Any) -> None:
        tag = uuid.uuid4().hex[:8]
        self.brokers = brokers
        self.tmp_path = tmp_path
        self.root = f"t{tag}"
        self.topic = f"telemetry-{tag}"
        self.name = f"sharded-{tag}"
        self.template = f"{self.root}/plants/{{plant}}/devices/{{device}}/telemetry"
        self.shards = [f"{self.root}/plants/p{i:02d}/#" for i in range(1, PLANTS + 1)]
        ensure_topics(brokers.kafka_bootstrap, [self.topic, f"{self.topic}-dlq"], partitions=PARTITIONS)
        keys = {
            "mqtt.topics": "",
            "mqtt.subscription": "sharded",
            "mqtt.shards": ",".join(self.shards),
            **config,
        }
        self.config = write_source_config(
            tmp_path / f"{self.name}.json", brokers, name=self.name, root=self.root, topic=self.topic, **keys
        )

    def worker(self, label: str) -> WorkerProcess:
        return WorkerProcess(self.config, self.tmp_path, label)

    def simulator(self, devices: int, per_device: int, **kwargs: Any) -> DeviceSimulator:
        return DeviceSimulator(
            self.brokers.mqtt_host,
            self.brokers.mqtt_port,
            devices,
            per_device,
            topic_template=self.template,
            plants=PLANTS,
            **kwargs,
        )

    def verify(self, expected: dict[str, int], timeout_s: float = 120.0) -> VerifyReport:
        return verify_topic(
            self.brokers.kafka_bootstrap,
            self.topic,
            expected,
            timeout_s=timeout_s,
            idle_s=15.0,
            topic_template=self.template,
        )


def owned(worker: WorkerProcess) -> list[str]:
    """The shards ``worker``'s tasks run now, from its status file."""
    return [s for t in worker.status().get("tasks", []) for s in t.get("shards", [])]


def wait_settled(workers: list[WorkerProcess], shards: int, timeout: float = 90.0) -> dict[str, list[str]]:
    """Until every shard is owned exactly once and every worker owns at least one (and is subscribed)."""
    deadline = time.monotonic() + timeout
    owners: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        for w in workers:
            assert w.alive(), w.log()
        owners = {w.status_file.stem: owned(w) for w in workers}
        every = [s for o in owners.values() for s in o]
        subscribed = all(
            t["subscribed"] for w in workers for t in w.status().get("tasks", [{"subscribed": 0}])
        )
        if len(every) == shards and len(set(every)) == shards and all(owners.values()) and subscribed:
            return owners
        time.sleep(0.5)
    logs = "\n".join(w.log() for w in workers)
    raise AssertionError(f"shards not settled after {timeout}s: {owners}\n{logs}")


def test_three_workers_six_shards_deliver_every_device_in_order(brokers: Any, tmp_path: Path) -> None:
    scenario = ShardedScenario(brokers, tmp_path)
    workers = [scenario.worker(f"w{i}").start() for i in range(3)]
    try:
        owners = wait_settled(workers, len(scenario.shards))
        print(f"\n[3 workers, 6 shards] owners: {owners}")
        result = scenario.simulator(60, 500, rate=6000).run()
        assert result.ok, result.summary()
        report = scenario.verify(result.per_device_last_seq)
        print(f"[3 workers, 6 shards] {report.summary()}")
        received = {w.status_file.stem: w.totals().get("received", 0) for w in workers}
        print(f"[3 workers, 6 shards] received per worker: {received}")
        assert report.lost == 0, report.summary()
        assert report.duplicated == 0, report.summary()
        assert report.out_of_order == 0, report.summary()
        assert report.key_errors == 0 and report.partition_splits == 0, report.summary()
        assert all(n > 0 for n in received.values()), received
    finally:
        for w in workers:
            w.stop()

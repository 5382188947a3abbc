"""One isolated command relay for end-to-end tests: its own command topic, dead-letter topic,
consumer group, MQTT topic root and connector file. The relay tests run workers on it; the replay
tests publish through its connector file with ``replay --to-mqtt``."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException, TopicPartition

from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.kafka.settings import Kafka, admin_client
from mqtt_kafka_sync.sim.command_devices import CommandFleet, produce_commands
from tests.integration.worker_process import WorkerProcess

PARTITIONS = 6
FAST_GROUP = {
    # A killed member leaves the group after 6 s (the broker's minimum) instead of 45 s.
    "kafka.consumer.session.timeout.ms": "6000",
    "kafka.consumer.heartbeat.interval.ms": "1000",
}


class RelayScenario:
    """One isolated relay: its own command topic, dead-letter topic, group and MQTT topic root."""

    def __init__(self, brokers: Any, tmp_path: Path, kafka: Kafka | None = None, /, **config: Any) -> None:
        """``config``: connector keys over the defaults here; ``kafka``: how the test itself reaches
        Kafka (topics, commands, group offsets) when the relay is given another listener."""
        tag = uuid.uuid4().hex[:8]
        self.brokers = brokers
        self.kafka: Kafka = kafka or brokers.kafka_bootstrap
        self.tmp_path = tmp_path
        self.root = f"r{tag}"
        self.topic = f"commands-{tag}"
        self.dlq = f"{self.topic}-dlq"
        self.name = f"relay-{tag}"
        self.template = f"{self.root}/plants/{{plant}}/devices/{{device}}/commands"
        ensure_topics(self.kafka, [self.topic, self.dlq], partitions=PARTITIONS)
        self.settings: dict[str, str] = {
            "connector.class": "mqtt_kafka_sync.KafkaCommandRelayConnector",
            "mqtt.server.uri": brokers.mqtt_uri,
            "kafka.bootstrap.servers": brokers.kafka_bootstrap,
            "routes": "cmd",
            "routes.cmd.kafka.topic": self.topic,
            "routes.cmd.kafka.key": "{plant}.{device}",
            "routes.cmd.mqtt.topic": self.template,
            "routes.cmd.mqtt.response.topic": self.template + "/response",
            "errors.deadletterqueue.topic.name": self.dlq,
            **FAST_GROUP,
        }
        self.settings.update({k: str(v) for k, v in config.items()})
        self.config = tmp_path / f"{self.name}.json"
        self.config.write_text(json.dumps({"name": self.name, "config": self.settings}, indent=2))

    def worker(self, label: str = "relay") -> WorkerProcess:
        return WorkerProcess(self.config, self.tmp_path, label)

    def fleet(self, devices: list[str]) -> CommandFleet:
        fleet = CommandFleet(self.brokers.mqtt_host, self.brokers.mqtt_port, devices, template=self.template)
        fleet.start()
        return fleet

    def produce(self, devices: list[str], per_device: int, **kwargs: Any) -> dict[str, int]:
        return produce_commands(self.kafka, self.topic, devices, per_device, **kwargs)

    def produce_in_background(self, devices: list[str], per_device: int, rate: float) -> Background:
        return Background(lambda: self.produce(devices, per_device, rate=rate))

    def committed(self) -> int:
        """Sum of the group's committed offsets over the command topic's partitions."""
        admin = admin_client(self.kafka)
        request = [
            ConsumerGroupTopicPartitions(
                self.name, [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
            )
        ]
        result = admin.list_consumer_group_offsets(request)[self.name].result(30)
        return sum(max(tp.offset, 0) for tp in result.topic_partitions)

    def members(self, timeout: float = 30.0) -> list[tuple[str, int]]:
        """(member id, partitions assigned) of every member of the relay's group, once it is stable."""
        admin = admin_client(self.kafka)
        deadline = time.monotonic() + timeout
        while True:
            try:
                group = admin.describe_consumer_groups([self.name])[self.name].result(10)
                if group.state == ConsumerGroupState.STABLE:
                    return sorted((m.member_id, len(m.assignment.topic_partitions)) for m in group.members)
                problem = f"group state {group.state}"
            except KafkaException as exc:  # e.g. the coordinator is still loading
                problem = str(exc)
            assert time.monotonic() < deadline, f"group {self.name}: {problem}"
            time.sleep(0.5)


class Background:
    def __init__(self, job: Any) -> None:
        self.result: dict[str, int] | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(job,), daemon=True)
        self._thread.start()

    def _run(self, job: Any) -> None:
        try:
            self.result = job()
        except BaseException as exc:
            self.error = exc

    def wait(self, timeout: float) -> dict[str, int]:
        self._thread.join(timeout)
        assert self.error is None, self.error
        assert self.result is not None, "producer still running"
        return self.result

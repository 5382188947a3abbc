"""The coordination topic of sharded mode: created once with one partition per shard, refused with
another count, and never created as a side effect of asking for its metadata."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from mqtt_kafka_sync.kafka import assignment
from mqtt_kafka_sync.kafka.assignment import (
    CoordinationTopicError,
    ensure_coordination_topic,
    ownership_settings,
)


class FakeAdmin:
    def __init__(self, topics: dict[str, int]) -> None:
        self.topics = topics
        self.created: list[tuple[str, int]] = []

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        assert topic is None, "metadata for one topic auto-creates it on brokers that allow it"
        found = {
            name: SimpleNamespace(error=None, partitions=dict.fromkeys(range(count)))
            for name, count in self.topics.items()
        }
        return SimpleNamespace(topics=found)

    def create_topics(self, new: list[Any], operation_timeout: float) -> dict[str, Any]:
        for topic in new:
            self.created.append((topic.topic, topic.num_partitions))
            self.topics[topic.topic] = topic.num_partitions
        return {t.topic: SimpleNamespace(result=lambda timeout: None) for t in new}


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> FakeAdmin:
    fake = FakeAdmin({"other": 3})
    monkeypatch.setattr(assignment, "admin_client", lambda kafka: fake)
    return fake


def test_created_with_one_partition_per_shard_once(admin: FakeAdmin) -> None:
    assert ensure_coordination_topic("k:9092", "coord", 6) is True
    assert ensure_coordination_topic("k:9092", "coord", 6) is False
    assert admin.created == [("coord", 6)]


def test_another_partition_count_is_refused_with_the_key_and_the_fix(admin: FakeAdmin) -> None:
    with pytest.raises(CoordinationTopicError) as refused:
        ensure_coordination_topic("k:9092", "other", 4)
    assert "has 3 partitions but there are 4 shards; set mqtt.shards.topic" in str(refused.value)


def test_the_member_settings_are_cooperative_and_never_commit() -> None:
    settings = ownership_settings("k:9092", "owners", "feed-0-shards", 10_000)
    assert settings["partition.assignment.strategy"] == "cooperative-sticky"
    assert settings["session.timeout.ms"] == "10000" and settings["heartbeat.interval.ms"] == "2000"
    assert settings["enable.auto.commit"] == "false" and settings["group.id"] == "owners"

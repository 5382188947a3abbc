"""Who adopts a dead member's session (the next online member after it, once the delay passed), and
the adopted session's delivery reports, whenever the adoption starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mqtt_kafka_sync.config.loader import load_connector
from mqtt_kafka_sync.config.model import SourceConnectorConfig
from mqtt_kafka_sync.ingest import task as task_module
from mqtt_kafka_sync.ingest.takeover import OFFLINE, Member, Membership, membership_payload
from mqtt_kafka_sync.ingest.worker import IngestWorker
from mqtt_kafka_sync.mqtt.packets import Publish
from tests.unit.ingest.test_pipeline import FakeSink


def _record(membership: Membership, client_id: str, state: str | None, now: float) -> None:
    payload = membership_payload(state, ("plants/#",)) if state else b""
    topic = f"mqtt-kafka-sync/members/{membership.group}/{client_id}"
    membership.update(Publish(topic, payload, 0, True, False, 0), now)


@pytest.mark.parametrize(
    ("me", "states", "now", "expected"),
    [
        ("w-1", {"w-0": "offline", "w-1": "online", "w-2": "online"}, 20.0, ["w-0"]),
        ("w-2", {"w-0": "offline", "w-1": "online", "w-2": "online"}, 20.0, []),
        ("w-1", {"w-0": "offline", "w-1": "online"}, 5.0, []),  # within the delay
        ("w-0", {"w-2": "stopped", "w-0": "online", "w-1": "online"}, 20.0, ["w-2"]),  # wraps around
        ("w-1", {"w-0": "offline", "w-2": "offline", "w-1": "online"}, 20.0, ["w-0", "w-2"]),
        ("w-1", {"w-0": "online", "w-1": "online"}, 20.0, []),
    ],
)
def test_adopter_is_the_next_online_member(
    me: str, states: dict[str, str], now: float, expected: list[str]
) -> None:
    membership = Membership("g", me)
    for client_id, state in states.items():
        _record(membership, client_id, state, 0.0)
    assert sorted(m.client_id for m in membership.orphans_for_me(now, delay=10.0)) == expected


def test_cleared_record_and_return_end_the_orphan() -> None:
    membership = Membership("g", "w-1")
    _record(membership, "w-0", "offline", 0.0)
    _record(membership, "w-1", "online", 0.0)
    assert [m.client_id for m in membership.orphans_for_me(20.0, 10.0)] == ["w-0"]
    _record(membership, "w-0", "online", 21.0)
    assert membership.orphans_for_me(40.0, 10.0) == []
    _record(membership, "w-0", "offline", 41.0)
    assert membership.orphans_for_me(45.0, 10.0) == []  # the delay restarts
    _record(membership, "w-0", None, 46.0)
    assert membership.orphans_for_me(100.0, 10.0) == []
    assert membership.orphans_for_me(100.0, 10.0) == []


# -- the adoption race (issue 17): an adoption that starts while this task's producer is idle ------


class _Sink(FakeSink):
    """A fake producer; ``made`` counts the producers the code under test built."""

    made = 0

    def __init__(self, config: object = None, topic_limits: object = None) -> None:
        super().__init__()
        type(self).made += 1


def _worker_config(tmp_path: Path) -> SourceConnectorConfig:
    config = {
        "connector.class": "mqtt_kafka_sync.MqttSourceConnector",
        "mqtt.server.uri": "tcp://127.0.0.1:1883",
        "mqtt.shared.group": "g",
        "mqtt.client.id": "w-c1",
        "mqtt.topics": "plants/#",
        "kafka.bootstrap.servers": "127.0.0.1:9092",
        "routes": "t",
        "routes.t.mqtt.topic": "plants/{plant}/devices/{device}/telemetry",
        "routes.t.kafka.topic": "telemetry",
        "routes.t.value.format": "json",
        "errors.deadletterqueue.topic.name": "dlq",
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"name": "c", "config": config}))
    loaded = load_connector(path, {})
    assert isinstance(loaded, SourceConnectorConfig)
    return loaded


def _telemetry(packet_id: int, *, dup: bool = False) -> Publish:
    payload = json.dumps({"device": "p1.d1", "seq": packet_id}).encode()
    return Publish("plants/p1/devices/d1/telemetry", payload, 1, False, dup, packet_id)


@pytest.mark.parametrize("main_busy", [False, True], ids=["main-producer-idle", "main-producer-busy"])
def test_an_adopted_session_is_confirmed_through_the_main_producer_whenever_the_adoption_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, main_busy: bool
) -> None:
    """The adopted session's records go through the main task's producer, whose delivery reports the
    main task's network thread serves (``on_tick``). Issue 17: when the adoption started at a moment
    the main producer had nothing outstanding, ``len()`` made it falsy and the adopted task built a
    producer of its own that nobody polled: its records reached Kafka, their reports never came back,
    the whole Receive Maximum window stayed unacknowledged and the adoption never finished. The
    moment is chosen here: the adoption starts with the main producer idle, or with a record out."""
    monkeypatch.setattr(task_module, "KafkaSink", _Sink)
    monkeypatch.setattr(task_module, "topic_message_limits", lambda *args, **kwargs: {})  # no Kafka here
    _Sink.made = 0
    worker = IngestWorker(_worker_config(tmp_path), 0)
    main = worker.task
    adopted = None
    try:
        main.pipeline.on_connected(1, False)
        if main_busy:
            main.pipeline.on_message(_telemetry(1), 1)
        assert len(main.sink) == int(main_busy)

        adopted = worker._adoption_task(Member("w-c2-0", OFFLINE, ("plants/#",), 0.0))
        acks: list[tuple[int, int, int]] = []
        monkeypatch.setattr(adopted.subscriber, "ack", acks.extend)
        adopted.pipeline.on_connected(1, True)
        for packet_id in (7, 8, 9):  # the dead member's session, re-sent
            adopted.pipeline.on_message(_telemetry(packet_id, dup=True), 1)
        assert adopted.tracker.in_flight == 3

        main.pipeline.on_tick()  # what the main network thread does on every turn

        assert adopted.tracker.in_flight == 0, "the adopted session's delivery reports were not served"
        assert acks == [(1, 7, 1), (1, 8, 1), (1, 9, 1)]
        assert adopted.sink is main.sink
        assert _Sink.made == 1, "the adoption built a Kafka producer of its own"
    finally:
        for task in (main, adopted):
            if task is not None:
                task.subscriber.stop()

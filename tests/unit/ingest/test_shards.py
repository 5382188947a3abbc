"""The sharded worker with fake shard tasks: what it runs for assigned shards, how it lets them go,
what its metrics view and counters say, and a taken-over session started again."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mqtt_kafka_sync.config.model import SourceConnectorConfig
from mqtt_kafka_sync.ingest import shards as shards_module
from mqtt_kafka_sync.ingest.shards import ShardedWorker
from mqtt_kafka_sync.mqtt.failures import Failure
from tests.unit.config.files import SOURCE_KEYS, load_source, write_properties

FILTERS = ("plants/p0/#", "plants/p1/#", "plants/p2/#")


class FakeSubscriber:
    def __init__(self) -> None:
        self.subscribed = True
        self.taken_over = False
        self.give_up_on_takeover = False
        self.reconnects = 1
        self.redeliveries = 2
        self.loop_turned_at = 5.0
        self.failures = type("F", (), {"current": None, "counts": Counter({"refused": 1})})()

    def wait_connected(self, timeout: float) -> bool:
        return True


class FakeSink:
    """The task's one producer: what was asked of it, and how many records it holds."""

    def __init__(self) -> None:
        self.errors = 3
        self.kafka_up = True
        self.kafka_refusal: str | None = None
        self.kafka_refusals: Counter[str] = Counter()
        self.outstanding = 0
        self.calls: list[str] = []

    def __len__(self) -> int:
        return self.outstanding

    def warm_up(self, topics: list[str]) -> None:
        self.calls.append("warm_up")

    def poll(self, timeout: float = 0.0) -> int:
        self.calls.append("poll")
        return 0

    def flush(self, timeout: float) -> int:
        self.calls.append("flush")
        return self.outstanding

    def purge(self) -> None:
        self.calls.append("purge")
        self.outstanding = 0


class FakeTask:
    made: ClassVar[list[FakeTask]] = []

    def __init__(self, config: SourceConnectorConfig, index: int, **kwargs: Any) -> None:
        self.client_id: str = kwargs["client_id"]
        self.filters: tuple[str, ...] = kwargs["filters"]
        self.subscriber = FakeSubscriber()
        self.sink = kwargs["sink"]
        self.pipeline = type(
            "P", (), {"stats": type("S", (), {"received": 10, "produced": 9, "dead_lettered": 1})}
        )()
        self.tracker = type("T", (), {"acked": 10})()
        self.started = False
        self.drained: list[tuple[float, int | None]] = []
        FakeTask.made.append(self)

    def start(self) -> None:
        self.started = True

    def drain(self, timeout: float, *, session_expiry: int | None = None) -> bool:
        self.drained.append((timeout, session_expiry))
        return True


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ShardedWorker:
    FakeTask.made = []
    monkeypatch.setattr(shards_module, "IngestTask", FakeTask)
    monkeypatch.setattr(shards_module, "shared_sink", lambda config, index: FakeSink())
    keys = {
        **SOURCE_KEYS,
        "mqtt.client.id": "feed",
        "routes": "r",
        "routes.r.mqtt.topic": "plants/{plant}/devices/{device}/telemetry",
        "routes.r.kafka.topic": "telemetry",
        "mqtt.subscription": "sharded",
        "mqtt.shards": ",".join(FILTERS),
        "mqtt.shards.session.timeout.ms": "6000",
    }
    config = load_source(write_properties(tmp_path / "c.properties", keys))
    return ShardedWorker(config, 0)


def _assign(worker: ShardedWorker, pieces: set[int]) -> None:
    """What the member does on an assignment: record it, then tell the owner after the poll."""
    worker.member.owned = worker.member.owned | pieces
    worker.member.joined.set()
    worker.acquire(pieces)


def test_each_assigned_shard_runs_its_own_session_on_the_shard_filter(worker: ShardedWorker) -> None:
    assert worker.shards.client_ids[0] != worker.shards.client_ids[1]
    _assign(worker, {0, 2})
    assert worker.owned == (0, 2)
    made = {t.filters: t for t in FakeTask.made}
    assert set(made) == {(FILTERS[0],), (FILTERS[2],)}
    for shard in (0, 2):
        task = made[(FILTERS[shard],)]
        assert task.client_id == worker.shards.client_ids[shard]
        assert task.started and task.subscriber.give_up_on_takeover
        assert task.sink is worker.sink  # one producer for every shard


def test_subscribed_only_once_every_assigned_shard_runs_and_is_subscribed(worker: ShardedWorker) -> None:
    assert not worker.task.subscriber.subscribed  # not in the group yet
    worker.member.joined.set()
    assert worker.task.subscriber.subscribed  # a standby: in the group, owning nothing
    worker.member.owned = frozenset({1})  # assigned, session not started yet
    assert not worker.task.subscriber.subscribed
    worker.acquire({1})
    assert worker.task.subscriber.subscribed
    FakeTask.made[0].subscriber.subscribed = False
    assert not worker.task.subscriber.subscribed


def test_a_released_shard_is_drained_keeping_its_session_and_its_counts_stay(worker: ShardedWorker) -> None:
    _assign(worker, {0, 1})
    before = worker.snapshot()
    worker.release({0})
    assert worker.owned == (1,)
    first = next(t for t in FakeTask.made if t.filters == (FILTERS[0],))
    assert first.drained == [(shards_module.DRAIN_TIMEOUT_S, None)]  # None: the session stays
    after = worker.snapshot()
    assert {k: after[k] for k in ("received", "produced", "acked")} == {
        k: before[k] for k in ("received", "produced", "acked")
    }
    assert worker.task.subscriber.reconnects == 2 and worker.task.sink.errors == 3
    assert worker.task.subscriber.failures.counts == {"refused": 2}


def test_a_lost_shard_is_drained_briefly(worker: ShardedWorker) -> None:
    _assign(worker, {2})
    worker.release({2}, lost=True)
    assert FakeTask.made[0].drained == [(shards_module.LOST_DRAIN_TIMEOUT_S, None)]
    assert worker.owned == ()


def test_once_every_shard_is_lost_what_kafka_did_not_confirm_is_purged(worker: ShardedWorker) -> None:
    """Those records would reach Kafka when it comes back, beside the broker's re-sends to the next owner."""
    sink: Any = worker.sink
    _assign(worker, {0, 1})
    sink.outstanding = 7
    worker.release({0}, lost=True)  # shard 1 still runs: its records are in the same producer
    assert "purge" not in sink.calls
    worker.release({1}, lost=True)
    assert sink.calls[-2:] == ["purge", "poll"] and len(sink) == 0


def test_a_graceful_release_purges_nothing(worker: ShardedWorker) -> None:
    sink: Any = worker.sink
    _assign(worker, {0, 1})
    sink.outstanding = 7
    worker.release({0, 1})
    assert "purge" not in sink.calls


def test_a_standby_polls_the_producer_on_its_turns(worker: ShardedWorker) -> None:
    """No shard's network thread polls it: its statistics (Kafka up, for /readyz) still come."""
    sink: Any = worker.sink
    worker.turn()
    assert sink.calls == ["poll"]
    _assign(worker, {0})
    worker.turn()  # the shard's network thread polls it now
    assert sink.calls == ["poll"]


def test_the_view_reports_the_first_refusal_and_the_oldest_loop(worker: ShardedWorker) -> None:
    _assign(worker, {0, 1})
    FakeTask.made[1].subscriber.failures.current = Failure("not_authorized", 0x87, "no")
    FakeTask.made[0].subscriber.loop_turned_at = 1.0
    assert worker.task.subscriber.failures.current is not None
    assert worker.task.subscriber.failures.current.reason == "not_authorized"
    assert worker.task.subscriber.loop_turned_at == 1.0


def test_a_taken_over_session_starts_again_after_a_session_timeout(
    worker: ShardedWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    monkeypatch.setattr("mqtt_kafka_sync.ingest.shards.time.monotonic", lambda: now[0])
    _assign(worker, {0})
    FakeTask.made[0].subscriber.taken_over = True
    worker.turn()
    now[0] += 5.9
    worker.turn()
    assert len(FakeTask.made) == 1  # within the session timeout: the other owner may be the right one
    now[0] += 0.2
    worker.turn()
    assert len(FakeTask.made) == 2 and FakeTask.made[1].started
    assert worker.owned == (0,)
    assert FakeTask.made[0].drained


def test_several_shards_are_drained_at_once(worker: ShardedWorker) -> None:
    _assign(worker, {0, 1, 2})
    worker.release({0, 1, 2})
    assert worker.owned == ()
    assert all(t.drained == [(shards_module.DRAIN_TIMEOUT_S, None)] for t in FakeTask.made)
    assert worker.snapshot()["received"] == 30

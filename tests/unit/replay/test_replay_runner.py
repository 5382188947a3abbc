"""The replay from request to result without Kafka: the request's defaults, the session's planning
and resuming, the runner's wiring and its stop Event, the progress accounting."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from confluent_kafka import TopicPartition

from mqtt_kafka_sync.config import throttle as defaults
from mqtt_kafka_sync.config.model import KafkaConnection
from mqtt_kafka_sync.replay import runner as runner_module
from mqtt_kafka_sync.replay import session as session_module
from mqtt_kafka_sync.replay.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from mqtt_kafka_sync.replay.copier import Copier
from mqtt_kafka_sync.replay.exceptions import ReplayError
from mqtt_kafka_sync.replay.plan import PartitionRange, RangeSpec, ReplayPlan
from mqtt_kafka_sync.replay.progress import Progress, RateMeter
from mqtt_kafka_sync.replay.request import ReplayRequest, ThrottleRequest
from mqtt_kafka_sync.replay.runner import ReplayRunner
from mqtt_kafka_sync.replay.session import Planned, ReplaySession, TopicCreation
from mqtt_kafka_sync.replay.target import Headers, SourceRecord
from mqtt_kafka_sync.throttle.controller import Decision
from mqtt_kafka_sync.throttle.lag_throttle import FixedRateThrottle

# -- fakes ----------------------------------------------------------------------------------------


class FakeMessage(SourceRecord):
    """A consumer's message: a record with a key, value, header and timestamp made from its offset."""

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        headers: Headers = [("h", b"1")]
        super().__init__(
            topic,
            partition,
            offset,
            key=f"k{offset}".encode(),
            value=f"v{offset}".encode(),
            headers=headers,
            timestamp_ms=1_000 + offset,
        )

    def error(self) -> None:
        return None


class FakeConsumer:
    """Partitions holding every offset in ``[0, end)``."""

    def __init__(self, topic: str, ends: dict[int, int]) -> None:
        self.topic = topic
        self.ends = ends
        self.positions: dict[int, int] = {}
        self.closed = False

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.positions = {tp.partition: tp.offset for tp in partitions}

    def pause(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.positions.pop(tp.partition, None)

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(self.topic, tp.partition, self.positions.get(tp.partition, 0)) for tp in partitions
        ]

    def consume(self, limit: int, _timeout: float) -> list[FakeMessage]:
        batch: list[FakeMessage] = []
        for partition, start in sorted(self.positions.items()):
            end = min(self.ends[partition], start + limit - len(batch))
            batch.extend(FakeMessage(self.topic, partition, offset) for offset in range(start, end))
            self.positions[partition] = max(start, end)
        return batch

    def close(self) -> None:
        self.closed = True


class FakeTarget:
    """Confirms every record on the next poll."""

    made: ClassVar[list[FakeTarget]] = []

    def __init__(
        self, bootstrap: KafkaConnection, topic: str, *, same_partitions: bool, client_id: str
    ) -> None:
        self.args = (bootstrap, topic, same_partitions, client_id)
        self.sent: list[tuple[int, int, list[tuple[str, Any]]]] = []
        self._pending: list[Callable[[str | None], None]] = []
        self.closed = False
        FakeTarget.made.append(self)

    def send(self, record: SourceRecord, done: Any) -> None:
        self.sent.append((record.partition(), record.offset(), record.headers()))
        self._pending.append(done)

    def poll(self, _timeout: float = 0.0) -> None:
        pending, self._pending = self._pending, []
        for done in pending:
            done(None)

    def flush(self, _timeout: float) -> int:
        self.poll()
        return 0

    def close(self) -> None:
        self.closed = True


class Events:
    def __init__(self) -> None:
        self.reports: list[Progress] = []
        self.decisions: list[Decision] = []

    def progress(self, progress: Progress) -> None:
        self.reports.append(progress)

    def decision(self, decision: Decision) -> None:
        self.decisions.append(decision)


@pytest.fixture(autouse=True)
def fake_target(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeTarget.made = []
    monkeypatch.setattr(runner_module, "KafkaTarget", FakeTarget)


def _request(tmp_path: Path, **changes: Any) -> ReplayRequest:
    values: dict[str, Any] = {
        "source": "src",
        "target": "dst",
        "bootstrap": "source-kafka:9092",
        "checkpoint": tmp_path / "cp.json",
    }
    return ReplayRequest(**{**values, **changes})


def _planned(session: ReplaySession, ends: dict[int, int], *, fixed_rate: float | None = None) -> Planned:
    plan = ReplayPlan(
        "src", "dst", tuple(PartitionRange(p, 0, end) for p, end in ends.items()), len(ends), True
    )
    session._consumer = FakeConsumer("src", ends)  # type: ignore[assignment]
    return Planned(
        Checkpoint.fresh(session.spec, plan), session.path, (), None, (), frozenset({"dst"}), fixed_rate
    )


# -- request --------------------------------------------------------------------------------------


def test_the_throttles_defaults_are_the_connectors() -> None:
    settings = ThrottleRequest(groups=("g",), lag_high=10_000).controller_settings()
    assert settings is not None
    assert settings.lag_low == defaults.default_lag_low(10_000) == 5_000
    assert settings.step == defaults.default_step(10_000, defaults.LAG_INTERVAL_S) == 200.0
    assert (settings.rate_min, settings.rate_max, settings.interval, settings.mode) == (
        defaults.REPLAY_RATE_MIN,
        defaults.RATE_MAX,
        defaults.LAG_INTERVAL_S,
        "enforce",
    )
    assert ThrottleRequest(rate_max=50.0).controller_settings() is None
    with pytest.raises(ReplayError, match="--step-max needs --throttle-group"):
        ThrottleRequest(step_max=5.0).controller_settings()


def test_the_session_checks_the_request_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="--target is --source"):
        ReplaySession(_request(tmp_path, target="src"))
    session = ReplaySession(_request(tmp_path, target="src", target_bootstrap="other:9092"))
    assert (session.bootstrap, session.target_bootstrap) == ("source-kafka:9092", "other:9092")
    assert ReplaySession(_request(tmp_path, checkpoint=None)).path == Path("replay-src-dst.checkpoint.json")
    with pytest.raises(RuntimeError):
        _ = session.consumer


# -- session --------------------------------------------------------------------------------------


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Topics and their partitions, as the session sees them; fresh plans cover offsets 0 to 10."""
    topics: dict[str, list[int]] = {"src": [0, 1], "dst": [0, 1]}
    monkeypatch.setattr(session_module, "replay_consumer", lambda *_: FakeConsumer("src", {0: 10, 1: 10}))
    monkeypatch.setattr(session_module, "_partitions", lambda _bootstrap, topic: topics.get(topic, []))
    monkeypatch.setattr(session_module, "ensure_topics", lambda *_, **__: topics.update(dst=[0, 1]))

    def make_plan(
        _consumer: Any, spec: RangeSpec, *, source_partitions: list[int], target_partitions: int
    ) -> ReplayPlan:
        ranges = tuple(PartitionRange(p, 0, 10) for p in source_partitions)
        return ReplayPlan(spec.source, spec.target, ranges, target_partitions, True)

    monkeypatch.setattr(session_module, "make_plan", make_plan)
    return topics


def test_a_fresh_plan_and_what_the_user_reads_about_it(tmp_path: Path, kafka: dict[str, list[int]]) -> None:
    request = _request(tmp_path, throttle=ThrottleRequest(rate_max=500.0))
    with ReplaySession(request) as session:
        planned = session.plan(lambda _: pytest.fail("the target exists"))
        consumer = session.consumer
    assert isinstance(consumer, FakeConsumer) and consumer.closed
    assert planned is not None and not planned.resuming
    assert [(r.partition, r.span, r.done) for r in planned.rows] == [(0, 10, 0), (1, 10, 0)]
    assert (planned.watched, planned.fixed_rate, planned.settings) == (frozenset({"dst"}), 500.0, None)


def test_a_missing_target_is_created_only_when_asked_and_not_in_a_dry_run(
    tmp_path: Path, kafka: dict[str, list[int]]
) -> None:
    del kafka["dst"]
    with (
        ReplaySession(_request(tmp_path)) as session,
        pytest.raises(ReplayError, match="pass --create-target"),
    ):
        session.plan(lambda _: None)
    created: list[TopicCreation] = []
    with ReplaySession(_request(tmp_path, create_target=True, dry_run=True)) as session:
        assert session.plan(created.append) is not None
    assert "dst" not in kafka
    with ReplaySession(_request(tmp_path, create_target=True)) as session:
        assert session.plan(created.append) is not None
    assert kafka["dst"] == [0, 1]
    assert created == [TopicCreation("dst", 2, "src", True), TopicCreation("dst", 2, "src", False)]


def test_a_checkpoint_is_resumed_only_for_the_same_replay(
    tmp_path: Path, kafka: dict[str, list[int]]
) -> None:
    request = _request(tmp_path)
    plan = ReplayPlan("src", "dst", (PartitionRange(0, 0, 10), PartitionRange(1, 0, 10)), 2, True)
    checkpoint = Checkpoint.fresh(request.range_spec(None), plan)
    checkpoint.next[0], checkpoint.produced_below[0] = 4, 7
    save_checkpoint(tmp_path / "cp.json", checkpoint)
    with ReplaySession(request) as session:
        planned = session.plan(lambda _: None)
    assert planned is not None and planned.resuming and [r.done for r in planned.rows] == [4, 0]

    other = _request(tmp_path, from_offsets=("3",))
    with ReplaySession(other) as session, pytest.raises(ReplayError, match=r"another replay \(src -> dst\)"):
        session.plan(lambda _: None)
    kafka["dst"] = [0, 1, 2]
    with (
        ReplaySession(request) as session,
        pytest.raises(ReplayError, match=r"had 2 partitions .* has 3 now"),
    ):
        session.plan(lambda _: None)
    checkpoint.complete = True
    save_checkpoint(tmp_path / "cp.json", checkpoint)
    with ReplaySession(request) as session:
        assert session.plan(lambda _: None) is None


# -- runner ---------------------------------------------------------------------------------------


def test_a_run_copies_the_plan_into_the_target_and_completes_the_checkpoint(tmp_path: Path) -> None:
    session = ReplaySession(_request(tmp_path, target_bootstrap="target-kafka:9092"))
    planned = _planned(session, {0: 30, 1: 20})
    events = Events()
    with ReplayRunner(session, planned, events) as runner:
        result = runner.run()
        assert runner.dead_letter_summary() is None
    (target,) = FakeTarget.made
    assert target.closed
    assert target.args == (KafkaConnection("target-kafka:9092"), "dst", True, session.client_id)
    assert (result.complete, result.done, result.total, result.sent) == (True, 50, 50, 50)
    assert [(p, o) for p, o, _ in target.sent if p == 1] == [(1, o) for o in range(20)]
    assert target.sent[0][2] == [("h", b"1"), ("replay.source", "src/0/0")]
    assert events.reports[-1].finished and events.reports[-1].done == 50
    saved = load_checkpoint(tmp_path / "cp.json")
    assert saved is not None and saved.complete


def test_a_set_stop_event_ends_the_run_before_anything_is_sent(tmp_path: Path) -> None:
    session = ReplaySession(_request(tmp_path))
    runner = ReplayRunner(session, _planned(session, {0: 30}), Events())
    with pytest.raises(RuntimeError, match="open"):
        runner.run()
    with runner:
        runner.stop.set()
        result = runner.run()
    assert (result.complete, result.done, result.sent) == (False, 0, 0)
    assert FakeTarget.made[0].sent == []
    saved = load_checkpoint(tmp_path / "cp.json")
    assert saved is not None and not saved.complete


def test_rate_max_without_a_group_is_a_fixed_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    throttles: list[object] = []

    def recording_copier(*args: Any, **kwargs: Any) -> Any:
        throttles.append(kwargs["throttle"])
        return Copier(*args, **kwargs)

    monkeypatch.setattr(runner_module, "Copier", recording_copier)
    session = ReplaySession(_request(tmp_path))
    with ReplayRunner(session, _planned(session, {0: 5}, fixed_rate=1e6), Events()) as runner:
        assert runner.run().complete
    with ReplayRunner(session, _planned(session, {0: 5}), Events()) as runner:
        runner.run()
    assert isinstance(throttles[0], FixedRateThrottle) and throttles[0].rate == 1e6
    assert throttles[1] is None


# -- progress -------------------------------------------------------------------------------------


def test_the_rate_is_smoothed_while_running_and_the_average_at_the_end() -> None:
    meter = RateMeter(done=100, now=10.0)
    assert meter.update(300, 12.0) == pytest.approx(30.0)  # 100/s since the start, 30% of the way
    assert meter.update(500, 14.0) == pytest.approx(0.7 * 30.0 + 0.3 * 100.0)
    assert meter.reported(500, 4.0, finished=False) == meter.rate
    assert meter.reported(500, 4.0, finished=True) == 100.0  # the 100 done before this run not counted
    assert meter.reported(500, 0.0, finished=True) == meter.rate
    assert Progress(25, 100, 1.0, 1.0).percent == 25.0
    assert Progress(0, 0, 0.0, 0.0).percent == 100.0

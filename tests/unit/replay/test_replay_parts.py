"""Replay pieces without Kafka: range options, the checkpoint file, in-order confirmations, output,
the options and plan of a replay into MQTT."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from mqtt_kafka_sync.cli.lag import format_lag_table
from mqtt_kafka_sync.cli.replay import ProgressLine
from mqtt_kafka_sync.kafka.lag import GroupLag, LagSample, LagSnapshot
from mqtt_kafka_sync.replay.checkpoint import Checkpoint, Confirmations, load_checkpoint, save_checkpoint
from mqtt_kafka_sync.replay.exceptions import ReplayError
from mqtt_kafka_sync.replay.plan import PartitionRange, RangeSpec, ReplayPlan, parse_offsets, parse_time
from mqtt_kafka_sync.replay.progress import Progress
from mqtt_kafka_sync.replay.to_mqtt import describe, source_route
from tests.unit.telemetry.telemetry_fakes import RELAY, SOURCE, relay_config


def test_offsets_for_every_partition_or_one() -> None:
    assert parse_offsets(["100", "2:250"], "--from-offset") == {None: 100, 2: 250}
    with pytest.raises(ReplayError, match="PARTITION:OFFSET"):
        parse_offsets(["x:1"], "--from-offset")
    with pytest.raises(ReplayError, match="never negative"):
        parse_offsets(["-5"], "--to-offset")
    with pytest.raises(ReplayError, match="twice for partition 1"):
        parse_offsets(["1:5", "1:6"], "--to-offset")


def test_times_are_iso_8601_and_utc_without_a_zone() -> None:
    assert parse_time("2026-11-20T06:00:00Z", "--from-time").timestamp() == 1_795_154_400
    assert parse_time("2026-11-20T06:00:00", "--from-time").timestamp() == 1_795_154_400
    assert parse_time("2026-11-20T07:00:00+01:00", "--from-time").timestamp() == 1_795_154_400
    with pytest.raises(ReplayError, match="not an ISO-8601 time"):
        parse_time("yesterday", "--from-time")


def _checkpoint() -> Checkpoint:
    spec = RangeSpec("src", "dst", from_offsets=("10",))
    plan = ReplayPlan("src", "dst", (PartitionRange(0, 10, 110), PartitionRange(1, 10, 20)), 2, True)
    return Checkpoint.fresh(spec, plan)


def test_checkpoint_round_trips_and_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    assert load_checkpoint(path) is None
    cp = _checkpoint()
    assert (cp.done, cp.may_repeat, cp.plan.total) == (0, 0, 110)
    cp.next[0], cp.produced_below[0] = 60, 90
    save_checkpoint(path, cp)
    again = load_checkpoint(path)
    assert again is not None
    assert again.to_json() == cp.to_json()
    assert (again.done, again.may_repeat) == (50, 30)
    assert not list(tmp_path.glob("*.tmp"))
    path.write_text("{not json")
    with pytest.raises(ReplayError, match="not a replay checkpoint"):
        load_checkpoint(path)
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(ReplayError, match="unknown checkpoint version"):
        load_checkpoint(path)


def test_confirmations_advance_only_over_a_confirmed_prefix() -> None:
    confirmations = Confirmations({0: 10, 1: 0})
    tokens = [confirmations.sent(0, offset) for offset in (10, 11, 13)]  # 12: a gap (compaction)
    confirmations.confirmed(0, tokens[2])
    confirmations.confirmed(0, tokens[1])
    assert confirmations.next_offsets()[0] == 10  # 10 still unconfirmed
    confirmations.confirmed(0, tokens[0])
    assert confirmations.next_offsets() == {0: 14, 1: 0}
    assert confirmations.in_flight == 0
    confirmations.skip_to(1, 5)
    assert confirmations.next_offsets()[1] == 5


def test_lag_table_lists_partitions_totals_and_groups_without_commits() -> None:
    snapshot = LagSnapshot(
        0.0,
        (
            GroupLag(
                "historian",
                (
                    LagSample("historian", "telemetry", 0, 1200, 1000, 200, 3.25),
                    LagSample("historian", "telemetry", 1, 50, None, None, None),
                    LagSample("historian", "telemetry", 2, 7000, 7000, 0, 0.0),
                ),
            ),
            GroupLag("nobody", ()),
        ),
    )
    assert snapshot.lag() == 200
    lines = format_lag_table(snapshot).splitlines()
    assert lines[0].split() == ["GROUP", "TOPIC", "PARTITION", "END", "COMMITTED", "LAG", "TIME", "LAG"]
    assert lines[1].split() == ["historian", "telemetry", "0", "1,200", "1,000", "200", "3.2s"]
    assert lines[2].split() == ["historian", "telemetry", "1", "50", "-", "-", "-"]
    assert lines[4].split() == ["historian", "(total)", "200", "3.2s"]
    assert lines[5] == "nobody: no committed offsets (unknown group, or nothing committed yet)"


def test_progress_line_shows_done_total_rate_and_eta() -> None:
    out = io.StringIO()
    line = ProgressLine(out)
    line.progress(Progress(done=2500, total=10_000, rate=500.0, elapsed=5.0))
    assert out.getvalue() == "replay 2,500/10,000 (25.0%)  500 rec/s  ETA 0:00:15\n"


def test_a_partition_without_a_commit_counts_what_was_appended_since_it_was_first_seen() -> None:
    from mqtt_kafka_sync.kafka.lag import LagReader  # noqa: PLC0415

    reader = LagReader("127.0.0.1:1", ["g"])  # never connects: only the bookkeeping is used
    one_off = LagReader("127.0.0.1:1", ["g"], track_uncommitted=False)
    try:
        assert reader._lag("g", "t", 0, 500, None) == 0  # first seen at 500
        assert reader._lag("g", "t", 0, 800, None) == 300
        assert reader._lag("g", "t", 0, 900, 850) == 50  # committed now: the real lag
        assert reader._lag("g", "t", 0, 950, None) == 0  # a new baseline if the commit goes away
        assert one_off._lag("g", "t", 0, 800, None) is None
    finally:
        reader.close()
        one_off.close()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "a"], "--target is --source: the replay would read its own output"),
        (["--target", "b", "--lag-high", "5"], "--lag-high needs --throttle-group"),
        (["--target", "b", "--throttle-group", "g"], "--throttle-group needs --lag-high"),
        (
            ["--target", "b", "--throttle-group", "g", "--lag-high", "10", "--lag-low", "10"],
            "throttle settings: need 0 <= lag_low < lag_high",
        ),
    ],
)
def test_replay_refuses_bad_options_before_connecting(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from mqtt_kafka_sync.cli.main import main  # noqa: PLC0415

    assert main(["replay", "--bootstrap", "127.0.0.1:1", "--source", "a", *extra]) == 1
    assert message in capsys.readouterr().err


@pytest.fixture
def relay_file(tmp_path: Path) -> Path:
    path = tmp_path / "relay.json"
    path.write_text(json.dumps({"name": "relay", "config": RELAY}))
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "b", "--expiry-from", "replayed"], "--expiry-from is for --to-mqtt"),
        (["--target", "b", "--stall-timeout", "5"], "--stall-timeout is for --to-mqtt"),
        (["--target", "b", "--throttle-topic", "t"], "--throttle-topic needs --throttle-group"),
        (["--create-target"], "--create-target is for --target"),
        (["--target-bootstrap", "x:1"], "--target-bootstrap is for --target"),
        (["--stall-timeout", "0"], "--stall-timeout must be above 0"),
        (
            ["--throttle-group", "g", "--lag-high", "10"],
            "with --to-mqtt, --throttle-group needs --throttle-topic",
        ),
    ],
)
def test_replay_into_mqtt_refuses_options_of_the_other_target(
    extra: list[str], message: str, relay_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mqtt_kafka_sync.cli.main import main  # noqa: PLC0415

    to_mqtt = [] if "--target" in extra else ["--to-mqtt", str(relay_file)]
    assert main(["replay", "--bootstrap", "127.0.0.1:1", "--source", "a", *to_mqtt, *extra]) == 1
    assert message in capsys.readouterr().err


def test_replay_into_mqtt_needs_exactly_one_target_and_a_relay_connector(
    relay_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mqtt_kafka_sync.cli.main import main  # noqa: PLC0415

    with pytest.raises(SystemExit) as both:
        main(["replay", "--source", "a", "--target", "b", "--to-mqtt", str(relay_file)])
    assert both.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["replay", "--source", "a"])
    assert "one of the arguments --target --to-mqtt is required" in capsys.readouterr().err

    ingest = tmp_path / "ingest.json"
    ingest.write_text(json.dumps({"name": "src", "config": SOURCE}))
    assert main(["replay", "--source", "a", "--to-mqtt", str(ingest)]) == 2
    assert "connector.class: is mqtt_kafka_sync.MqttSourceConnector" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"name": "r", "config": {**RELAY, "routes.cmd.mqtt.qos": "3"}}))
    assert main(["replay", "--source", "a", "--to-mqtt", str(broken)]) == 2
    assert "routes.cmd.mqtt.qos" in capsys.readouterr().err


def test_the_route_must_read_the_source_topic_and_the_plan_says_where_records_go() -> None:
    config = relay_config()
    with pytest.raises(ReplayError, match=r"no route of relay .* reads topic other \(cmd reads commands\)"):
        source_route(config, "other")
    route = source_route(config, "commands")
    timed = replace(route, message_expiry_seconds=300)
    assert describe(config, route, "written") == [
        "  route cmd: key {plant}.{device} -> plants/{plant}/devices/{device}/commands, QoS 1",
        "  broker tcp://127.0.0.1:1883 as relay-replay-<random>; at most 1,000 in flight, fewer if "
        "the broker's Receive Maximum is lower",
        "  dead letters (records the relay would not publish): commands-dlq",
    ]
    assert "older records are dead-lettered as expired" in describe(config, timed, "written")[2]
    assert (
        describe(config, timed, "replayed")[2]
        == "  expiry: 300s from publishing each command (--expiry-from replayed)"
    )


def test_a_checkpoint_records_the_kind_of_target_and_older_ones_are_kafka(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    spec = RangeSpec("src", "relay", target_kind="mqtt")
    plan = ReplayPlan("src", "relay", (PartitionRange(0, 0, 10),), 0, False, target_kind="mqtt")
    save_checkpoint(path, Checkpoint.fresh(spec, plan))
    loaded = load_checkpoint(path)
    assert loaded is not None and loaded.spec == spec and loaded.plan.target_label == "MQTT (connector relay)"
    assert loaded.spec != RangeSpec("src", "relay"), "a Kafka replay into topic 'relay' could resume it"
    doc = _checkpoint().to_json()
    del doc["spec"]["target_kind"], doc["plan"]["target_kind"]
    old = Checkpoint.from_json(doc)
    assert old.spec.target_kind == old.plan.target_kind == "kafka"

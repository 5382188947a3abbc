"""``mqtt.subscription=sharded`` and ``mqtt.shards*``: defaults, the overlap table, every refusal named."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from mqtt_kafka_sync.config.loader import check_files
from mqtt_kafka_sync.config.model import ShardsConfig, SourceConnectorConfig
from mqtt_kafka_sync.config.shards import filters_overlap, shard_client_id
from tests.unit.config.files import SOURCE_KEYS, load_source, write_properties

BASE = {
    **SOURCE_KEYS,
    "mqtt.client.id": "feed",
    "routes": "r",
    "routes.r.mqtt.topic": "plants/{plant}/devices/{device}/telemetry",
    "routes.r.kafka.topic": "telemetry",
}
SHARDED = {"mqtt.subscription": "sharded", "mqtt.shards": "plants/p0/#,plants/p1/#"}


def _write(tmp_path: Path, changes: Mapping[str, str | None]) -> Path:
    return write_properties(tmp_path / "c.properties", BASE, changes)


def _load(tmp_path: Path, changes: Mapping[str, str | None]) -> SourceConnectorConfig:
    return load_source(_write(tmp_path, changes))


def _problems(tmp_path: Path, changes: Mapping[str, str | None]) -> list[tuple[str, str, str]]:
    return [(p.key, p.problem, p.fix) for p in check_files([_write(tmp_path, changes)], {})]


# Two filters overlap iff some topic matches both.
OVERLAP_TABLE = [
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("a/+", "a/b", True),
    ("a/+", "+/b", True),
    ("a/+", "a/b/c", False),
    ("a/#", "a", True),  # '#' matches its parent level
    ("a/#", "a/b/c", True),
    ("a/#", "b/#", False),
    ("#", "anything/at/all", True),
    ("+/+", "a/b/c", False),
    ("+/#", "a", True),
    ("a/+/c", "a/b/+", True),
    ("a/+/c", "a/b/d", False),
    ("a/b", "a/b/", False),  # an empty last level is a level
    ("plants/p0/#", "plants/p1/#", False),
    ("plants/p0/#", "plants/+/devices/#", True),
    ("plants/p0/#", "plants/p01/#", False),
    ("#", "$SYS/broker", False),  # wildcards in the first level never match '$' topics
    ("+/x", "$SYS/x", False),
    ("$SYS/#", "$SYS/+", True),
]


@pytest.mark.parametrize(("first", "second", "expected"), OVERLAP_TABLE)
def test_overlap_table(first: str, second: str, expected: bool) -> None:
    assert filters_overlap(first, second) is expected
    assert filters_overlap(second, first) is expected


def test_shared_by_default(tmp_path: Path) -> None:
    config = _load(tmp_path, {})
    assert config.shards is None and not config.sharded


def test_sharded_defaults_come_from_the_connector_name(tmp_path: Path) -> None:
    config = _load(tmp_path, SHARDED)
    assert config.shards == ShardsConfig(
        filters=("plants/p0/#", "plants/p1/#"),
        client_ids=(shard_client_id("feed", "plants/p0/#"), shard_client_id("feed", "plants/p1/#")),
        topic="mqtt-kafka-sync-plant-feed-shards",
        group="mqtt-kafka-sync-plant-feed-shards",
        session_timeout_ms=10_000,
    )


def test_sharded_mode_needs_no_shared_group(tmp_path: Path) -> None:
    assert _load(tmp_path, {**SHARDED, "mqtt.shared.group": None}).sharded


def test_topic_group_and_timeout_can_be_set(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        {
            **SHARDED,
            "mqtt.shards.topic": "coord",
            "mqtt.shards.group": "owners",
            "mqtt.shards.session.timeout.ms": "6000",
        },
    )
    assert config.shards is not None
    assert (config.shards.topic, config.shards.group, config.shards.session_timeout_ms) == (
        "coord",
        "owners",
        6000,
    )


def test_client_ids_depend_on_the_filter_only_and_are_safe() -> None:
    first = shard_client_id("feed", "plants/p0/#")
    assert first == shard_client_id("feed", "plants/p0/#")
    assert first.startswith("feed-plants-p0-") and len(first) == len("feed-plants-p0-") + 8
    assert first != shard_client_id("feed", "plants/p0/+")  # same words, another filter
    assert shard_client_id("feed", "#").startswith("feed-all-")
    assert all(c.isalnum() or c == "-" for c in shard_client_id("x", "a b/+/ü/#"))


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"mqtt.subscription": "sharded"}, "mqtt.shards", "is required with mqtt.subscription=sharded"),
        ({**SHARDED, "mqtt.shards": "plants/p0/#,plants/+/devices/#"}, "mqtt.shards", "overlap"),
        ({**SHARDED, "mqtt.shards": "plants/p0/#,#"}, "mqtt.shards", "overlap"),
        ({**SHARDED, "mqtt.shards": "plants/p0/#,plants/p0/#"}, "mqtt.shards", "listed twice"),
        ({**SHARDED, "mqtt.shards": "$share/g/plants/p0/#"}, "mqtt.shards", "shared subscription"),
        ({**SHARDED, "mqtt.shards": "plants/p0#"}, "mqtt.shards", "not a valid MQTT filter"),
        ({**SHARDED, "mqtt.shards": "plants/p0/#,sensors/#"}, "mqtt.shards", "no route matches"),
        ({"mqtt.shards": "plants/p0/#"}, "mqtt.shards", "only used with mqtt.subscription=sharded"),
        ({"mqtt.shards.group": "g"}, "mqtt.shards.group", "only used with mqtt.subscription=sharded"),
        ({**SHARDED, "mqtt.topics": "plants/#"}, "mqtt.topics", "not used in sharded mode"),
        ({**SHARDED, "mqtt.shards.topic": "bad topic"}, "mqtt.shards.topic", ""),
        (
            {**SHARDED, "mqtt.shards.session.timeout.ms": "10"},
            "mqtt.shards.session.timeout.ms",
            "out of range",
        ),
        ({"mqtt.subscription": "sticky"}, "mqtt.subscription", "not allowed"),
        ({"mqtt.shared.group": None}, "mqtt.shared.group", "is required"),
        ({"mqtt.shared.group": " "}, "mqtt.shared.group", "is required but empty"),
        (
            {**SHARDED, "throttle.lag.groups": "g", "throttle.lag.high": "1000"},
            "throttle.lag.groups",
            "sharded mode",
        ),
    ],
)
def test_refusals_name_the_key_and_the_fix(
    tmp_path: Path, changes: Mapping[str, str | None], key: str, words: str
) -> None:
    problems = _problems(tmp_path, changes)
    assert any(k == key and words in problem and fix for k, problem, fix in problems), problems

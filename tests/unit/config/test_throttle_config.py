"""``throttle.*`` keys of the source connector: off by default, defaults derived, every problem named."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import pytest

from mqtt_kafka_sync.config.loader import check_files
from mqtt_kafka_sync.config.model import SourceConnectorConfig, ThrottleConfig
from mqtt_kafka_sync.throttle.lag_throttle import (
    TopicTemplates,
    controller_settings,
    ingest_throttle,
    route_topics,
)
from tests.unit.config.files import SOURCE_KEYS, load_source, write_properties

BASE = {
    **SOURCE_KEYS,
    "routes": "r,s",
    "routes.r.mqtt.topic": "plants/{plant}/telemetry",
    "routes.r.kafka.topic": "plant-{plant}",
    "routes.s.mqtt.topic": "status/#",
    "routes.s.kafka.topic": "status",
}


def _write(tmp_path: Path, changes: Mapping[str, str]) -> Path:
    return write_properties(tmp_path / "c.properties", BASE, changes)


def _load(tmp_path: Path, changes: Mapping[str, str]) -> SourceConnectorConfig:
    return load_source(_write(tmp_path, changes))


def _problems(tmp_path: Path, changes: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(p.key, p.problem) for p in check_files([_write(tmp_path, changes)], {})]


def test_off_unless_groups_are_named(tmp_path: Path) -> None:
    assert _load(tmp_path, {}).throttle is None


def test_defaults_derive_from_the_high_mark_and_the_interval(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        {
            "throttle.lag.groups": "alerting, historian",
            "throttle.lag.high": "50000",
            "throttle.rate.min": "2000",
        },
    )
    assert config.throttle == ThrottleConfig(
        groups=("alerting", "historian"),
        lag_high=50_000,
        lag_low=25_000,
        rate_min=2000.0,
        rate_max=1_000_000.0,
        step_max=1000.0,  # 50,000 / (25 * 2 s)
        interval_seconds=2.0,
        mode="enforce",
    )


def test_every_key_set(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        {
            "throttle.lag.groups": "alerting",
            "throttle.lag.high": "10000",
            "throttle.lag.low": "1000",
            "throttle.rate.min": "100",
            "throttle.rate.max": "9000",
            "throttle.step.max": "250",
            "throttle.mode": "observe",
            "throttle.lag.interval.seconds": "0.5",
        },
    )
    assert config.throttle is not None
    settings = controller_settings(config.throttle)
    assert (settings.lag_high, settings.lag_low, settings.rate_min, settings.rate_max) == (
        10_000,
        1000,
        100,
        9000,
    )
    assert (settings.step, settings.interval, settings.mode) == (250, 0.5, "observe")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"throttle.lag.high": "5000"}, ("throttle.lag.high", "is only used with throttle.lag.groups")),
        ({"throttle.mode": "observe"}, ("throttle.mode", "is only used with throttle.lag.groups")),
        (
            {"throttle.lag.groups": "g", "throttle.rate.min": "10"},
            ("throttle.lag.high", "is required with throttle.lag.groups"),
        ),
        (
            {"throttle.lag.groups": "g", "throttle.lag.high": "10"},
            ("throttle.rate.min", "is required with throttle.lag.groups"),
        ),
        (
            {
                "throttle.lag.groups": "g",
                "throttle.lag.high": "10",
                "throttle.lag.low": "10",
                "throttle.rate.min": "1",
            },
            ("throttle.lag.low", "10 is not below throttle.lag.high (10)"),
        ),
        (
            {
                "throttle.lag.groups": "g",
                "throttle.lag.high": "10",
                "throttle.rate.min": "50",
                "throttle.rate.max": "5",
            },
            ("throttle.rate.min", "50 is above throttle.rate.max (5)"),
        ),
        (
            {
                "throttle.lag.groups": "g",
                "throttle.lag.high": "10",
                "throttle.rate.min": "5",
                "mqtt.qos": "0",
            },
            ("throttle.lag.groups", "the throttle holds back acknowledgements, and QoS 0 has none"),
        ),
        (
            {"throttle.lag.groups": "g,g", "throttle.lag.high": "10", "throttle.rate.min": "5"},
            ("throttle.lag.groups", "group 'g' is listed twice"),
        ),
        (
            {
                "throttle.lag.groups": "g",
                "throttle.lag.high": "10",
                "throttle.rate.min": "5",
                "throttle.mode": "dry",
            },
            ("throttle.mode", "'dry' is not allowed"),
        ),
        (
            {"throttle.lag.groups": "g h", "throttle.lag.high": "10", "throttle.rate.min": "5"},
            ("throttle.lag.groups", "'g h' may only contain letters, digits, '_', '.' and '-'"),
        ),
    ],
)
def test_problems_name_the_key(tmp_path: Path, changes: Mapping[str, str], expected: tuple[str, str]) -> None:
    assert _problems(tmp_path, changes) == [expected]


def test_lag_is_watched_only_on_topics_the_routes_write(tmp_path: Path) -> None:
    config = _load(tmp_path, {})
    watched = route_topics(config.routes)
    assert watched("plant-p01") and watched("status")
    assert not watched("plant-") and not watched("status-x") and not watched("commands")
    braces = TopicTemplates(["a{{b}}.{x}"])
    assert braces("a{b}.zz") and not braces("aXb.zz")
    assert not TopicTemplates([])("anything")
    copied = pickle.loads(pickle.dumps(watched))  # noqa: S301  # how a lag reader process receives it
    assert copied("plant-p01") and not copied("commands")


def test_ingest_throttle_splits_the_connector_rates_across_tasks(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        {
            "throttle.lag.groups": "alerting",
            "throttle.lag.high": "10000",
            "throttle.rate.min": "400",
            "throttle.rate.max": "8000",
            "throttle.step.max": "200",
        },
    )
    made = ingest_throttle(config, tasks=4)
    assert made is not None
    throttle, loop = made
    assert (throttle.settings.rate_min, throttle.settings.rate_max, throttle.settings.step) == (100, 2000, 50)
    assert throttle.rate == 100  # starts at the floor
    loop.stop()  # never started: only closes the lag reader
    assert ingest_throttle(_load(tmp_path, {}), tasks=4) is None

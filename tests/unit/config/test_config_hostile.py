"""Config that passed validate and then crash-looped the task: refused or warned about at load time."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqtt_kafka_sync.cli.main import main
from mqtt_kafka_sync.config.librdkafka import librdkafka_problems
from mqtt_kafka_sync.config.spec import MAX_TASKS
from tests.unit.config.files import write_properties
from tests.unit.config.test_config import _problems, _write
from tests.unit.config.test_relay_config import BASE as RELAY_BASE


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("kafka.producer.linger.ms", "soon", "Invalid value"),
        ("kafka.producer.no.such.property", "1", "No such configuration property"),
        ("kafka.producer.compression.type", "zip", "Invalid value"),
        ("kafka.producer.retries", "0", "retries"),  # refused only together with idempotence
        ("kafka.producer.batch.size", "-1", "batch.size"),
        ("kafka.producer.security.protocol", "SASL_SSL", "GSSAPI"),  # the default mechanism: not built in
    ],
)
def test_bad_producer_properties_are_refused_with_the_key(
    tmp_path: Path, key: str, value: str, said: str
) -> None:
    problems = _problems(tmp_path, {key: value})
    assert problems, f"{key}={value} passed"
    assert any(said in p.problem and p.key.startswith("kafka.producer.") for p in problems), problems


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("kafka.producer.linger.ms", "20"),
        ("kafka.producer.compression.type", "lz4"),
        ("kafka.producer.queue.buffering.max.kbytes", "65536"),
    ],
)
def test_good_producer_properties_pass(tmp_path: Path, key: str, value: str) -> None:
    assert _problems(tmp_path, {key: value}) == []


def test_properties_valid_only_together_pass(tmp_path: Path) -> None:
    together = {
        "kafka.producer.security.protocol": "SASL_SSL",
        "kafka.producer.sasl.mechanism": "SCRAM-SHA-512",
        "kafka.producer.sasl.username": "bridge",
        "kafka.producer.sasl.password": "secret",
    }
    assert _problems(tmp_path, together) == []


def test_bad_consumer_properties_of_the_relay_are_refused(tmp_path: Path) -> None:
    bad = {"kafka.consumer.fetch.wait.max.ms": "soon", "kafka.consumer.bogus": "1"}
    path = write_properties(tmp_path / "relay.properties", RELAY_BASE, bad)
    assert main(["validate", str(path)]) == 1


def test_librdkafka_names_the_property_it_refuses() -> None:
    assert librdkafka_problems("producer", {"linger.ms": "soon", "acks": "all"}, {}) == {
        "linger.ms": 'Invalid value for configuration property "queue.buffering.max.ms"'
    }
    assert librdkafka_problems("consumer", {"auto.offset.reset": "earliest"}, {}) == {}


@pytest.mark.parametrize(
    ("tasks", "ok"), [("1", True), (str(MAX_TASKS), True), (str(MAX_TASKS + 1), False), ("100000", False)]
)
def test_tasks_max_is_bounded(tmp_path: Path, tasks: str, ok: bool) -> None:
    problems = _problems(tmp_path, {"tasks.max": tasks})
    assert (problems == []) is ok
    if not ok:
        assert problems[0].key == "tasks.max"


def _broad_and_narrow_routes(tmp_path: Path, order: str) -> Path:
    """Route ``all`` (``plants/#``) and route ``one`` (a narrower pattern), listed in ``order``."""
    return _write(
        tmp_path,
        {
            "routes": order,
            "routes.all.mqtt.topic": "plants/#",
            "routes.all.kafka.topic": "everything",
            "routes.one.mqtt.topic": "plants/{plant}/devices/{device}",
            "routes.one.kafka.topic": "devices",
            "routes.r.mqtt.topic": None,
            "routes.r.kafka.topic": None,
        },
    )


def test_a_route_hidden_behind_an_earlier_route_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _broad_and_narrow_routes(tmp_path, "all,one")
    assert main(["validate", str(path)]) == 0  # valid, but not what was meant
    captured = capsys.readouterr()
    assert "1 file(s) OK, 1 warning(s)" in captured.out
    assert "warning:" in captured.err and "routes.one.mqtt.topic" in captured.err
    assert "route 'one' can never match" in captured.err and "'all'" in captured.err


def test_a_narrower_route_listed_first_is_no_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _broad_and_narrow_routes(tmp_path, "one,all")
    assert main(["validate", str(path)]) == 0
    assert "warning" not in capsys.readouterr().err

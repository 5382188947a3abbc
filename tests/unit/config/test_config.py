"""Config loading: every kind of problem, reported all at once, and both file formats alike."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from mqtt_kafka_sync.config.loader import check_files, load_connector, load_connectors
from mqtt_kafka_sync.config.model import (
    MQTT_SESSION_EXPIRY_S,
    SOURCE_CONNECTOR_CLASS,
    KafkaConnection,
    MqttConnection,
    MqttServer,
    RouteConfig,
    Secret,
    SourceConnectorConfig,
)
from mqtt_kafka_sync.errors import ConfigError, ConfigProblem
from tests.unit.config.files import SOURCE_KEYS, load_source, write_properties

REPO = Path(__file__).resolve().parents[3]

BASE = {
    **SOURCE_KEYS,
    "routes": "r",
    "routes.r.mqtt.topic": "plants/{plant}/#",
    "routes.r.kafka.topic": "plant-{plant}",
}


def _write(tmp_path: Path, changes: Mapping[str, str | None], name: str = "c.properties") -> Path:
    """BASE with ``changes`` applied (None removes a key), as a .properties file."""
    return write_properties(tmp_path / name, BASE, changes)


def _problems(
    tmp_path: Path, changes: Mapping[str, str | None], env: dict[str, str] | None = None
) -> list[ConfigProblem]:
    return check_files([_write(tmp_path, changes)], env or {})


def _load(
    tmp_path: Path, changes: Mapping[str, str | None], env: dict[str, str] | None = None
) -> SourceConnectorConfig:
    return load_source(_write(tmp_path, changes), env)


def test_defaults(tmp_path: Path) -> None:
    config = _load(tmp_path, {})
    assert config == SourceConnectorConfig(
        name="plant-feed",
        source=str(tmp_path / "c.properties"),
        tasks_max=1,
        mqtt=MqttConnection(
            MqttServer("tcp", "127.0.0.1", 1883), "plant-feed", session_expiry_seconds=MQTT_SESSION_EXPIRY_S
        ),
        mqtt_shared_group="mks",
        mqtt_qos=1,
        mqtt_topics=("plants/+/#",),
        routes=(RouteConfig("r", "plants/{plant}/#", "plant-{plant}", None, "bytes"),),
        kafka=KafkaConnection("127.0.0.1:9092"),
        dlq_topic="plant-feed-dlq",
    )


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("name", "plant feed", "may only contain letters, digits"),
        ("connector.class", "com.example.Other", "'com.example.Other' is not a connector"),
        ("tasks.max", "0", "0 is out of range"),
        ("tasks.max", "two", "'two' is not a whole number"),
        ("tasks.max", "1.5", "is not a whole number"),
        ("mqtt.server.uri", "ssl://broker", "is not ssl://host:port"),
        ("mqtt.server.uri", "ws://broker:80", "scheme 'ws' is not supported"),
        ("mqtt.server.uri", "broker:1883", "is not a URI"),
        ("mqtt.server.uri", "tcp://broker", "is not tcp://host:port"),
        ("mqtt.server.uri", "tcp://broker:70000", "is not tcp://host:port"),
        ("mqtt.server.uri", "tcp://broker:1883/x", "is not tcp://host:port"),
        ("mqtt.server.uri", "tcp://me:pw@broker:1883", "must not hold credentials"),
        ("mqtt.shared.group", "a/b", "'a/b' may only contain"),
        ("mqtt.shared.group", "a+", "may only contain"),
        ("mqtt.shared.group", "#", "may only contain"),
        ("mqtt.qos", "3", "3 is out of range"),
        ("mqtt.qos", "-1", "out of range"),
        ("mqtt.client.id", "my client", "may only contain"),
        ("mqtt.keepalive.interval.seconds", "4", "out of range"),
        ("mqtt.keepalive.interval.seconds", "3601", "out of range"),
        ("mqtt.session.expiry.interval.seconds", "0", "out of range"),
        ("mqtt.session.expiry.interval.seconds", "4294967296", "out of range"),
        ("mqtt.receive.maximum", "0", "out of range"),
        ("mqtt.receive.maximum", "65536", "out of range"),
        ("mqtt.connect.timeout.seconds", "0.5", "out of range"),
        ("mqtt.connect.timeout.seconds", "ten", "'ten' is not a number"),
        ("mqtt.connect.timeout.seconds", "nan", "is not a number"),
        ("mqtt.takeover.enabled", "yes", "'yes' is not true or false"),
        ("mqtt.takeover.delay.seconds", "-1", "out of range"),
        ("mqtt.takeover.delay.seconds", "3601", "out of range"),
        ("mqtt.topics", "plants/#/x", "'#' must be the last level"),
        ("mqtt.topics", "plants/a+", "must be a whole level"),
        ("mqtt.topics", "plants/{plant}/#", "has no placeholders"),
        ("mqtt.topics", "$share/mks/plants/#", "$share"),
        ("mqtt.topics", "plants/#,plants/x", "overlap"),
        ("mqtt.topics", "plants/#,plants/#", "listed twice"),
        ("kafka.bootstrap.servers", "localhost", "'localhost' is not host:port"),
        ("kafka.bootstrap.servers", "a:9092,b:0", "'b:0' is not host:port"),
        ("routes", "r,r", "route 'r' is listed twice"),
        ("routes.r.value.format", "protobuf", "'protobuf' is not allowed"),
        ("routes.r.mqtt.topic", "plants/#/x", "is not a valid pattern: '#' must be the last level"),
        ("routes.r.kafka.topic", "plant-{site}", "{site} is not defined by the pattern 'plants/{plant}/#'"),
        ("routes.r.kafka.topic", "plant {plant}", "Kafka topic names cannot contain ' '"),
        ("routes.r.kafka.topic", "plants/all", "'plants/all' is not a legal Kafka topic name"),
        ("routes.r.kafka.topic", "{plant", "literal brace"),
        ("routes.r.kafka.key", "{device}", "{device} is not defined by the pattern"),
        ("errors.deadletterqueue.topic.name", "dlq/plants", "is not a legal Kafka topic name"),
        ("errors.deadletterqueue.topic.name", "..", "is not a legal Kafka topic name"),
        ("routes.r.kafka.topic", "plant-feed-dlq", "is also a route's topic"),
    ],
)
def test_bad_value(tmp_path: Path, key: str, value: str, expected: str) -> None:
    problems = _problems(tmp_path, {key: value})
    assert len(problems) == 1, problems
    dlq_clash = expected == "is also a route's topic"
    assert problems[0].key == ("errors.deadletterqueue.topic.name" if dlq_clash else key)
    assert expected in problems[0].problem
    assert problems[0].source == str(tmp_path / "c.properties")


@pytest.mark.parametrize(
    ("key", "fix"),
    [
        ("name", "set it, e.g. name=example-telemetry"),
        ("connector.class", f"set it, e.g. connector.class={SOURCE_CONNECTOR_CLASS}"),
        ("mqtt.server.uri", "set it, e.g. mqtt.server.uri=tcp://127.0.0.1:1883"),
        ("mqtt.shared.group", "set it, e.g. mqtt.shared.group=mks"),
        ("kafka.bootstrap.servers", "set it, e.g. kafka.bootstrap.servers=127.0.0.1:9092"),
        ("routes", "set it, e.g. routes=r"),  # names the routes its keys mention
        ("routes.r.mqtt.topic", "set it, e.g. routes.r.mqtt.topic=plants/{plant}/devices/{device}/telemetry"),
        ("routes.r.kafka.topic", "set it, e.g. routes.r.kafka.topic=telemetry"),
    ],
)
def test_missing_required_key(tmp_path: Path, key: str, fix: str) -> None:
    assert _problems(tmp_path, {key: None}) == [
        ConfigProblem(str(tmp_path / "c.properties"), key, "is required", fix)
    ]


def test_empty_value_counts_as_unset(tmp_path: Path) -> None:
    assert _load(tmp_path, {"mqtt.qos": "", "mqtt.username": " "}).mqtt_qos == 1
    [problem] = _problems(tmp_path, {"mqtt.server.uri": ""})
    assert problem.problem == "is required but empty"


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("mqtt.sever.uri", "unknown key 'mqtt.sever.uri' (did you mean 'mqtt.server.uri'?)"),
        ("task.max", "unknown key 'task.max' (did you mean 'tasks.max'?)"),
        ("routes.r.kafka.topc", "unknown key 'routes.r.kafka.topc' (did you mean 'routes.r.kafka.topic'?)"),
        (
            "kafka.produser.linger.ms",
            "unknown key 'kafka.produser.linger.ms' (did you mean 'kafka.producer.linger.ms'?)",
        ),
        (
            "value.converter",
            "unknown key 'value.converter' (did you mean 'value.converter.schema.registry.url'?)",
        ),
        ("routes.other.kafka.topic", "route 'other' is not listed in routes"),
        ("routes.rr.mqtt.topic", "route 'rr' is not listed in routes (did you mean 'r'?)"),
    ],
)
def test_unknown_key(tmp_path: Path, key: str, problem: str) -> None:
    problems = _problems(tmp_path, {key: "x"})
    assert [(p.key, p.problem) for p in problems] == [(key, problem)]


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("kafka.producer.enable.idempotence", "false", "always idempotent"),
        ("kafka.producer.acks", "1", "acks=all"),
        ("kafka.producer.request.required.acks", "1", "acks=all"),
        ("kafka.producer.partitioner", "consistent_random", "murmur2"),
        ("kafka.producer.bootstrap.servers", "b:9092", "set kafka.bootstrap.servers instead"),
        ("kafka.producer.max.in.flight.requests.per.connection", "6", "cannot keep order"),
        ("kafka.producer.max.in.flight", "lots", "cannot keep order"),
        ("kafka.producer.", "x", "names no producer property"),
    ],
)
def test_forbidden_producer_override(tmp_path: Path, key: str, value: str, why: str) -> None:
    [problem] = _problems(tmp_path, {key: value})
    assert problem.key == key
    assert why in problem.problem


def test_producer_overrides_pass_through(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        {"kafka.producer.linger.ms": "20", "kafka.producer.max.in.flight": "5", "kafka.producer.acks": ""},
    )
    assert config.kafka.producer_overrides == {"linger.ms": "20", "max.in.flight": "5"}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, ("plants/+/#",)),
        (  # placeholders become '+', duplicates and covered filters go, route order stays
            {
                "routes": "a,b,c,d",
                "routes.r.mqtt.topic": None,
                "routes.r.kafka.topic": None,
                "routes.a.mqtt.topic": "x/{id}",
                "routes.b.mqtt.topic": "plants/{p}/devices/{d}",
                "routes.c.mqtt.topic": "plants/#",
                "routes.d.mqtt.topic": "x/+",
                **{f"routes.{r}.kafka.topic": "t" for r in "abcd"},
            },
            ("x/+", "plants/#"),
        ),
        ({"mqtt.topics": "plants/#, other/+"}, ("plants/#", "other/+")),
    ],
)
def test_mqtt_topics(tmp_path: Path, changes: Mapping[str, str | None], expected: tuple[str, ...]) -> None:
    assert _load(tmp_path, changes).mqtt_topics == expected


def test_derived_topics_must_not_overlap(tmp_path: Path) -> None:
    changes = {
        "routes": "r,s",
        "routes.s.mqtt.topic": "plants/x/{device}/y",
        "routes.s.kafka.topic": "s",
        "routes.r.mqtt.topic": "plants/{plant}/z/#",
    }
    [problem] = _problems(tmp_path, changes)
    assert (problem.key, problem.fix) == ("mqtt.topics", "set mqtt.topics to broader filters")
    assert "'plants/+/z/#' and 'plants/x/+/y' overlap" in problem.problem


def test_every_route_must_be_reachable_from_mqtt_topics(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path, {"mqtt.topics": "factories/#"})
    assert problem.key == "routes.r.mqtt.topic"
    assert "no filter in mqtt.topics reaches pattern 'plants/{plant}/#'" in problem.problem


def test_derived_defaults_follow_the_name(tmp_path: Path) -> None:
    config = _load(tmp_path, {"name": "feed.2", "mqtt.client.id": "mks-feed"})
    assert (config.mqtt.client_id, config.task_client_id(3), config.dlq_topic) == (
        "mks-feed",
        "mks-feed-3",
        "feed.2-dlq",
    )
    [problem] = _problems(tmp_path, {"name": "n" * 250})
    assert problem.key == "errors.deadletterqueue.topic.name"
    assert problem.problem.startswith("the default ")


# -- providers -------------------------------------------------------------------------------------


def test_env_and_file_providers(tmp_path: Path) -> None:
    (tmp_path / "password.txt").write_text("s3cret\n", encoding="utf-8")
    (tmp_path / "kafka.properties").write_text("# brokers\nbootstrap = k1:9092,k2:9092\n", encoding="utf-8")
    changes = {
        "mqtt.server.uri": "tcp://${env:MQTT_HOST}:1883",
        "mqtt.username": "${env:MQTT_USER}",
        "mqtt.password": "${file:password.txt}",  # relative to the connector file's folder
        "kafka.bootstrap.servers": f"${{file:{tmp_path}/kafka.properties:bootstrap}}",
    }
    config = _load(tmp_path, changes, env={"MQTT_HOST": "broker.local", "MQTT_USER": "bridge"})
    assert config.mqtt.server == MqttServer("tcp", "broker.local", 1883)
    assert config.mqtt.username == "bridge"
    assert isinstance(config.mqtt.password, Secret)
    assert config.mqtt.password.reveal() == "s3cret"
    assert config.kafka.bootstrap_servers == "k1:9092,k2:9092"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("${env:MQTT_PASSWORD}", "environment variable 'MQTT_PASSWORD' is not set"),
        ("${file:/nonexistent/secret}", "cannot read /nonexistent/secret: No such file or directory"),
        ("${file:props.properties:missing}", "props.properties has no key 'missing'"),
        ("${vault:secret/mqtt}", "unknown config provider 'vault' in ${vault:secret/mqtt}"),
        ("${MQTT_PASSWORD}", "malformed reference ${MQTT_PASSWORD}"),
        ("${env:}", "malformed reference ${env:}"),
    ],
)
def test_provider_problems_name_the_key(tmp_path: Path, value: str, problem: str) -> None:
    (tmp_path / "props.properties").write_text("present=1\n", encoding="utf-8")
    [found] = _problems(tmp_path, {"mqtt.server.uri": value}, env={"OTHER": "x"})
    assert found.key == "mqtt.server.uri"  # and no second "is required" problem
    assert problem in found.problem


# -- file formats ----------------------------------------------------------------------------------


def test_example_files_json_and_properties_are_the_same_connector() -> None:
    from_json = load_connector(REPO / "connectors/example-telemetry.json", {})
    from_properties = load_connector(REPO / "connectors/example-telemetry.properties", {})
    assert dataclasses.replace(from_json, source="") == dataclasses.replace(from_properties, source="")
    assert isinstance(from_json, SourceConnectorConfig)
    assert from_json.name == "example-telemetry"
    assert from_json.mqtt_topics == (
        "plants/+/devices/+/telemetry",
        "plants/+/devices/+/status",
    )  # from the routes
    assert from_json.dlq_topic == "example-telemetry-dlq"
    assert [r.name for r in from_json.routes] == ["telemetry", "status"]


def test_json_values_are_coerced_like_properties_text(tmp_path: Path) -> None:
    config: dict[str, object] = {k: v for k, v in BASE.items() if k != "name"}
    config |= {"tasks.max": 3, "mqtt.takeover.enabled": False, "mqtt.connect.timeout.seconds": 2.5}
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"name": "plant-feed", "config": config}), encoding="utf-8")
    properties = _write(
        tmp_path, {"tasks.max": "3", "mqtt.takeover.enabled": "false", "mqtt.connect.timeout.seconds": "2.5"}
    )
    from_json, from_properties = load_connector(path, {}), load_connector(properties, {})
    assert dataclasses.replace(from_json, source="") == dataclasses.replace(from_properties, source="")
    assert isinstance(from_json, SourceConnectorConfig)
    assert (from_json.tasks_max, from_json.mqtt_takeover_enabled) == (3, False)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            '{"name": "a",\n "config": {,}}',
            "(file)",
            "not valid JSON: Expecting property name enclosed in double quotes at line 2 column 13",
        ),
        ('["a"]', "(file)", "expected an object with a config object"),
        ('{"name": "a", "config": "x"}', "(file)", "expected an object with a config object"),
        ('{"name": "a", "tasks": [], "config": {}}', "tasks", "unknown top-level key"),
        ('{"name": "a", "config": {"name": "b"}}', "name", "differs from the name inside config"),
        ('{"name": "a", "config": {"mqtt.qos": null}}', "mqtt.qos", "is null"),
        (
            '{"name": "a", "config": {"mqtt.topics": ["a", "b"]}}',
            "mqtt.topics",
            "must be a string, number or boolean",
        ),
        ('{"name": "a", "config": {"mqtt.qos": 1, "mqtt.qos": 2}}', "mqtt.qos", "is set twice"),
    ],
)
def test_json_structure_problems(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text, encoding="utf-8")
    found = [p for p in check_files([path], {}) if p.key == key]
    assert len(found) == 1, check_files([path], {})
    assert problem in found[0].problem


def test_properties_syntax(tmp_path: Path) -> None:
    text = (
        "! a comment\n"
        "name : plant-feed\n"
        "connector.class   mqtt_kafka_sync.MqttSourceConnector\n"
        "mqtt.server.uri=tcp://127.0.0.1:\\\n"
        "    1883\n"
        "mqtt.shared.group=mks\n"
        "kafka.bootstrap.servers=127.0.0.1:9092\n"
        "routes=r\n"
        "routes.r.mqtt.topic=plants/{plant}/#\n"
        "routes.r.kafka.topic=plant-{plant}\n"
        "routes.r.kafka.key=\\u00fc-{plant}\\\\\n"
        "mqtt.password=p\\=w\\#1 \n"
    )
    path = tmp_path / "c.properties"
    path.write_text(text, encoding="utf-8")
    config = load_connector(path, {})
    assert config.mqtt.server.port == 1883
    assert config.routes[0].kafka_key == "\u00fc-{plant}\\"
    assert config.mqtt.password is not None
    assert config.mqtt.password.reveal() == "p=w#1 "  # secrets keep their blanks


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("mqtt.qos=1\nmqtt.qos=2\n", "mqtt.qos", "is set twice (lines 1 and 2)"),
        ("routes.r.kafka.key=\\u12\n", "(file)", "line 1: malformed \\uXXXX escape"),
    ],
)
def test_properties_problems(tmp_path: Path, text: str, key: str, problem: str) -> None:
    path = tmp_path / "c.properties"
    path.write_text(text, encoding="utf-8")
    assert problem in next(p.problem for p in check_files([path], {}) if p.key == key)


@pytest.mark.parametrize(
    ("name", "problem"),
    [("c.yaml", "unknown file format"), ("missing.json", "cannot read: No such file or directory")],
)
def test_unreadable_files(tmp_path: Path, name: str, problem: str) -> None:
    (tmp_path / "c.yaml").write_text("name: x\n", encoding="utf-8")
    assert [(p.key, p.problem) for p in check_files([tmp_path / name], {})] == [("(file)", problem)]


# -- everything at once, and secrets ----------------------------------------------------------------


def test_every_problem_in_every_file_is_reported_at_once(tmp_path: Path) -> None:
    first = _write(
        tmp_path, {"mqtt.qos": "5", "mqtt.sever.uri": "x", "routes.r.kafka.topic": None}, "a.properties"
    )
    second = _write(tmp_path, {"tasks.max": "0"}, "b.properties")  # same name as the first
    broken = tmp_path / "c.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_connectors([first, broken, second], {})
    found = {(Path(p.source).name, p.key) for p in caught.value.problems}
    assert found == {
        ("a.properties", "mqtt.qos"),
        ("a.properties", "mqtt.sever.uri"),
        ("a.properties", "routes.r.kafka.topic"),
        ("c.json", "(file)"),
        ("b.properties", "tasks.max"),
        ("b.properties", "name"),
    }
    assert "'plant-feed' is also the name in" in str(caught.value)


def test_secret_is_never_printed(tmp_path: Path) -> None:
    config = _load(tmp_path, {"mqtt.password": "${env:PW}"}, env={"PW": "hunter2-secret"})
    assert "hunter2-secret" not in repr(config)
    assert "hunter2-secret" not in str(config)
    assert "hunter2-secret" not in f"{config.mqtt.password}"
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, {"mqtt.password": "${env:PW}", "mqtt.qos": "9"}, env={"PW": "hunter2-secret"})
    assert "hunter2-secret" not in str(caught.value)

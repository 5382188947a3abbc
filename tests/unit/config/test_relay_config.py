"""Relay connector config: defaults, every problem reported with its key, the generated reference."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from mqtt_kafka_sync import KafkaCommandRelayConnector
from mqtt_kafka_sync.config import spec
from mqtt_kafka_sync.config.loader import check_files, load_connector, load_connectors
from mqtt_kafka_sync.config.model import (
    RELAY_MQTT_SESSION_EXPIRY_S,
    KafkaConnection,
    MqttConnection,
    MqttServer,
    RelayConnectorConfig,
    RelayRouteConfig,
    SourceConnectorConfig,
)
from mqtt_kafka_sync.config.reference import render_reference
from mqtt_kafka_sync.kafka.consumer import consumer_config
from tests.unit.config.files import RELAY_KEYS, write_properties

REPO = Path(__file__).resolve().parents[3]

BASE = {
    **RELAY_KEYS,
    "routes": "cmd",
    "routes.cmd.kafka.topic": "commands",
    "routes.cmd.kafka.key": "{plant}.{device}",
    "routes.cmd.mqtt.topic": "plants/{plant}/devices/{device}/commands",
}


def _write(tmp_path: Path, changes: Mapping[str, str | None]) -> Path:
    return write_properties(tmp_path / "relay.properties", BASE, changes)


def _problems(tmp_path: Path, changes: Mapping[str, str | None]) -> dict[str, str]:
    return {p.key: f"{p.problem} ({p.fix})" for p in check_files([_write(tmp_path, changes)], {})}


def test_the_package_names_the_connector_class() -> None:
    assert KafkaCommandRelayConnector == "mqtt_kafka_sync.KafkaCommandRelayConnector"


def test_defaults(tmp_path: Path) -> None:
    config = load_connector(_write(tmp_path, {}), {})
    assert config == RelayConnectorConfig(
        name="plant-commands",
        source=str(tmp_path / "relay.properties"),
        tasks_max=1,
        mqtt=MqttConnection(
            MqttServer("tcp", "127.0.0.1", 1883),
            "plant-commands",
            session_expiry_seconds=RELAY_MQTT_SESSION_EXPIRY_S,
        ),
        routes=(
            RelayRouteConfig(
                name="cmd",
                kafka_topic="commands",
                kafka_key="{plant}.{device}",
                mqtt_topic="plants/{plant}/devices/{device}/commands",
            ),
        ),
        kafka=KafkaConnection("127.0.0.1:9092"),
        kafka_group_id="plant-commands",
        dlq_topic="plant-commands-dlq",
    )


def test_every_route_key(tmp_path: Path) -> None:
    config = load_connector(
        _write(
            tmp_path,
            {
                "routes": "cmd,all",
                "routes.cmd.mqtt.qos": "2",
                "routes.cmd.mqtt.retain": "true",
                "routes.cmd.mqtt.message.expiry.seconds": "300",
                "routes.cmd.mqtt.response.topic": "plants/{plant}/devices/{device}/commands/response",
                "routes.cmd.mqtt.correlation.header": "correlation-id",
                "routes.all.kafka.topic": "^site-.*-commands",
                "routes.all.mqtt.topic": "broadcast/{key}/{header.zone}",
                "kafka.consumer.session.timeout.ms": "10000",
                "kafka.producer.linger.ms": "20",
                "kafka.group.id": "relays",
            },
        ),
        {},
    )
    assert isinstance(config, RelayConnectorConfig)
    cmd, every = config.routes
    assert (cmd.mqtt_qos, cmd.mqtt_retain, cmd.message_expiry_seconds) == (2, True, 300)
    assert cmd.correlation_header == "correlation-id"
    assert every.kafka_key == "{key}" and every.kafka_topic == "^site-.*-commands"
    assert config.kafka_topics() == ("commands", "^site-.*-commands")
    assert config.kafka.consumer_overrides == {"session.timeout.ms": "10000"}
    assert config.kafka.producer_overrides == {"linger.ms": "20"}
    settings = consumer_config(config, "relay-0")
    assert settings["group.id"] == "relays" and settings["session.timeout.ms"] == "10000"
    assert settings["enable.auto.offset.store"] == "false"
    assert settings["partition.assignment.strategy"] == "cooperative-sticky"


@pytest.mark.parametrize(
    ("changes", "key", "expected"),
    [
        ({"routes.cmd.kafka.key": "{plant}{device}"}, "routes.cmd.kafka.key", "literal text between"),
        ({"routes.cmd.mqtt.topic": "plants/+/{device}"}, "routes.cmd.mqtt.topic", "wildcard"),
        ({"routes.cmd.mqtt.topic": "plants/{site}"}, "routes.cmd.mqtt.topic", "not a placeholder"),
        ({"routes.cmd.mqtt.response.topic": "r/#"}, "routes.cmd.mqtt.response.topic", "wildcard"),
        ({"routes.cmd.mqtt.qos": "0"}, "routes.cmd.mqtt.qos", "out of range"),
        ({"routes.cmd.mqtt.message.expiry.seconds": "0"}, "routes.cmd.mqtt.message.expiry.seconds", "range"),
        ({"routes.cmd.kafka.topic": "^(unclosed"}, "routes.cmd.kafka.topic", "regular expression"),
        ({"routes.cmd.kafka.topic": "bad topic"}, "routes.cmd.kafka.topic", "legal Kafka topic"),
        ({"routes.cmd.mqtt.topic": None}, "routes.cmd.mqtt.topic", "is required"),
        (
            {"errors.deadletterqueue.topic.name": "commands"},
            "errors.deadletterqueue.topic.name",
            "read again",
        ),
        (
            {"kafka.consumer.enable.auto.offset.store": "true"},
            "kafka.consumer.enable.auto.offset.store",
            "MQTT",
        ),
        ({"kafka.consumer.group.id": "x"}, "kafka.consumer.group.id", "kafka.group.id"),
        (
            {"kafka.consumer.partition.assignment.strategy": "range"},
            "kafka.consumer.partition.assignment.strategy",
            "cooperative",
        ),
        ({"kafka.producer.acks": "1"}, "kafka.producer.acks", "acks=all"),
        ({"mqtt.shared.group": "g"}, "mqtt.shared.group", "unknown key"),
        ({"kafka.consumr.x": "1"}, "kafka.consumr.x", "kafka.consumer.x"),
        ({"routes.other.mqtt.qos": "1"}, "routes.other.mqtt.qos", "not listed in routes"),
        ({"mqtt.max.inflight.messages": "0"}, "mqtt.max.inflight.messages", "out of range"),
    ],
)
def test_problems_name_the_key(
    tmp_path: Path, changes: Mapping[str, str | None], key: str, expected: str
) -> None:
    problems = _problems(tmp_path, changes)
    assert key in problems, problems
    assert expected in problems[key]


def test_relay_and_source_connectors_load_together() -> None:
    configs = load_connectors(
        [
            REPO / "connectors" / "example-commands.json",
            REPO / "connectors" / "example-command-responses.json",
        ],
        {},
    )
    relay, responses = configs
    assert isinstance(relay, RelayConnectorConfig) and isinstance(responses, SourceConnectorConfig)
    route = relay.routes[0]
    assert route.response_topic is not None
    assert responses.routes[0].mqtt_topic == route.response_topic  # the answers come back through ingest


def test_reference_documents_every_relay_key() -> None:
    text = render_reference()
    relay = text[text.index("## Command relay") :]
    keys = [k.key for k in spec.RELAY_KEYS] + [k.key for k in spec.RELAY_ROUTE_KEYS.values()]
    missing = [k for k in keys if f"### `{k}`" not in relay]
    assert not missing
    for key in [*spec.RELAY_KEYS, *spec.RELAY_ROUTE_KEYS.values()]:
        assert key.description and key.example
        key.parse(key.example)
        if key.default is not None:
            key.parse(key.default)


def test_json_relay_file(tmp_path: Path) -> None:
    path = tmp_path / "relay.json"
    config = {k: v for k, v in BASE.items() if k != "name"} | {"routes.cmd.mqtt.qos": 2}
    path.write_text(json.dumps({"name": "plant-commands", "config": config}))
    loaded = load_connector(path, {})
    assert isinstance(loaded, RelayConnectorConfig) and loaded.routes[0].mqtt_qos == 2

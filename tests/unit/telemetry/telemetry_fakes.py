"""Connector configs for the telemetry tests: one ingest connector (route ``t``), one relay."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from mqtt_kafka_sync.config.loader import load_connector
from mqtt_kafka_sync.config.model import RelayConnectorConfig, SourceConnectorConfig

SOURCE = {
    "connector.class": "mqtt_kafka_sync.MqttSourceConnector",
    "mqtt.server.uri": "tcp://127.0.0.1:1883",
    "mqtt.shared.group": "g",
    "kafka.bootstrap.servers": "127.0.0.1:9092",
    "routes": "t",
    "routes.t.mqtt.topic": "plants/{plant}/devices/{device}/telemetry",
    "routes.t.kafka.topic": "telemetry",
    "routes.t.kafka.key": "{plant}.{device}",
    "errors.deadletterqueue.topic.name": "dlq",
}
THROTTLE = {
    "throttle.lag.groups": "downstream",
    "throttle.lag.high": "1000",
    "throttle.rate.min": "10",
}
RELAY = {
    "connector.class": "mqtt_kafka_sync.KafkaCommandRelayConnector",
    "mqtt.server.uri": "tcp://127.0.0.1:1883",
    "kafka.bootstrap.servers": "127.0.0.1:9092",
    "kafka.group.id": "commands-relay",
    "routes": "cmd",
    "routes.cmd.kafka.topic": "commands",
    "routes.cmd.kafka.key": "{plant}.{device}",
    "routes.cmd.mqtt.topic": "plants/{plant}/devices/{device}/commands",
    "errors.deadletterqueue.topic.name": "commands-dlq",
}


def _load(name: str, settings: dict[str, str]) -> object:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.json"
        path.write_text(json.dumps({"name": name, "config": settings}))
        return load_connector(path, {})


def source_config(*, throttled: bool = False) -> SourceConnectorConfig:
    config = _load("src", {**SOURCE, **(THROTTLE if throttled else {})})
    assert isinstance(config, SourceConnectorConfig)
    return config


def relay_config() -> RelayConnectorConfig:
    config = _load("relay", RELAY)
    assert isinstance(config, RelayConnectorConfig)
    return config

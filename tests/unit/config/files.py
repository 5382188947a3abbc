"""Connector files for the config tests: the keys every file of a connector needs, and writing them.

Each test module adds its routes to :data:`SOURCE_KEYS` or :data:`RELAY_KEYS` and writes its
variations with :func:`write_properties`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mqtt_kafka_sync.config.loader import load_connector
from mqtt_kafka_sync.config.model import RELAY_CONNECTOR_CLASS, SOURCE_CONNECTOR_CLASS, SourceConnectorConfig

SOURCE_KEYS = {
    "name": "plant-feed",
    "connector.class": SOURCE_CONNECTOR_CLASS,
    "mqtt.server.uri": "tcp://127.0.0.1:1883",
    "mqtt.shared.group": "mks",
    "kafka.bootstrap.servers": "127.0.0.1:9092",
}
"""A source connector's required keys, routes aside."""

RELAY_KEYS = {
    "name": "plant-commands",
    "connector.class": RELAY_CONNECTOR_CLASS,
    "mqtt.server.uri": "tcp://127.0.0.1:1883",
    "kafka.bootstrap.servers": "127.0.0.1:9092",
}
"""A relay connector's required keys, routes aside."""


def write_properties(
    path: Path, base: Mapping[str, str], changes: Mapping[str, str | None] | None = None
) -> Path:
    """``base`` with ``changes`` applied (None removes a key), as a UTF-8 .properties file at ``path``."""
    keys = {k: v for k, v in {**base, **(changes or {})}.items() if v is not None}
    path.write_text("".join(f"{k}={v}\n" for k, v in keys.items()), encoding="utf-8")
    return path


def load_source(path: Path, env: Mapping[str, str] | None = None) -> SourceConnectorConfig:
    """The source connector ``path`` describes (failing the test when it is not one)."""
    config = load_connector(path, env or {})
    assert isinstance(config, SourceConnectorConfig)
    return config

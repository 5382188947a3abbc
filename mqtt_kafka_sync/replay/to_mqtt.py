"""``replay --to-mqtt CONNECTOR_FILE``: the command relay connector a replay publishes through,
loaded, checked and described before anything is sent.

The file is loaded with the project's config loader, so a bad one is refused with every problem,
its key and its fix, and it must be a command relay connector. From it the replay takes the route
that reads the source topic (the first in ``routes`` order, as the relay chooses), the broker,
credentials and in-flight limit (``mqtt.*``), the dead-letter topic, and the Kafka of the source
and dead-letter topics (``kafka.bootstrap.servers``, unless ``--bootstrap`` names another).
"""

from __future__ import annotations

import os
from pathlib import Path

from mqtt_kafka_sync.config.loader import load_connector
from mqtt_kafka_sync.config.model import (
    RELAY_CONNECTOR_CLASS,
    SOURCE_CONNECTOR_CLASS,
    RelayConnectorConfig,
    RelayRouteConfig,
)
from mqtt_kafka_sync.errors import ConfigError, ConfigProblem
from mqtt_kafka_sync.relay.routes import CommandRouter
from mqtt_kafka_sync.replay.exceptions import ReplayError
from mqtt_kafka_sync.replay.mqtt_target import ExpiryFrom, MqttTargetStats


def load_relay_connector(path: Path) -> RelayConnectorConfig:
    """The relay connector in ``path``; raises :class:`ConfigError`."""
    config = load_connector(path, os.environ)
    if not isinstance(config, RelayConnectorConfig):
        problem = f"is {SOURCE_CONNECTOR_CLASS} (MQTT -> Kafka); --to-mqtt needs a command relay connector"
        fix = (
            f"use a file with connector.class={RELAY_CONNECTOR_CLASS}, e.g. connectors/example-commands.json"
        )
        raise ConfigError([ConfigProblem(str(path), "connector.class", problem, fix)])
    return config


def source_route(config: RelayConnectorConfig, source: str) -> RelayRouteConfig:
    """The route the relay would use for records of ``source``; raises :class:`ReplayError`."""
    name = CommandRouter(config.routes).route_name(source)
    route = next((r for r in config.routes if r.name == name), None)
    if route is None:
        reads = "; ".join(f"{r.name} reads {r.kafka_topic}" for r in config.routes)
        raise ReplayError(
            f"no route of {config.name} ({config.source}) reads topic {source} ({reads}): "
            "replay a topic one of its routes reads"
        )
    return route


def describe(config: RelayConnectorConfig, route: RelayRouteConfig, expiry_from: ExpiryFrom) -> list[str]:
    """The plan's lines about where the records go."""
    retain = ", retained" if route.mqtt_retain else ""
    lines = [
        f"  route {route.name}: key {route.kafka_key} -> {route.mqtt_topic}, QoS {route.mqtt_qos}{retain}",
        f"  broker {config.mqtt.server.uri} as {config.mqtt.client_id}-replay-<random>; at most "
        f"{config.mqtt_max_inflight:,} in flight, fewer if the broker's Receive Maximum is lower",
    ]
    lifetime = route.message_expiry_seconds
    if lifetime is not None and expiry_from == "written":
        lines.append(
            f"  expiry: {lifetime:,}s from each record's Kafka timestamp, as the relay does: older records "
            "are dead-lettered as expired (--expiry-from replayed counts from publishing)"
        )
    elif lifetime is not None:
        lines.append(f"  expiry: {lifetime:,}s from publishing each command (--expiry-from replayed)")
    lines.append(f"  dead letters (records the relay would not publish): {config.dlq_topic}")
    return lines


def dead_letter_summary(stats: MqttTargetStats, topic: str) -> str:
    """``N dead-lettered to <topic>: <reason> <n>, ...``, for the end of a run."""
    reasons = ", ".join(f"{reason} {count:,}" for reason, count in sorted(stats.dlq_by_reason.items()))
    return f"{stats.dead_lettered:,} dead-lettered to {topic}: {reasons}"

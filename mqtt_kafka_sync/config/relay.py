"""Build a :class:`RelayConnectorConfig` from one file's flat keys, or list everything wrong with it.

The command relay's counterpart of :mod:`mqtt_kafka_sync.config.source`; what both build alike (the
connections, the ``kafka.producer.*`` rules: the relay's dead-letter producer is the same idempotent
producer) is in :mod:`mqtt_kafka_sync.config.connector`.
"""

from __future__ import annotations

from collections.abc import Mapping

from mqtt_kafka_sync.config import spec
from mqtt_kafka_sync.config.connector import (
    client_properties,
    connector_values,
    dead_letter_topic,
    kafka_connection,
    mqtt_connection,
)
from mqtt_kafka_sync.config.keycheck import Problems, check_keys, route_of
from mqtt_kafka_sync.config.model import RelayConnectorConfig, RelayRouteConfig
from mqtt_kafka_sync.errors import ConfigProblem
from mqtt_kafka_sync.routing.command_topic import CommandTopicError, compile_command_topic
from mqtt_kafka_sync.routing.key_template import KeyTemplateError, compile_key_template


def build_relay_connector(
    raw: Mapping[str, str], source: str
) -> tuple[RelayConnectorConfig | None, list[ConfigProblem]]:
    """The config, or None and every problem found."""
    problems = Problems(source)
    values, listed = connector_values(raw, problems, spec.RELAY_KEYS, spec.RELAY_ROUTES_KEY, _route_of)
    built = [_route(route, raw, problems) for route in dict.fromkeys(listed)]
    routes = [r for r in built if r is not None]
    clients = client_properties(raw, problems, spec.RELAY_KEYS, consumer=True)
    check_keys(
        raw,
        keys=spec.RELAY_KEYS,
        route_keys=spec.RELAY_ROUTE_KEYS,
        listed=listed if values["routes"] else None,
        routes=_route_of,
        client_prefixes=(spec.CONSUMER_PREFIX, spec.PRODUCER_PREFIX),
        problems=problems,
    )
    dlq = dead_letter_topic(
        values,
        {r.kafka_topic for r in routes},
        problems,
        why_not_a_route_topic=": dead-lettered records would be read again",
    )
    name: str | None = values["name"]
    if problems or name is None:
        return None, list(problems)
    config = RelayConnectorConfig(
        name=name,
        source=source,
        tasks_max=values["tasks.max"],
        mqtt=mqtt_connection(values, name),
        routes=tuple(routes),
        kafka=kafka_connection(values, clients),
        kafka_group_id=values["kafka.group.id"] or name,
        dlq_topic=dlq or "",
        mqtt_max_inflight=values["mqtt.max.inflight.messages"],
        mqtt_publish_max_attempts=values["mqtt.publish.max.attempts"],
    )
    return config, []


def _route(name: str, raw: Mapping[str, str], problems: Problems) -> RelayRouteConfig | None:
    got = {sfx: problems.value(s, raw, f"routes.{name}.{sfx}") for sfx, s in spec.RELAY_ROUTE_KEYS.items()}
    ok = all(got[sfx] is not None for sfx in ("kafka.topic", "kafka.key", "mqtt.topic", "mqtt.qos"))
    key_names: tuple[str, ...] = ()
    if got["kafka.key"] is not None:
        try:
            key_names = compile_key_template(got["kafka.key"]).names
        except KeyTemplateError as exc:
            problems.add(f"routes.{name}.kafka.key", str(exc), "e.g. {plant}.{device}")
            ok = False
    for suffix in ("mqtt.topic", "mqtt.response.topic"):
        if got[suffix] is None or got["kafka.key"] is None:
            continue
        try:
            compile_command_topic(got[suffix], key_names)
        except CommandTopicError as exc:
            problems.add(f"routes.{name}.{suffix}", str(exc), "e.g. plants/{plant}/devices/{device}/commands")
            ok = False
    if not ok:
        return None
    return RelayRouteConfig(
        name=name,
        kafka_topic=got["kafka.topic"],
        kafka_key=got["kafka.key"],
        mqtt_topic=got["mqtt.topic"],
        mqtt_qos=got["mqtt.qos"],
        mqtt_retain=got["mqtt.retain"],
        message_expiry_seconds=got["mqtt.message.expiry.seconds"],
        response_topic=got["mqtt.response.topic"],
        correlation_header=got["mqtt.correlation.header"],
    )


def _route_of(key: str) -> str | None:
    return route_of(key, spec.RELAY_ROUTE_KEYS)

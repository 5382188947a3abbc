"""Build a :class:`RelayConnectorConfig` from one file's flat keys, or list everything wrong with it.

The command relay's counterpart of :mod:`mqtt_kafka_sync.config.source`; it shares that module's
problem collector and the ``kafka.producer.*`` rules (the relay's dead-letter producer is the same
idempotent producer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from mqtt_kafka_sync.config import spec
from mqtt_kafka_sync.config.keycheck import Problems, check_keys, client_overrides, route_of
from mqtt_kafka_sync.config.model import RelayConnectorConfig, RelayRouteConfig
from mqtt_kafka_sync.config.source import producer_overrides
from mqtt_kafka_sync.errors import ConfigProblem
from mqtt_kafka_sync.routing.command_topic import CommandTopicError, compile_command_topic
from mqtt_kafka_sync.routing.key_template import KeyTemplateError, compile_key_template
from mqtt_kafka_sync.routing.router import kafka_topic_problem


def build_relay_connector(
    raw: Mapping[str, str], source: str
) -> tuple[RelayConnectorConfig | None, list[ConfigProblem]]:
    """The config, or None and every problem found."""
    problems = Problems(source)
    mentioned = ",".join(dict.fromkeys(r for k in raw if (r := _route_of(k)) is not None))
    routes_key = replace(spec.RELAY_ROUTES_KEY, example=mentioned or spec.RELAY_ROUTES_KEY.example)
    values = {
        s.key: problems.value(routes_key if s is spec.RELAY_ROUTES_KEY else s, raw) for s in spec.RELAY_KEYS
    }
    listed: tuple[str, ...] = values["routes"] or ()
    for twice in dict.fromkeys(n for n in listed if listed.count(n) > 1):
        problems.add("routes", f"route {twice!r} is listed twice", "list each route once")
    built = [_route(route, raw, problems) for route in dict.fromkeys(listed)]
    routes = [r for r in built if r is not None]
    consumer = _consumer_overrides(raw, problems)
    producer = producer_overrides(raw, problems)
    _check_keys(raw, listed if values["routes"] else None, problems)
    name: str | None = values["name"]
    dlq: str | None = values["errors.deadletterqueue.topic.name"]
    if dlq is None and name is not None:
        dlq = f"{name}-dlq"
        if problem := kafka_topic_problem(dlq):
            problems.add(
                "errors.deadletterqueue.topic.name", f"the default {problem}", "set it, or shorten name"
            )
    if dlq is not None and any(r.kafka_topic == dlq for r in routes):
        problems.add(
            "errors.deadletterqueue.topic.name",
            f"{dlq!r} is also a route's topic: dead-lettered records would be read again",
            "use its own topic",
        )
    if problems or name is None:
        return None, list(problems)
    config = RelayConnectorConfig(
        name=name,
        source=source,
        tasks_max=values["tasks.max"],
        mqtt_server=values["mqtt.server.uri"],
        mqtt_client_id=values["mqtt.client.id"] or name,
        routes=tuple(routes),
        kafka_bootstrap_servers=values["kafka.bootstrap.servers"],
        kafka_group_id=values["kafka.group.id"] or name,
        dlq_topic=dlq or "",
        mqtt_username=values["mqtt.username"],
        mqtt_password=values["mqtt.password"],
        mqtt_keepalive_seconds=values["mqtt.keepalive.interval.seconds"],
        mqtt_session_expiry_seconds=values["mqtt.session.expiry.interval.seconds"],
        mqtt_connect_timeout_seconds=values["mqtt.connect.timeout.seconds"],
        mqtt_max_inflight=values["mqtt.max.inflight.messages"],
        mqtt_publish_max_attempts=values["mqtt.publish.max.attempts"],
        kafka_consumer_overrides=consumer,
        kafka_producer_overrides=producer,
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


def _consumer_overrides(raw: Mapping[str, str], problems: Problems) -> dict[str, str]:
    return client_overrides(
        raw,
        spec.CONSUMER_PREFIX,
        spec.CONSUMER_FORBIDDEN,
        problems,
        example="kafka.consumer.session.timeout.ms=10000",
    )


def _check_keys(raw: Mapping[str, str], listed: tuple[str, ...] | None, problems: Problems) -> None:
    known = [s.key for s in spec.RELAY_KEYS]
    known += [f"routes.{n}.{sfx}" for n in listed or () for sfx in spec.RELAY_ROUTE_KEYS]
    check_keys(
        raw,
        known=known,
        listed=listed,
        routes=_route_of,
        client_prefixes=(spec.CONSUMER_PREFIX, spec.PRODUCER_PREFIX),
        problems=problems,
    )


def _route_of(key: str) -> str | None:
    return route_of(key, spec.RELAY_ROUTE_KEYS)

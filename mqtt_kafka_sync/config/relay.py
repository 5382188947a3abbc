"""Build a :class:`RelayConnectorConfig` from one file's flat keys, or list everything wrong with it.

The command relay's counterpart of :mod:`mqtt_kafka_sync.config.source`; it shares that module's
problem collector and the ``kafka.producer.*`` rules (the relay's dead-letter producer is the same
idempotent producer).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import replace

from mqtt_kafka_sync.config import spec
from mqtt_kafka_sync.config.model import RelayConnectorConfig, RelayRouteConfig
from mqtt_kafka_sync.config.source import _nearest, _Problems, _producer_overrides
from mqtt_kafka_sync.errors import ConfigProblem
from mqtt_kafka_sync.routing.command_topic import CommandTopicError, compile_command_topic
from mqtt_kafka_sync.routing.key_template import KeyTemplateError, compile_key_template
from mqtt_kafka_sync.routing.router import kafka_topic_problem

_DOCS = "see docs/config-reference.md for every key"


def build_relay_connector(
    raw: Mapping[str, str], source: str
) -> tuple[RelayConnectorConfig | None, list[ConfigProblem]]:
    """The config, or None and every problem found."""
    problems = _Problems(source)
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
    producer = _producer_overrides(raw, problems)
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
        kafka_consumer_overrides=consumer,
        kafka_producer_overrides=producer,
    )
    return config, []


def _route(name: str, raw: Mapping[str, str], problems: _Problems) -> RelayRouteConfig | None:
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


def _consumer_overrides(raw: Mapping[str, str], problems: _Problems) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for key, text in raw.items():
        prop = key.removeprefix(spec.CONSUMER_PREFIX)
        if prop == key or not text.strip():
            continue
        if prop in spec.CONSUMER_FORBIDDEN:
            problems.add(key, f"{prop} cannot be set: {spec.CONSUMER_FORBIDDEN[prop]}", f"remove {key}")
        elif not prop:
            problems.add(key, "names no consumer property", "e.g. kafka.consumer.session.timeout.ms=10000")
        else:
            overrides[prop] = text.strip()
    return overrides


def _check_keys(raw: Mapping[str, str], listed: tuple[str, ...] | None, problems: _Problems) -> None:
    """Unknown keys (with the closest known key) and route keys for routes not listed in ``routes``."""
    known = [s.key for s in spec.RELAY_KEYS]
    known += [f"routes.{n}.{sfx}" for n in listed or () for sfx in spec.RELAY_ROUTE_KEYS]
    for key in raw:
        if key in known or key.startswith((spec.CONSUMER_PREFIX, spec.PRODUCER_PREFIX)):
            continue
        if (route := _route_of(key)) is not None:
            if listed is not None:
                fix = f"add it to routes, or remove {key}"
                problems.add(key, f"route {route!r} is not listed in routes{_nearest(route, listed)}", fix)
            continue
        problems.add(key, f"unknown key {key!r}{_nearest(key, [*known, *_as_client_key(key)])}", _DOCS)


def _route_of(key: str) -> str | None:
    """The route name in a ``routes.<route>.<route key>`` key."""
    parts = key.split(".", 2)
    return (
        parts[1] if len(parts) == 3 and parts[0] == "routes" and parts[2] in spec.RELAY_ROUTE_KEYS else None
    )


def _as_client_key(key: str) -> list[str]:
    """``kafka.consumr.x`` -> ``kafka.consumer.x``, so a misspelt prefix gets a useful suggestion."""
    parts = key.split(".", 2)
    if len(parts) < 3:
        return []
    prefixes = [spec.CONSUMER_PREFIX, spec.PRODUCER_PREFIX]
    near = difflib.get_close_matches(f"{parts[0]}.{parts[1]}.", prefixes, n=1)
    return [near[0] + parts[2]] if near else []

"""Build a :class:`SourceConnectorConfig` from one file's flat keys, or list everything wrong with it.

Values arrive as text with providers already resolved. An empty value counts as not set.
"""

from __future__ import annotations

from collections.abc import Mapping

from mqtt_kafka_sync.codec.registry_settings import RegistrySettings
from mqtt_kafka_sync.config import avro, spec
from mqtt_kafka_sync.config.checks import overlap_problem
from mqtt_kafka_sync.config.connector import (
    client_properties,
    connector_values,
    dead_letter_topic,
    kafka_connection,
    mqtt_connection,
)
from mqtt_kafka_sync.config.keycheck import Problems, check_keys, route_of
from mqtt_kafka_sync.config.model import RouteConfig, SourceConnectorConfig
from mqtt_kafka_sync.config.shards import shard_problems, shards_config
from mqtt_kafka_sync.config.throttle import throttle_config
from mqtt_kafka_sync.errors import ConfigProblem
from mqtt_kafka_sync.routing.pattern import TopicPattern, merge_filters, overlaps
from mqtt_kafka_sync.routing.router import topic_template_problem
from mqtt_kafka_sync.routing.template import TemplateError, compile_template


def build_source_connector(
    raw: Mapping[str, str], source: str
) -> tuple[SourceConnectorConfig | None, list[ConfigProblem]]:
    """The config, or None and every problem found."""
    problems = Problems(source)
    values, listed = connector_values(raw, problems, spec.SOURCE_KEYS, spec.ROUTES_KEY, _route_of)
    registry = avro.registry_settings(values, problems)
    built = [_route(route, raw, problems, registry) for route in dict.fromkeys(listed)]
    routes = [r for r in built if r is not None]
    clients = client_properties(raw, problems, spec.SOURCE_KEYS)
    _check_keys(raw, listed if values["routes"] else None, problems)
    dlq = dead_letter_topic(values, {r.kafka_topic for r, _ in routes}, problems)
    topics = _topics(values["mqtt.topics"], routes, problems)
    throttle = throttle_config(values, raw, problems)
    shard_problems(values, raw, [p for _, p in routes], problems)
    name: str | None = values["name"]
    if problems or name is None:
        return None, list(problems)
    mqtt = mqtt_connection(values, name)
    config = SourceConnectorConfig(
        name=name,
        source=source,
        tasks_max=values["tasks.max"],
        mqtt=mqtt,
        mqtt_shared_group=values["mqtt.shared.group"] or "",
        mqtt_qos=values["mqtt.qos"],
        mqtt_topics=topics,
        routes=tuple(r for r, _ in routes),
        kafka=kafka_connection(values, clients),
        dlq_topic=dlq or "",
        mqtt_receive_maximum=values["mqtt.receive.maximum"],
        mqtt_receive_maximum_bytes=values["mqtt.receive.maximum.bytes"],
        mqtt_topic_max_length=values["mqtt.topic.max.length"],
        mqtt_topic_cache_max_bytes=values["mqtt.topic.cache.max.bytes"],
        errors_retry_timeout_ms=values["errors.retry.timeout.ms"],
        mqtt_takeover_enabled=values["mqtt.takeover.enabled"],
        mqtt_takeover_delay_seconds=values["mqtt.takeover.delay.seconds"],
        throttle=throttle,
        shards=shards_config(values, name, mqtt.client_id),
    )
    return config, []


def _route(
    name: str, raw: Mapping[str, str], problems: Problems, registry: RegistrySettings | None
) -> tuple[RouteConfig, TopicPattern] | None:
    got = {sfx: problems.value(s, raw, f"routes.{name}.{sfx}") for sfx, s in spec.ROUTE_KEYS.items()}
    pattern: TopicPattern | None = got["mqtt.topic"]
    if pattern is None:
        return None
    ok = True
    for suffix in ("kafka.topic", "kafka.key"):
        if got[suffix] is None:
            continue
        try:
            template = compile_template(got[suffix], pattern)
        except TemplateError as exc:
            problems.add(f"routes.{name}.{suffix}", str(exc))
            ok = False
            continue
        if suffix == "kafka.topic" and (problem := topic_template_problem(template)):
            problems.add(f"routes.{name}.{suffix}", problem, "e.g. telemetry or site-{site}")
            ok = False
    if not ok or got["kafka.topic"] is None or got["value.format"] is None:
        return None
    value = avro.route_value(name, got, pattern=pattern, raw=raw, problems=problems, registry=registry)
    if got["value.format"] == "avro" and value is None:
        return None
    route = RouteConfig(name, pattern.text, got["kafka.topic"], got["kafka.key"], got["value.format"], value)
    return route, pattern


def _topics(
    given: tuple[str, ...] | None, routes: list[tuple[RouteConfig, TopicPattern]], problems: Problems
) -> tuple[str, ...]:
    """The filters to subscribe: as given (each route must be reachable) or derived from the routes."""
    if given is None:
        derived = merge_filters(p.filter for _, p in routes)
        if problem := overlap_problem(derived):
            problems.add(
                "mqtt.topics", f"derived from the routes: {problem}", "set mqtt.topics to broader filters"
            )
        return derived
    for route, pattern in routes:
        if not any(overlaps(f, pattern.filter) for f in given):
            problems.add(
                f"routes.{route.name}.mqtt.topic",
                f"no filter in mqtt.topics reaches pattern {pattern.text!r}",
                f"add {pattern.filter!r} to mqtt.topics, or leave mqtt.topics unset to derive it",
            )
    return given


def _check_keys(raw: Mapping[str, str], listed: tuple[str, ...] | None, problems: Problems) -> None:
    field_prefixes = tuple(f"routes.{n}.{avro.FIELDS_PREFIX}" for n in listed or ())
    check_keys(
        raw,
        keys=spec.SOURCE_KEYS,
        route_keys=spec.ROUTE_KEYS,
        listed=listed,
        routes=_route_of,
        client_prefixes=(spec.PRODUCER_PREFIX,),
        problems=problems,
        allowed=lambda key: key.startswith(field_prefixes) and not key.endswith("."),
    )


def _route_of(key: str) -> str | None:
    return route_of(key, spec.ROUTE_KEYS, (avro.FIELDS_PREFIX,))

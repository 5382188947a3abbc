"""Where a Kafka record becomes an MQTT command: route it, parse its key, render and check its topic.

:meth:`CommandRouter.command` runs once per record on the relay thread and never touches the
network. Anything that must not be published raises :class:`CommandError` with a stable reason, and
the relay dead-letters the record:

``no-route``            no route's ``kafka.topic`` matches the record's topic
``bad-key``             no key, a key that is not UTF-8, or one the route's key template does not fit
``missing-header``      a ``{header.<name>}`` placeholder whose header the record lacks
``unsafe-placeholder``  a value that would change the topic's shape (empty, ``/``, ``+``, ``#``, NUL, ...)
``bad-header``          a header that cannot be an MQTT 5 user property (not UTF-8, or NUL)
``expired``             older than the route's ``mqtt.message.expiry.seconds`` by its Kafka timestamp
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE

from mqtt_kafka_sync.config.model import RelayRouteConfig
from mqtt_kafka_sync.errors import CommandError
from mqtt_kafka_sync.kafka.dead_letter_copy import clip
from mqtt_kafka_sync.kafka.record import KafkaHeaders, KafkaRecord, kafka_headers
from mqtt_kafka_sync.mqtt.publisher import Command
from mqtt_kafka_sync.routing.command_topic import (
    HEADER_PREFIX,
    CommandTopic,
    compile_command_topic,
    unsafe_value,
)
from mqtt_kafka_sync.routing.key_template import KeyTemplate, compile_key_template

KEY_CACHE_SIZE = 10_000
"""Record keys whose rendered topics are kept (one per device, typically); cleared when full."""


@dataclass(frozen=True, slots=True, eq=False)
class _Route:
    config: RelayRouteConfig
    topic_regex: re.Pattern[str] | None
    key: KeyTemplate
    mqtt_topic: CommandTopic
    response_topic: CommandTopic | None
    names: frozenset[str]
    """Key placeholders the topic templates use."""
    headers: frozenset[str]


def _compile(route: RelayRouteConfig) -> _Route:
    key = compile_key_template(route.kafka_key)
    topic = compile_command_topic(route.mqtt_topic, key.names)
    response = compile_command_topic(route.response_topic, key.names) if route.response_topic else None
    regex = re.compile(route.kafka_topic) if route.kafka_topic.startswith("^") else None
    used = [topic] if response is None else [topic, response]
    names = frozenset().union(*(t.names for t in used))
    headers = frozenset().union(*(t.headers for t in used))
    return _Route(route, regex, key, topic, response, names, headers)


class CommandRouter:
    """Turns records into commands; ``routes`` come from a validated config."""

    def __init__(self, routes: Sequence[RelayRouteConfig]) -> None:
        self._routes = tuple(_compile(r) for r in routes)
        self._by_topic: dict[str, _Route | None] = {}
        self._by_key: dict[tuple[_Route, bytes | None], tuple[str, str | None]] = {}
        """(route, record key) -> (MQTT topic, response topic) of routes without header placeholders."""

    def command(self, record: KafkaRecord, now: float) -> Command:
        """The command for ``record`` (``now``: epoch seconds); raises :class:`CommandError`."""
        topic = record.topic() or ""
        route = self._by_topic.get(topic) or self._route(topic)
        if route is None:
            tried = ", ".join(r.config.name for r in self._routes)
            raise CommandError("no-route", f"no route reads topic {topic!r} (tried {tried})")
        headers = kafka_headers(record) if record.headers() else []
        key = record.key()
        topics = None if route.headers else self._by_key.get((route, key))
        if topics is None:
            topics = _topics(route, key, headers)
            if not route.headers:  # the topics depend on the key alone: the next record of its device
                if len(self._by_key) >= KEY_CACHE_SIZE:
                    self._by_key.clear()
                self._by_key[route, key] = topics
        mqtt_topic, response = topics
        config = route.config
        name = config.correlation_header
        correlation = _header_bytes(headers, name) if name is not None and headers else None
        if correlation is None:  # the record's place: the same for every copy of it
            correlation = f"{topic}/{record.partition()}/{record.offset()}".encode()
        lifetime = config.message_expiry_seconds
        expiry = None if lifetime is None else _expiry(config, lifetime, record, now, mqtt_topic)
        return Command(  # positional: one per record, and keywords cost more
            config.name,
            mqtt_topic,
            record.value() or b"",
            config.mqtt_qos,
            config.mqtt_retain,
            _user_properties(headers) if headers else (),
            correlation,
            response,
            expiry,
        )

    def route_name(self, topic: str) -> str | None:
        """The name of the route that reads ``topic``, None when none does (cached per topic)."""
        route = self._route(topic)
        return route.config.name if route is not None else None

    def _route(self, topic: str) -> _Route | None:
        try:
            return self._by_topic[topic]
        except KeyError:
            found = next((r for r in self._routes if _reads(r, topic)), None)
            self._by_topic[topic] = found
            return found


def _topics(route: _Route, key: bytes | None, headers: KafkaHeaders) -> tuple[str, str | None]:
    """The command's MQTT topic and response topic, every placeholder value checked first."""
    keys = _key_values(route, key)
    values = {name: keys[name] for name in route.names}
    for name in route.headers:
        values[HEADER_PREFIX + name] = _header_value(headers, name)
    for name, value in values.items():
        if (why := unsafe_value(value)) is not None:
            raise CommandError("unsafe-placeholder", f"placeholder {{{name}}} {why}: {clip(value)!r}")
    mqtt_topic = _render(route.mqtt_topic, values)
    response = _render(route.response_topic, values) if route.response_topic is not None else None
    return mqtt_topic, response


def _reads(route: _Route, topic: str) -> bool:
    if route.topic_regex is not None:  # as librdkafka matches a subscription: anchored by the '^' only
        return route.topic_regex.search(topic) is not None
    return route.config.kafka_topic == topic


def _key_values(route: _Route, raw: bytes | None) -> dict[str, str]:
    if raw is None:
        raise CommandError("bad-key", f"the record has no key; route {route.config.name!r} needs one")
    try:
        key = raw.decode()
    except UnicodeDecodeError:
        raise CommandError("bad-key", f"the key is not UTF-8 text: {raw[:64]!r}") from None
    values = route.key.parse(key)
    if values is None:
        raise CommandError(
            "bad-key",
            f"key {clip(key)!r} does not fit the template {route.key.text!r} of route {route.config.name!r}",
        )
    return values


def _header_value(headers: KafkaHeaders, name: str) -> str:
    for header, value in reversed(headers):
        if header == name:
            if value is None:
                return ""
            try:
                return value.decode()
            except UnicodeDecodeError:
                raise CommandError(
                    "bad-header", f"header {name!r} is not UTF-8 text: {value[:64]!r}"
                ) from None
    raise CommandError("missing-header", f"the record has no header {name!r}")


MQTT_TOPIC_MAX_BYTES = 65_535
"""An MQTT topic is a UTF-8 string of at most this many bytes (its length is a 16-bit integer)."""


def _render(template: CommandTopic, values: dict[str, str]) -> str:
    topic = template.render(values)
    if topic.startswith("$"):
        raise CommandError(
            "unsafe-placeholder", f"topic {clip(topic)!r} would start with '$' (broker topics)"
        )
    if len(topic) > MQTT_TOPIC_MAX_BYTES // 4 and len(topic.encode()) > MQTT_TOPIC_MAX_BYTES:
        raise CommandError(
            "unsafe-placeholder",
            f"topic of {len(topic.encode())} bytes, above MQTT's {MQTT_TOPIC_MAX_BYTES}: {clip(topic)!r}",
        )
    return topic


def _user_properties(headers: KafkaHeaders) -> tuple[tuple[str, str], ...]:
    properties = []
    for name, value in headers:
        try:
            text = "" if value is None else value.decode()
        except UnicodeDecodeError:
            raise CommandError(
                "bad-header", f"header {name!r} is not UTF-8 text, so it cannot be an MQTT user property"
            ) from None
        if "\0" in name or "\0" in text:
            raise CommandError("bad-header", f"header {name!r} contains NUL, which MQTT strings cannot")
        properties.append((name, text))
    return tuple(properties)


def _header_bytes(headers: KafkaHeaders, name: str) -> bytes | None:
    """The last non-empty value of header ``name``; None when there is none."""
    for header, value in reversed(headers):
        if header == name and value:
            return value
    return None


def _expiry(config: RelayRouteConfig, lifetime: int, record: KafkaRecord, now: float, mqtt_topic: str) -> int:
    """The seconds ``record``'s command has left of the route's ``lifetime``; raises ``expired``."""
    kind, millis = record.timestamp()
    age = 0.0 if kind == TIMESTAMP_NOT_AVAILABLE else max(0.0, now - millis / 1000)
    left = lifetime - age
    if left <= 0:
        raise CommandError(
            "expired",
            f"written {age:.1f}s ago, and route {config.name!r} lets commands live {lifetime}s",
            mqtt_topic=mqtt_topic,
        )
    return max(1, math.ceil(left))

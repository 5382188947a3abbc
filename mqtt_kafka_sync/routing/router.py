"""Where an MQTT message goes in Kafka: the first route whose pattern matches its topic wins.

``Router.route()`` runs once per message; results (and misses) are cached per MQTT topic in a cache
bounded by bytes (:class:`TopicCache`), so a fleet of a few thousand devices costs one dict lookup
per message, and long topics cannot drive memory: 6,000 topics of 60 KB would fill a cache bounded
by entries with 740 MiB. A match carries the Kafka topic and key and the record fields the route
fills from the topic (``value.fields.*``), rendered once per topic; encoding the value is not the
router's job (``ingest/routes.py`` pairs each route with its encoder).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mqtt_kafka_sync.errors import RoutingError
from mqtt_kafka_sync.routing.pattern import TopicPattern, compile_pattern, merge_filters
from mqtt_kafka_sync.routing.template import Template, compile_template

KAFKA_TOPIC = re.compile(r"[a-zA-Z0-9._-]{1,249}")
KAFKA_TOPIC_CHARS = re.compile(r"[a-zA-Z0-9._-]*")
KAFKA_TOPIC_RULE = "1 to 249 characters from a-z A-Z 0-9 . _ -, and not '.' or '..'"


def kafka_topic_problem(name: str) -> str | None:
    """Why ``name`` is not a legal Kafka topic name, or None when it is."""
    if KAFKA_TOPIC.fullmatch(name) and name not in (".", ".."):
        return None
    return f"{name!r} is not a legal Kafka topic name ({KAFKA_TOPIC_RULE})"


def topic_template_problem(template: Template) -> str | None:
    """Why a Kafka topic template can never render a legal name, or None when it may."""
    if not template.names:
        return kafka_topic_problem("".join(template.literals))
    bad = sorted({c for lit in template.literals for c in lit if not KAFKA_TOPIC_CHARS.fullmatch(c)})
    return f"Kafka topic names cannot contain {''.join(bad)!r} ({KAFKA_TOPIC_RULE})" if bad else None


class RouteRule(Protocol):
    """What the router reads of a route (``config.model.RouteConfig`` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def mqtt_topic(self) -> str: ...
    @property
    def kafka_topic(self) -> str: ...
    @property
    def kafka_key(self) -> str | None: ...
    @property
    def field_templates(self) -> tuple[tuple[str, str], ...]: ...


Fields = tuple[tuple[str, str], ...]
"""``(record field, text)`` pairs a route renders from the MQTT topic (``value.fields.*``)."""


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """Where one MQTT topic goes: the route, the Kafka topic and key, and the record fields the route
    fills from the topic. Encoding the value is the codec's business, not the router's."""

    route_name: str
    kafka_topic: str
    key: bytes
    fields: Fields = ()
    """``(record field, text)`` rendered from the MQTT topic by the route's ``value.fields.*``."""


@dataclass(frozen=True, slots=True)
class _Route:
    name: str
    pattern: TopicPattern
    topic: Template
    key: Template | None
    fields: tuple[tuple[str, Template], ...]


def _compile(route: RouteRule) -> _Route:
    pattern = compile_pattern(route.mqtt_topic)
    key = compile_template(route.kafka_key, pattern) if route.kafka_key is not None else None
    fields = tuple((name, compile_template(text, pattern)) for name, text in route.field_templates)
    return _Route(route.name, pattern, compile_template(route.kafka_topic, pattern), key, fields)


ENTRY_OVERHEAD_BYTES = 400
"""What one cache entry costs beside its strings: the dict slot, the match object, small objects."""
DEFAULT_CACHE_BYTES = 16 * 2**20


class TopicCache:
    """Route results by MQTT topic, bounded by the bytes of the topics and what they map to.

    A hit is one dict lookup (the router reads :attr:`results` itself); an insert drops the oldest
    entries beyond ``max_bytes`` (first in, first out: a fleet whose topics fit never evicts, and one
    whose topics do not fit cannot make the cache grow). The task's network thread is the main user;
    a delivery report that routes a message again can run on another thread (an adopted session's,
    served by the main task), so inserts take a lock.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.results: dict[str, RouteMatch | str] = {}
        self._sizes: dict[str, int] = {}
        """The size of each entry, in insertion order (the eviction order)."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.results)

    def put(self, topic: str, found: RouteMatch | str) -> None:
        size = _size(topic, found)
        if size > self.max_bytes:
            return  # larger than the whole cache: worked out again each time
        with self._lock:
            self.bytes += size - self._sizes.pop(topic, 0)
            self._sizes[topic] = size
            self.results[topic] = found
            while self.bytes > self.max_bytes:
                oldest = next(iter(self._sizes))
                self.bytes -= self._sizes.pop(oldest)
                self.results.pop(oldest, None)


def _size(topic: str, found: RouteMatch | str) -> int:
    if isinstance(found, str):
        return ENTRY_OVERHEAD_BYTES + len(topic) + len(found)
    fields = sum(len(name) + len(text) for name, text in found.fields)
    return ENTRY_OVERHEAD_BYTES + len(topic) + len(found.kafka_topic) + len(found.key) + fields


class Router:
    """Routes MQTT topics to Kafka topics and keys; ``routes`` come from a validated config.

    Building one builds every route's encoder: an ``avro`` route with a schema registry registers or
    fetches its schema then (raises :class:`~mqtt_kafka_sync.errors.SchemaRegistryError`).
    """

    def __init__(self, routes: Sequence[RouteRule], cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._routes = tuple(_compile(r) for r in routes)
        self._filters = merge_filters(r.pattern.filter for r in self._routes)
        self._tried = ", ".join(r.name for r in self._routes) or "none configured"
        self.cache = TopicCache(cache_bytes)
        self._results = self.cache.results

    @property
    def filters(self) -> tuple[str, ...]:
        """The MQTT filters that reach every route, deduplicated, in route order."""
        return self._filters

    def route(self, mqtt_topic: str) -> RouteMatch:
        """Raises :class:`RoutingError` when no route matches or the Kafka topic is illegal."""
        found = self._results.get(mqtt_topic)
        if found is None:
            found = self._resolve(mqtt_topic)
            self.cache.put(mqtt_topic, found)
        if isinstance(found, RouteMatch):
            return found
        raise RoutingError(found, mqtt_topic=mqtt_topic)

    def _resolve(self, mqtt_topic: str) -> RouteMatch | str:
        """The match, or why there is none (cached as text: exceptions do not belong in a cache)."""
        for route in self._routes:
            values = route.pattern.match(mqtt_topic)
            if values is None:
                continue
            values["topic"] = mqtt_topic
            kafka_topic = route.topic.render(values)
            problem = kafka_topic_problem(kafka_topic)
            if problem is not None:
                return f"route {route.name!r} renders {problem}"
            key = route.key.render(values) if route.key is not None else mqtt_topic
            fields = tuple((name, template.render(values)) for name, template in route.fields)
            return RouteMatch(route.name, kafka_topic, key.encode(), fields)
        return f"no route matches (tried {self._tried})"

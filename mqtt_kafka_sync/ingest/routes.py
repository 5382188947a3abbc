"""The routes of an ingest task: where a topic goes (the router) and how its value is encoded."""

from __future__ import annotations

from collections.abc import Sequence

from mqtt_kafka_sync.codec.encoders import make_encoder
from mqtt_kafka_sync.codec.values import Encoder, encode_value
from mqtt_kafka_sync.config.model import RouteConfig
from mqtt_kafka_sync.routing.router import DEFAULT_CACHE_BYTES, RouteMatch, Router


class IngestRoutes:
    """The router of ``routes`` and each route's encoder.

    Building it builds every encoder: an ``avro`` route with a schema registry registers or fetches
    its schema then (raises :class:`~mqtt_kafka_sync.errors.SchemaRegistryError`).
    """

    def __init__(self, routes: Sequence[RouteConfig], cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.router = Router(routes, cache_bytes)
        self.encoders: dict[str, Encoder] = {
            r.name: make_encoder(r.name, r.value_format, r.value) for r in routes
        }

    def route(self, mqtt_topic: str) -> RouteMatch:
        """Raises :class:`~mqtt_kafka_sync.errors.RoutingError` when no route takes the topic."""
        return self.router.route(mqtt_topic)

    def encode(self, match: RouteMatch, payload: bytes, mqtt_topic: str) -> bytes:
        """Raises :class:`~mqtt_kafka_sync.errors.DecodeError` when the route's format rejects it."""
        return encode_value(self.encoders[match.route_name], match.fields, payload, mqtt_topic)

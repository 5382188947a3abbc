"""Every key a connector file may set, declared once: the loader checks files against these tables
and :mod:`mqtt_kafka_sync.config.reference` renders docs/config-reference.md from them.

The tables live beside their job: what both connectors take and the Kafka clients' pass-through rules
in :mod:`~mqtt_kafka_sync.config.common_keys`, a source connector's keys in
:mod:`~mqtt_kafka_sync.config.source_keys`, a relay's in :mod:`~mqtt_kafka_sync.config.relay_keys`
(and the Avro and throttle keys in :mod:`~mqtt_kafka_sync.config.avro`,
:mod:`~mqtt_kafka_sync.config.throttle`). This module is where the rest of the package reads them.
"""

from __future__ import annotations

from mqtt_kafka_sync.config.common_keys import (
    COMMON_FORBIDDEN,
    CONNECTOR_KEYS,
    CONSUMER_FORBIDDEN,
    CONSUMER_GUARANTEE,
    CONSUMER_PREFIX,
    KAFKA_PREFIX,
    MAX_IN_FLIGHT,
    MAX_TASKS,
    PRODUCER_FORBIDDEN,
    PRODUCER_GUARANTEE,
    PRODUCER_LIMITED,
    PRODUCER_PREFIX,
)
from mqtt_kafka_sync.config.relay_keys import (
    RELAY_CONNECTOR_KEYS,
    RELAY_ERRORS_KEYS,
    RELAY_KAFKA_KEYS,
    RELAY_KEYS,
    RELAY_MQTT_KEYS,
    RELAY_ROUTE_KEYS,
    RELAY_ROUTES_KEY,
    RELAY_SECTIONS,
)
from mqtt_kafka_sync.config.source_keys import (
    CONVERTER_KEYS,
    ERRORS_KEYS,
    KAFKA_KEYS,
    MQTT_KEYS,
    ROUTE_FIELD_KEY,
    ROUTE_KEYS,
    ROUTES_KEY,
    SOURCE_KEYS,
    SOURCE_SECTIONS,
)

__all__ = [
    "COMMON_FORBIDDEN",
    "CONNECTOR_KEYS",
    "CONSUMER_FORBIDDEN",
    "CONSUMER_GUARANTEE",
    "CONSUMER_PREFIX",
    "CONVERTER_KEYS",
    "ERRORS_KEYS",
    "KAFKA_KEYS",
    "KAFKA_PREFIX",
    "MAX_IN_FLIGHT",
    "MAX_TASKS",
    "MQTT_KEYS",
    "PRODUCER_FORBIDDEN",
    "PRODUCER_GUARANTEE",
    "PRODUCER_LIMITED",
    "PRODUCER_PREFIX",
    "RELAY_CONNECTOR_KEYS",
    "RELAY_ERRORS_KEYS",
    "RELAY_KAFKA_KEYS",
    "RELAY_KEYS",
    "RELAY_MQTT_KEYS",
    "RELAY_ROUTES_KEY",
    "RELAY_ROUTE_KEYS",
    "RELAY_SECTIONS",
    "ROUTES_KEY",
    "ROUTE_FIELD_KEY",
    "ROUTE_KEYS",
    "SOURCE_KEYS",
    "SOURCE_SECTIONS",
]

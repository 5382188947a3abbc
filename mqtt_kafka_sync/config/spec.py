"""Every key a source-connector file may set, declared once: the loader checks files against these
tables and :mod:`mqtt_kafka_sync.config.reference` renders docs/config-reference.md from them.
"""

from __future__ import annotations

from typing import get_args

from mqtt_kafka_sync.config import checks
from mqtt_kafka_sync.config.keyspec import KeySpec
from mqtt_kafka_sync.config.model import SOURCE_CONNECTOR_CLASS, ValueFormat

_NAME = r"[A-Za-z0-9_.-]+"
_NAME_DOC = "letters, digits, '_', '.' and '-'"

CONNECTOR_KEYS = (
    KeySpec(
        "name",
        "str",
        "Unique connector name. In JSON files it is the top-level `name`.",
        "example-telemetry",
        required=True,
        pattern=_NAME,
        pattern_doc=_NAME_DOC,
    ),
    KeySpec(
        "connector.class",
        "enum",
        "What this connector does. `mqtt_kafka_sync.MqttSourceConnector` copies MQTT messages into Kafka.",
        SOURCE_CONNECTOR_CLASS,
        required=True,
        choices=(SOURCE_CONNECTOR_CLASS,),
    ),
    KeySpec(
        "tasks.max",
        "int",
        "Worker processes; each is one MQTT client in the shared-subscription group.",
        "2",
        default="1",
        minimum=1,
    ),
)

MQTT_KEYS = (
    KeySpec(
        "mqtt.server.uri",
        "str",
        "The MQTT broker, as `tcp://host:port`. TLS (`ssl://`) is not supported yet.",
        "tcp://127.0.0.1:1883",
        required=True,
        check=checks.mqtt_server,
    ),
    KeySpec(
        "mqtt.shared.group",
        "str",
        "Shared-subscription group: tasks subscribe to "
        "`$share/<group>/<filter>`, so the broker spreads messages across them.",
        "mks",
        required=True,
        pattern=_NAME,
        pattern_doc=_NAME_DOC,
    ),
    KeySpec(
        "mqtt.qos",
        "int",
        "Subscription QoS. With 1 or 2 the broker redelivers what a task had not acknowledged; "
        "0 is lossy: messages in flight when a task stops, and those published while it is away, are gone.",
        "1",
        default="1",
        minimum=0,
        maximum=2,
    ),
    KeySpec(
        "mqtt.client.id",
        "str",
        "Client id prefix; task `i` connects as `<prefix>-<i>`. Keep it stable across restarts: the "
        "broker keeps each session under its client id. MQTT only obliges brokers to accept ids of up "
        "to 23 characters; most accept longer.",
        "mks-telemetry",
        default_doc="the connector `name`",
        pattern=_NAME,
        pattern_doc=_NAME_DOC,
    ),
    KeySpec("mqtt.username", "str", "User name for the broker.", "bridge"),
    KeySpec(
        "mqtt.password",
        "secret",
        "Password for the broker; never printed. Use a provider rather than writing it in the file.",
        "${env:MQTT_PASSWORD}",
    ),
    KeySpec(
        "mqtt.keepalive.interval.seconds",
        "int",
        "MQTT keep-alive: the broker drops a client silent for 1.5 times this.",
        "30",
        default="30",
        minimum=5,
        maximum=3600,
    ),
    KeySpec(
        "mqtt.session.expiry.interval.seconds",
        "int",
        "How long the broker keeps a task's session, and the QoS 1/2 messages queued in it, after the "
        "task disconnects. Persistent sessions are how a restart loses nothing, so 0 is not allowed.",
        "86400",
        default="86400",
        minimum=1,
        maximum=4_294_967_295,
    ),
    KeySpec(
        "mqtt.receive.maximum",
        "int",
        "Most unacknowledged QoS 1/2 messages the broker may send a task at once; bounds the task's memory.",
        "1000",
        default="1000",
        minimum=1,
        maximum=65535,
    ),
    KeySpec(
        "mqtt.connect.timeout.seconds",
        "float",
        "How long to wait for the broker to accept a connection.",
        "10",
        default="10",
        minimum=1,
        maximum=300,
    ),
    KeySpec(
        "mqtt.takeover.enabled",
        "bool",
        "Whether a live task adopts the MQTT session of a task that died, so the messages the broker "
        "holds in that session reach Kafka instead of waiting for it to return or expire.",
        "true",
        default="true",
    ),
    KeySpec(
        "mqtt.takeover.delay.seconds",
        "int",
        "How long a task must have been offline or stopped before another task adopts its session.",
        "10",
        default="10",
        minimum=0,
        maximum=3600,
    ),
    KeySpec(
        "mqtt.topics",
        "list",
        "Comma-separated MQTT filters to subscribe to, without the `$share/<group>/` prefix. "
        "Messages no route matches go to the dead-letter topic. Filters must not overlap: the broker "
        "would deliver a message once per matching filter.",
        "plants/#",
        default_doc="the routes' patterns with placeholders as `+`, deduplicated, in route order, "
        "leaving out filters another one covers",
        check=checks.mqtt_filters,
    ),
)

KAFKA_KEYS = (
    KeySpec(
        "kafka.bootstrap.servers",
        "list",
        "Comma-separated `host:port` of Kafka brokers.",
        "127.0.0.1:9092",
        required=True,
        check=checks.bootstrap_servers,
    ),
)

ROUTES_KEY = KeySpec(
    "routes",
    "list",
    "Comma-separated route names, tried in this order: the first route whose pattern matches a "
    "message's topic wins. Each route is set with `routes.<route>.*` keys.",
    "telemetry,status",
    required=True,
    pattern=r"[A-Za-z0-9_-]+",
    pattern_doc="letters, digits, '_' and '-'",
)

ROUTE_KEYS = {
    "mqtt.topic": KeySpec(
        "routes.<route>.mqtt.topic",
        "str",
        "The MQTT topic pattern: `{name}` captures a level, `+` matches one, a final `#` matches the rest.",
        "plants/{plant}/devices/{device}/telemetry",
        required=True,
        check=checks.route_pattern,
    ),
    "kafka.topic": KeySpec(
        "routes.<route>.kafka.topic",
        "str",
        "Kafka topic template, e.g. `site-{site}`.",
        "telemetry",
        required=True,
    ),
    "kafka.key": KeySpec(
        "routes.<route>.kafka.key",
        "str",
        "Record key template, e.g. `{plant}.{device}`. The key picks the partition (murmur2, as in "
        "Java clients), so records with the same key stay in order.",
        "{plant}.{device}",
        default_doc="the MQTT topic",
    ),
    "value.format": KeySpec(
        "routes.<route>.value.format",
        "enum",
        "`bytes` copies the payload as it is; `json` requires UTF-8 JSON and re-encodes it compactly.",
        "json",
        default="bytes",
        choices=get_args(ValueFormat),
    ),
}

ERRORS_KEYS = (
    KeySpec(
        "errors.deadletterqueue.topic.name",
        "str",
        "Kafka topic for messages that cannot be delivered as routed (no route, illegal topic name, "
        "payload the value format rejects), with the reason in headers.",
        "example-telemetry-dlq",
        default_doc="`<name>-dlq`",
        check=checks.kafka_topic,
    ),
)

SOURCE_KEYS = (*CONNECTOR_KEYS, *MQTT_KEYS, *KAFKA_KEYS, ROUTES_KEY, *ERRORS_KEYS)
SOURCE_SECTIONS = {
    "Connector": CONNECTOR_KEYS,
    "MQTT": MQTT_KEYS,
    "Kafka": KAFKA_KEYS,
    "Routes": (ROUTES_KEY, *ROUTE_KEYS.values()),
    "Errors": ERRORS_KEYS,
}

PRODUCER_PREFIX = "kafka.producer."
MAX_IN_FLIGHT = 5
PRODUCER_FORBIDDEN = {
    "enable.idempotence": "the producer is always idempotent, so retries cannot duplicate or reorder records",
    "acks": "the producer always waits for all in-sync replicas (acks=all); less can lose records",
    "request.required.acks": "the producer always uses acks=all; less can lose records",
    "partitioner": "partitioning stays murmur2, as in Java clients, so a key lands where Java would put it",
    "bootstrap.servers": "set kafka.bootstrap.servers instead",
}
PRODUCER_LIMITED = ("max.in.flight.requests.per.connection", "max.in.flight")
"""Allowed up to :data:`MAX_IN_FLIGHT`: more breaks ordering under the idempotent producer."""

"""The keys of a source connector (``connector.class=mqtt_kafka_sync.MqttSourceConnector``), by section.

The keys it shares with the relay are in :mod:`~mqtt_kafka_sync.config.common_keys`, the Avro route and
converter keys in :mod:`~mqtt_kafka_sync.config.avro`, the throttle keys in
:mod:`~mqtt_kafka_sync.config.throttle`; the sections here order them for the reference. Keys the
relay also takes under the same name but with other words are made by common_keys' factories.
"""

from __future__ import annotations

from typing import get_args

from mqtt_kafka_sync.config import avro, checks, model
from mqtt_kafka_sync.config.common_keys import (
    CONNECTOR_KEYS,
    KAFKA_BOOTSTRAP_KEY,
    MQTT_CONNECT_TIMEOUT_KEY,
    MQTT_KEEPALIVE_KEY,
    MQTT_PASSWORD_KEY,
    MQTT_SERVER_KEY,
    MQTT_TLS_KEYS,
    MQTT_USERNAME_KEY,
    NAME,
    NAME_DOC,
    dead_letter_topic_key,
    mqtt_client_id_key,
    mqtt_session_expiry_key,
    routes_key,
)
from mqtt_kafka_sync.config.keyspec import KeySpec
from mqtt_kafka_sync.config.model import ValueFormat
from mqtt_kafka_sync.config.shards import SHARD_KEYS
from mqtt_kafka_sync.config.throttle import THROTTLE_KEYS

MQTT_KEYS = (
    MQTT_SERVER_KEY,
    KeySpec(
        "mqtt.shared.group",
        "str",
        "Shared-subscription group: tasks subscribe to "
        "`$share/<group>/<filter>`, so the broker spreads messages across them. Not used in sharded mode.",
        "mks",
        default_doc="none; required with `mqtt.subscription=shared`",
        pattern=NAME,
        pattern_doc=NAME_DOC,
    ),
    KeySpec(
        "mqtt.qos",
        "int",
        "Subscription QoS. With 1 or 2 the broker redelivers what a task had not acknowledged; "
        "0 is lossy: messages in flight when a task stops, and those published while it is away, are gone. "
        "A broker may grant less than asked (HiveMQ CE grants QoS 1 on shared subscriptions, so QoS 2 "
        "becomes at-least-once there): the task logs it once at WARNING; docs/brokers.md lists brokers.",
        "1",
        default="1",
        minimum=0,
        maximum=2,
    ),
    mqtt_client_id_key(
        "Client id prefix; task `i` connects as `<prefix>-<i>`. Keep it stable across restarts: the "
        "broker keeps each session under its client id. MQTT only obliges brokers to accept ids of up "
        "to 23 characters; most accept longer.",
        "mks-telemetry",
    ),
    MQTT_USERNAME_KEY,
    MQTT_PASSWORD_KEY,
    MQTT_KEEPALIVE_KEY,
    mqtt_session_expiry_key(
        "How long the broker keeps a task's session, and the QoS 1/2 messages queued in it, after the "
        "task disconnects. Persistent sessions are how a restart loses nothing, so 0 is not allowed.",
        model.MQTT_SESSION_EXPIRY_S,
    ),
    KeySpec(
        "mqtt.receive.maximum",
        "int",
        "Most unacknowledged QoS 1/2 messages a task takes at once (announced to the broker as Receive "
        "Maximum and enforced by the task); bounds its memory, about 1.7 KB per 256 B message. It also "
        "caps a task at this many messages per Kafka round trip: raise it for a distant Kafka.",
        "4000",
        default=str(model.MQTT_RECEIVE_MAXIMUM),
        minimum=1,
        maximum=65535,
    ),
    KeySpec(
        "mqtt.receive.maximum.bytes",
        "int",
        "Most bytes of messages a task holds unacknowledged at once, beside mqtt.receive.maximum: keeps "
        "memory bounded for large payloads and long topics (the window is messages; 4,000 x 64 KB would "
        "be 256 MB, held twice: by the task and by the Kafka producer). A message counts its payload, "
        "its topic three times (packet, mqtt.topic header, a key rendered from it) and its user "
        "properties. 0: no byte limit.",
        "16777216",
        default=str(model.MQTT_RECEIVE_MAXIMUM_BYTES),
        minimum=0,
    ),
    KeySpec(
        "mqtt.topic.max.length",
        "int",
        "Longest MQTT topic a task routes, in characters. A longer topic goes to the dead-letter topic "
        "(`dlq.reason=topic-too-long`): topics are rendered into keys and cached, so their length must "
        "not drive memory. MQTT allows 65,535 bytes; fleets rarely use more than 256.",
        "1024",
        default=str(model.MQTT_TOPIC_MAX_LENGTH),
        minimum=1,
        maximum=65_535,
    ),
    KeySpec(
        "mqtt.topic.cache.max.bytes",
        "int",
        "Memory for the per-topic routing cache (a topic's route, Kafka topic and key, worked out once): "
        "the least recently used topics are dropped beyond it, so the task's memory stays bounded "
        "whatever the topics.",
        "16777216",
        default=str(model.MQTT_TOPIC_CACHE_MAX_BYTES),
        minimum=65_536,
    ),
    MQTT_CONNECT_TIMEOUT_KEY,
    *MQTT_TLS_KEYS,
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
        default=str(model.MQTT_TAKEOVER_DELAY_S),
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
    *SHARD_KEYS,
)

KAFKA_KEYS = (KAFKA_BOOTSTRAP_KEY,)

ROUTES_KEY = routes_key(
    "Comma-separated route names, tried in this order: the first route whose pattern matches a "
    "message's topic wins. Each route is set with `routes.<route>.*` keys.",
    "telemetry,status",
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
        "`bytes` copies the payload as it is; `json` requires UTF-8 JSON and re-encodes it compactly; "
        "`avro` requires UTF-8 JSON that fits `value.schema` and writes it as Avro (see docs/formats.md).",
        "json",
        default="bytes",
        choices=get_args(ValueFormat),
    ),
    **avro.AVRO_ROUTE_KEYS,
}

ERRORS_KEYS = (
    dead_letter_topic_key(
        "Kafka topic for messages that cannot be delivered as routed (no route, illegal topic name, "
        "payload the value format rejects), with the reason in headers.",
        "example-telemetry-dlq",
    ),
    KeySpec(
        "errors.retry.timeout.ms",
        "int",
        "How long records for a Kafka topic the producer calls unknown (not created yet, deleted, no "
        "auto-create) are held and retried with backoff before they go to the dead-letter topic "
        "(`dlq.reason=kafka-topic-missing`). While they are held, MQTT acknowledgements after them wait "
        "(they go out in arrival order). -1: retry for ever.",
        "60000",
        default=str(model.ERRORS_RETRY_TIMEOUT_MS),
        minimum=-1,
    ),
)

ROUTE_FIELD_KEY = avro.FIELD_KEY
"""``routes.<route>.value.fields.<field>``: a route key with a name part of its own."""
CONVERTER_KEYS = avro.CONVERTER_KEYS

SOURCE_KEYS = (
    *CONNECTOR_KEYS,
    *MQTT_KEYS,
    *KAFKA_KEYS,
    ROUTES_KEY,
    *CONVERTER_KEYS,
    *ERRORS_KEYS,
    *THROTTLE_KEYS,
)
SOURCE_SECTIONS = {
    "Connector": CONNECTOR_KEYS,
    "MQTT": MQTT_KEYS,
    "Kafka": KAFKA_KEYS,
    "Routes": (ROUTES_KEY, *ROUTE_KEYS.values(), ROUTE_FIELD_KEY),
    "Value converter (Avro wire format)": CONVERTER_KEYS,
    "Errors": ERRORS_KEYS,
    "Throttle (consumer lag)": THROTTLE_KEYS,
}

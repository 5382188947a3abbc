"""Every key a source-connector file may set, declared once: the loader checks files against these
tables and :mod:`mqtt_kafka_sync.config.reference` renders docs/config-reference.md from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

from mqtt_kafka_sync.config import avro, checks, model
from mqtt_kafka_sync.config.keyspec import KeySpec
from mqtt_kafka_sync.config.model import RELAY_CONNECTOR_CLASS, SOURCE_CONNECTOR_CLASS, ValueFormat
from mqtt_kafka_sync.config.throttle import THROTTLE_KEYS

MAX_TASKS = 256
"""Most tasks of one connector in one process: each is a process of ~40 MB and a broker connection;
more belong on more machines."""
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
        "What this connector does. `mqtt_kafka_sync.MqttSourceConnector` copies MQTT messages into Kafka; "
        "`mqtt_kafka_sync.KafkaCommandRelayConnector` publishes Kafka records to MQTT as commands.",
        SOURCE_CONNECTOR_CLASS,
        required=True,
        choices=(SOURCE_CONNECTOR_CLASS, RELAY_CONNECTOR_CLASS),
    ),
    KeySpec(
        "tasks.max",
        "int",
        "Worker processes; each is one MQTT client in the shared-subscription group.",
        "2",
        default="1",
        minimum=1,
        maximum=MAX_TASKS,
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
        "0 is lossy: messages in flight when a task stops, and those published while it is away, are gone. "
        "A broker may grant less than asked (HiveMQ CE grants QoS 1 on shared subscriptions, so QoS 2 "
        "becomes at-least-once there): the task logs it once at WARNING; docs/brokers.md lists brokers.",
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
        default=str(model.MQTT_KEEPALIVE_S),
        minimum=5,
        maximum=3600,
    ),
    KeySpec(
        "mqtt.session.expiry.interval.seconds",
        "int",
        "How long the broker keeps a task's session, and the QoS 1/2 messages queued in it, after the "
        "task disconnects. Persistent sessions are how a restart loses nothing, so 0 is not allowed.",
        "86400",
        default=str(model.MQTT_SESSION_EXPIRY_S),
        minimum=1,
        maximum=4_294_967_295,
    ),
    KeySpec(
        "mqtt.receive.maximum",
        "int",
        "Most unacknowledged QoS 1/2 messages a task takes at once (announced to the broker as Receive "
        "Maximum and enforced by the task); bounds its memory, about 1.5 KB per 256 B message.",
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
        default="1024",
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
        default="16777216",
        minimum=65_536,
    ),
    KeySpec(
        "mqtt.connect.timeout.seconds",
        "float",
        "How long to wait for the broker to accept a connection.",
        "10",
        default=f"{model.MQTT_CONNECT_TIMEOUT_S:g}",
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
        "`bytes` copies the payload as it is; `json` requires UTF-8 JSON and re-encodes it compactly; "
        "`avro` requires UTF-8 JSON that fits `value.schema` and writes it as Avro (see docs/formats.md).",
        "json",
        default="bytes",
        choices=get_args(ValueFormat),
    ),
    **avro.AVRO_ROUTE_KEYS,
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
    KeySpec(
        "errors.retry.timeout.ms",
        "int",
        "How long records for a Kafka topic the producer calls unknown (not created yet, deleted, no "
        "auto-create) are held and retried with backoff before they go to the dead-letter topic "
        "(`dlq.reason=kafka-topic-missing`). While they are held, MQTT acknowledgements after them wait "
        "(they go out in arrival order). -1: retry for ever.",
        "60000",
        default="60000",
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

PRODUCER_GUARANTEE: Mapping[str, str] = {
    "enable.idempotence": "true",
    "acks": "all",
    # murmur2 on the key bytes, as Java's default partitioner does; random for null keys.
    "partitioner": "murmur2_random",
}
"""What every producer sets, always: the loader refuses overrides (``PRODUCER_FORBIDDEN``)."""
CONSUMER_GUARANTEE: Mapping[str, str] = {
    "enable.auto.offset.store": "false",
    "enable.auto.commit": "true",
    "partition.assignment.strategy": "cooperative-sticky",
}
"""What the relay's consumer sets, always (and ``group.id``, ``group.protocol``): overrides refused."""

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

# -- Command relay (connector.class=mqtt_kafka_sync.KafkaCommandRelayConnector) ------------------

RELAY_CONNECTOR_KEYS = (
    CONNECTOR_KEYS[0],
    CONNECTOR_KEYS[1],
    KeySpec(
        "tasks.max",
        "int",
        "Relay tasks per process; each is one member of the consumer group and one MQTT connection.",
        "2",
        default="1",
        minimum=1,
        maximum=MAX_TASKS,
    ),
)

RELAY_MQTT_KEYS = (
    MQTT_KEYS[0],
    KeySpec(
        "mqtt.client.id",
        "str",
        "Client id prefix; task `i` connects as `<prefix>-<i>-<random>`. The random part is new for "
        "every process: a relay's MQTT session only has to outlive reconnects of that process "
        "(offsets not yet stored are published again after a restart), and two workers started from "
        "one file never take each other's session.",
        "mks-commands",
        default_doc="the connector `name`",
        pattern=_NAME,
        pattern_doc=_NAME_DOC,
    ),
    *(k for k in MQTT_KEYS if k.key in ("mqtt.username", "mqtt.password", "mqtt.keepalive.interval.seconds")),
    KeySpec(
        "mqtt.session.expiry.interval.seconds",
        "int",
        "How long the broker keeps a task's session after the connection drops, so QoS 1/2 publishes "
        "in flight complete after a reconnect. Cover your longest broker restart or network outage. "
        "A task that stops cleanly ends its session.",
        "3600",
        default="3600",
        minimum=1,
        maximum=4_294_967_295,
    ),
    *(k for k in MQTT_KEYS if k.key == "mqtt.connect.timeout.seconds"),
    KeySpec(
        "mqtt.max.inflight.messages",
        "int",
        "Most QoS 1/2 publishes a task has sent and the broker not yet acknowledged; the broker's "
        "Receive Maximum (from CONNACK) lowers it. Bounds memory and the commands published twice "
        "after a crash.",
        "1000",
        default="1000",
        minimum=1,
        maximum=65535,
    ),
    KeySpec(
        "mqtt.publish.max.attempts",
        "int",
        "Times one command is sent before it goes to the dead-letter topic (`dlq.reason=mqtt-rejected`, "
        "the broker's answer in `dlq.detail`) and its partition moves on. An attempt fails when the "
        "connection ends with the command unacknowledged for a reason that blames what was sent or "
        "answered (a protocol error, such as a malformed PUBACK, or a broker DISCONNECT such as packet "
        "too large); paho sends every unacknowledged command again after reconnecting. A plain "
        "network loss or broker restart counts no attempt.",
        "5",
        default="5",
        minimum=1,
        maximum=1000,
    ),
)

RELAY_KAFKA_KEYS = (
    KAFKA_KEYS[0],
    KeySpec(
        "kafka.group.id",
        "str",
        "Consumer group. Relay workers with the same group share the command partitions "
        "(cooperative-sticky rebalancing); the group's committed offsets are where a restarted "
        "worker resumes.",
        "mks-commands",
        default_doc="the connector `name`",
        pattern=_NAME,
        pattern_doc=_NAME_DOC,
    ),
)

RELAY_ROUTES_KEY = KeySpec(
    "routes",
    "list",
    "Comma-separated route names, tried in this order: the first route whose `kafka.topic` matches "
    "a record's topic wins. Each route is set with `routes.<route>.*` keys.",
    "commands",
    required=True,
    pattern=r"[A-Za-z0-9_-]+",
    pattern_doc="letters, digits, '_' and '-'",
)

RELAY_ROUTE_KEYS = {
    "kafka.topic": KeySpec(
        "routes.<route>.kafka.topic",
        "str",
        "The Kafka topic to read commands from, or, starting with `^`, a regular expression over topic "
        "names, matched as Kafka clients match subscriptions: from the start of the name, and to its "
        "end only with a final `$`. Topics created later are picked up on the consumer's next "
        "metadata refresh.",
        "device-commands",
        required=True,
        check=checks.kafka_topic_or_pattern,
    ),
    "kafka.key": KeySpec(
        "routes.<route>.kafka.key",
        "str",
        "Template that parses the record key into placeholders: `{plant}.{device}` reads the key "
        "`p01.d0001` as plant `p01` and device `d0001`. A record whose key does not fit goes to the "
        "dead-letter topic.",
        "{plant}.{device}",
        default="{key}",
    ),
    "mqtt.topic": KeySpec(
        "routes.<route>.mqtt.topic",
        "str",
        "MQTT topic template over the key's placeholders and `{header.<name>}` (a Kafka header's "
        "value). Commands are only ever published to topics of this shape.",
        "plants/{plant}/devices/{device}/commands",
        required=True,
    ),
    "mqtt.qos": KeySpec(
        "routes.<route>.mqtt.qos",
        "int",
        "Publish QoS. The record's offset is stored for commit once the broker acknowledged the "
        "publish: PUBACK for 1, PUBCOMP for 2.",
        "1",
        default="1",
        minimum=1,
        maximum=2,
    ),
    "mqtt.retain": KeySpec(
        "routes.<route>.mqtt.retain",
        "bool",
        "Publish with the retain flag, so a device that subscribes later gets the last command. A "
        "record with a null value then clears the retained command.",
        "false",
        default="false",
    ),
    "mqtt.message.expiry.seconds": KeySpec(
        "routes.<route>.mqtt.message.expiry.seconds",
        "int",
        "Lifetime of a command, counted from its Kafka timestamp. Published commands carry the rest "
        "of it as MQTT 5 message expiry, so the broker discards them instead of delivering them late; "
        "records already older go to the dead-letter topic with reason `expired`.",
        "300",
        default_doc="none: commands never expire",
        minimum=1,
        maximum=4_294_967_295,
    ),
    "mqtt.response.topic": KeySpec(
        "routes.<route>.mqtt.response.topic",
        "str",
        "MQTT 5 response topic template (same placeholders as `mqtt.topic`): where the device "
        "should publish its answer.",
        "plants/{plant}/devices/{device}/commands/response",
        default_doc="none: no response topic is set",
    ),
    "mqtt.correlation.header": KeySpec(
        "routes.<route>.mqtt.correlation.header",
        "str",
        "Kafka header whose value becomes the MQTT 5 correlation data. Without it, or when a record "
        "lacks the header, the correlation data is `<topic>/<partition>/<offset>` of the record.",
        "correlation-id",
        default_doc="none: `<topic>/<partition>/<offset>`",
        pattern=r"[A-Za-z0-9_.-]+",
        pattern_doc="letters, digits, '_', '.' and '-'",
    ),
}

RELAY_ERRORS_KEYS = (
    KeySpec(
        "errors.deadletterqueue.topic.name",
        "str",
        "Kafka topic for records that are not published: key not fitting the route, unsafe "
        "placeholder value, missing header, expired, refused by the MQTT broker. The record keeps "
        "its key, value and headers; `dlq.*` headers say why.",
        "example-commands-dlq",
        default_doc="`<name>-dlq`",
        check=checks.kafka_topic,
    ),
)

RELAY_KEYS = (
    *RELAY_CONNECTOR_KEYS,
    *RELAY_MQTT_KEYS,
    *RELAY_KAFKA_KEYS,
    RELAY_ROUTES_KEY,
    *RELAY_ERRORS_KEYS,
)
RELAY_SECTIONS = {
    "Relay: Connector": RELAY_CONNECTOR_KEYS,
    "Relay: MQTT": RELAY_MQTT_KEYS,
    "Relay: Kafka": RELAY_KAFKA_KEYS,
    "Relay: Routes": (RELAY_ROUTES_KEY, *RELAY_ROUTE_KEYS.values()),
    "Relay: Errors": RELAY_ERRORS_KEYS,
}

CONSUMER_PREFIX = "kafka.consumer."
CONSUMER_FORBIDDEN = {
    "enable.auto.offset.store": "offsets are stored only after the MQTT broker acknowledged the command",
    "enable.auto.commit": "stored offsets are committed periodically; set auto.commit.interval.ms instead",
    "partition.assignment.strategy": "the relay rebalances cooperatively (cooperative-sticky)",
    "group.protocol": "the relay uses the classic group protocol with cooperative-sticky assignment",
    "group.id": "set kafka.group.id instead",
    "bootstrap.servers": "set kafka.bootstrap.servers instead",
}

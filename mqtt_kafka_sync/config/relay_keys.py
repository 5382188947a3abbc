"""The keys of a command relay (``connector.class=mqtt_kafka_sync.KafkaCommandRelayConnector``), by section.

It takes the keys in :mod:`~mqtt_kafka_sync.config.common_keys` and these, and only those. Where a key
shares its name and rules with a source connector's but means something else for the relay
(``tasks.max``, ``mqtt.client.id``, ``mqtt.session.expiry.interval.seconds``, ``routes``, the
dead-letter topic), it is made here by common_keys' factory with the relay's own words.
"""

from __future__ import annotations

from mqtt_kafka_sync.config import checks, model
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
    tasks_max_key,
)
from mqtt_kafka_sync.config.keyspec import KeySpec

RELAY_CONNECTOR_KEYS = (
    CONNECTOR_KEYS[0],
    CONNECTOR_KEYS[1],
    tasks_max_key(
        "Relay tasks per process; each is one member of the consumer group and one MQTT connection."
    ),
)

RELAY_MQTT_KEYS = (
    MQTT_SERVER_KEY,
    mqtt_client_id_key(
        "Client id prefix; task `i` connects as `<prefix>-<i>-<random>`. The random part is new for "
        "every process: a relay's MQTT session only has to outlive reconnects of that process "
        "(offsets not yet stored are published again after a restart), and two workers started from "
        "one file never take each other's session.",
        "mks-commands",
    ),
    MQTT_USERNAME_KEY,
    MQTT_PASSWORD_KEY,
    MQTT_KEEPALIVE_KEY,
    mqtt_session_expiry_key(
        "How long the broker keeps a task's session after the connection drops, so QoS 1/2 publishes "
        "in flight complete after a reconnect. Cover your longest broker restart or network outage. "
        "A task that stops cleanly ends its session.",
        model.RELAY_MQTT_SESSION_EXPIRY_S,
    ),
    MQTT_CONNECT_TIMEOUT_KEY,
    *MQTT_TLS_KEYS,
    KeySpec(
        "mqtt.max.inflight.messages",
        "int",
        "Most QoS 1/2 publishes a task has sent and the broker not yet acknowledged; the broker's "
        "Receive Maximum (from CONNACK) lowers it. Bounds memory and the commands published twice "
        "after a crash. It also caps a task at this many commands per round trip to the broker "
        "(~6,000/s with Mosquitto's default Receive Maximum of 20 and a 3 ms round trip).",
        "1000",
        default=str(model.RELAY_MQTT_MAX_INFLIGHT),
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
        "too large); the publisher sends every unacknowledged command again after reconnecting. A plain "
        "network loss or broker restart counts no attempt.",
        "5",
        default=str(model.RELAY_MQTT_PUBLISH_MAX_ATTEMPTS),
        minimum=1,
        maximum=1000,
    ),
)

RELAY_KAFKA_KEYS = (
    KAFKA_BOOTSTRAP_KEY,
    KeySpec(
        "kafka.group.id",
        "str",
        "Consumer group. Relay workers with the same group share the command partitions "
        "(cooperative-sticky rebalancing); the group's committed offsets are where a restarted "
        "worker resumes.",
        "mks-commands",
        default_doc="the connector `name`",
        pattern=NAME,
        pattern_doc=NAME_DOC,
    ),
)

RELAY_ROUTES_KEY = routes_key(
    "Comma-separated route names, tried in this order: the first route whose `kafka.topic` matches "
    "a record's topic wins. Each route is set with `routes.<route>.*` keys.",
    "commands",
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
    dead_letter_topic_key(
        "Kafka topic for records that are not published: key not fitting the route, unsafe "
        "placeholder value, missing header, expired, refused by the MQTT broker. The record keeps "
        "its key, value and headers; `dlq.*` headers say why.",
        "example-commands-dlq",
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

"""The keys every connector takes alike, and the rules of the Kafka clients' pass-through keys.

``name``, ``connector.class``, the MQTT connection (:class:`~mqtt_kafka_sync.config.model.MqttConnection`)
and ``kafka.bootstrap.servers`` (:class:`~mqtt_kafka_sync.config.model.KafkaConnection`) are declared
once here; :mod:`~mqtt_kafka_sync.config.source_keys` and :mod:`~mqtt_kafka_sync.config.relay_keys`
add what is their own. ``kafka.producer.*`` / ``kafka.consumer.*`` are not keys of the spec: they pass
through to librdkafka, minus what would break a delivery guarantee (listed here).
"""

from __future__ import annotations

from collections.abc import Mapping

from mqtt_kafka_sync.config import checks, model
from mqtt_kafka_sync.config.keyspec import KeySpec
from mqtt_kafka_sync.config.model import RELAY_CONNECTOR_CLASS, SOURCE_CONNECTOR_CLASS
from mqtt_kafka_sync.config.tls_files import MQTT_KEYS

MAX_TASKS = 256
"""Most tasks of one connector in one process: each is a process of ~40 MB and a broker connection;
more belong on more machines."""
NAME = r"[A-Za-z0-9_.-]+"
NAME_DOC = "letters, digits, '_', '.' and '-'"
ROUTE_NAME = r"[A-Za-z0-9_-]+"
ROUTE_NAME_DOC = "letters, digits, '_' and '-'"

# -- Keys both connectors take under one name, with their own words (and default) ------------------


def tasks_max_key(description: str) -> KeySpec:
    return KeySpec("tasks.max", "int", description, "2", default="1", minimum=1, maximum=MAX_TASKS)


def mqtt_client_id_key(description: str, example: str) -> KeySpec:
    """A prefix: each connector completes it its own way, so each describes it."""
    return KeySpec(
        "mqtt.client.id",
        "str",
        description,
        example,
        default_doc="the connector `name`",
        pattern=NAME,
        pattern_doc=NAME_DOC,
    )


def mqtt_session_expiry_key(description: str, default: int) -> KeySpec:
    """Persistent sessions only (0 is refused); how long differs by connector."""
    return KeySpec(
        "mqtt.session.expiry.interval.seconds",
        "int",
        description,
        str(default),
        default=str(default),
        minimum=1,
        maximum=4_294_967_295,
    )


def routes_key(description: str, example: str) -> KeySpec:
    return KeySpec(
        "routes",
        "list",
        description,
        example,
        required=True,
        pattern=ROUTE_NAME,
        pattern_doc=ROUTE_NAME_DOC,
    )


def dead_letter_topic_key(description: str, example: str) -> KeySpec:
    return KeySpec(
        "errors.deadletterqueue.topic.name",
        "str",
        description,
        example,
        default_doc="`<name>-dlq`",
        check=checks.kafka_topic,
    )


CONNECTOR_KEYS = (
    KeySpec(
        "name",
        "str",
        "Unique connector name. In JSON files it is the top-level `name`.",
        "example-telemetry",
        required=True,
        pattern=NAME,
        pattern_doc=NAME_DOC,
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
    tasks_max_key("Worker processes; each is one MQTT client in the shared-subscription group."),
)

# -- The MQTT connection ---------------------------------------------------------------------------

MQTT_SERVER_KEY = KeySpec(
    "mqtt.server.uri",
    "str",
    "The MQTT broker, as `tcp://host:port`, or `ssl://host:port` (also written `mqtts://`) for MQTT "
    "over TLS 1.2 or later (`mqtt.ssl.*`; the port is always written, 8883 by convention).",
    "tcp://127.0.0.1:1883",
    required=True,
    check=checks.mqtt_server,
)
MQTT_USERNAME_KEY = KeySpec("mqtt.username", "str", "User name for the broker.", "bridge")
MQTT_PASSWORD_KEY = KeySpec(
    "mqtt.password",
    "secret",
    "Password for the broker; never printed. Use a provider rather than writing it in the file.",
    "${env:MQTT_PASSWORD}",
)
MQTT_KEEPALIVE_KEY = KeySpec(
    "mqtt.keepalive.interval.seconds",
    "int",
    "MQTT keep-alive: the broker drops a client silent for 1.5 times this.",
    "30",
    default=str(model.MQTT_KEEPALIVE_S),
    minimum=5,
    maximum=3600,
)
MQTT_CONNECT_TIMEOUT_KEY = KeySpec(
    "mqtt.connect.timeout.seconds",
    "float",
    "How long to wait for the broker to accept a connection.",
    "10",
    default=f"{model.MQTT_CONNECT_TIMEOUT_S:g}",
    minimum=1,
    maximum=300,
)

# -- MQTT over TLS (librdkafka's names, so both sides read alike) ----------------------------------

TLS_ONLY = "only with an ssl:// or mqtts:// mqtt.server.uri"
MQTT_TLS_KEYS = (
    KeySpec(
        MQTT_KEYS.ca,
        "str",
        f"PEM bundle of the CA(s) the broker's certificate must chain to; {TLS_ONLY}. "
        "Read again at every (re)connect.",
        "/etc/mqtt-kafka-sync/ca.pem",
        default_doc="the system trust store",
    ),
    KeySpec(
        MQTT_KEYS.certificate,
        "str",
        "Client certificate (PEM, may be followed by its chain) for mutual TLS; "
        f"{TLS_ONLY}. Read again at every (re)connect, so a rotated certificate is used without a restart.",
        "/etc/mqtt-kafka-sync/bridge.pem",
        default_doc="no client certificate",
    ),
    KeySpec(
        MQTT_KEYS.key,
        "str",
        f"The client certificate's private key (PEM); {TLS_ONLY}. `validate` checks it matches "
        "the certificate.",
        "/etc/mqtt-kafka-sync/bridge.key",
        default_doc="the key in the certificate file",
    ),
    KeySpec(
        MQTT_KEYS.key_password,
        "secret",
        "Passphrase of an encrypted private key; never printed. Use a provider rather than writing "
        "it in the file.",
        "${file:/etc/mqtt-kafka-sync/secrets.properties:mqtt.key.password}",
    ),
    KeySpec(
        "mqtt.ssl.endpoint.identification.algorithm",
        "enum",
        "`https`: the broker's certificate must name the host of mqtt.server.uri (DNS or IP "
        "subject alternative name); `none`: any certificate from a trusted CA is accepted (only for "
        "brokers reached by an address their certificate does not list).",
        "https",
        default="https",
        choices=("https", "none"),
    ),
)

# -- The Kafka connection --------------------------------------------------------------------------

KAFKA_BOOTSTRAP_KEY = KeySpec(
    "kafka.bootstrap.servers",
    "list",
    "Comma-separated `host:port` of Kafka brokers.",
    "127.0.0.1:9092",
    required=True,
    check=checks.bootstrap_servers,
)

# -- The Kafka clients' pass-through keys (kafka.producer.*, kafka.consumer.*) ---------------------

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

CONSUMER_PREFIX = "kafka.consumer."
CONSUMER_FORBIDDEN = {
    "enable.auto.offset.store": "offsets are stored only after the MQTT broker acknowledged the command",
    "enable.auto.commit": "stored offsets are committed periodically; set auto.commit.interval.ms instead",
    "partition.assignment.strategy": "the relay rebalances cooperatively (cooperative-sticky)",
    "group.protocol": "the relay uses the classic group protocol with cooperative-sticky assignment",
    "group.id": "set kafka.group.id instead",
    "bootstrap.servers": "set kafka.bootstrap.servers instead",
}

# -- kafka.<property>: librdkafka settings for every Kafka client of a connector -------------------

KAFKA_PREFIX = "kafka."
"""``kafka.<librdkafka property>`` (e.g. ``kafka.security.protocol``) reaches every Kafka client."""
COMMON_FORBIDDEN = {
    **{p: why for p, why in PRODUCER_FORBIDDEN.items() if p != "bootstrap.servers"},
    **{p: why for p, why in CONSUMER_FORBIDDEN.items() if p not in ("bootstrap.servers", "group.id")},
    "group.id": "only a command relay has a consumer group: set kafka.group.id in a relay's file",
}
"""What ``kafka.<property>`` may not set: the delivery guarantee of either client (as above)."""
SECRET_SUFFIXES = (".password", ".secret", ".passphrase", "user.info", "key.pem", ".config")
"""Properties whose values are secrets (``sasl.password``, ``ssl.key.password``,
``sasl.oauthbearer.client.secret``, ``ssl.key.pem``, ``sasl.oauthbearer.config``, ...): kept as
:class:`~mqtt_kafka_sync.secret.Secret`, never printed."""


def is_secret_property(prop: str) -> bool:
    return prop.endswith(SECRET_SUFFIXES)
